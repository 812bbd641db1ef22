"""The watermark: marked audio is found with its payload, unmarked and other-key audio are not,
it survives the pack's own AAC mux and a 3 s excerpt, the score's null is calibrated, and with
the mark off the pipeline's audio is bit for bit what it was before the feature."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kf_core.data.synthetic import make_clip
from kf_core.io import read_audio, resample, write_audio
from kf_core.watermark import (DEFAULT_KEY, Payload, WatermarkConfig, detect_watermark, embed_watermark,
                               known_model, model_id)
from kf_core.watermark.code import CODED_BITS, decode, encode
from media import make_video

SR = 44100
PAYLOAD = Payload.for_generation("kf-tiny", 123456)


@pytest.fixture(scope="module")
def host() -> torch.Tensor:
    """5 s of synthetic-world Foley: strikes, bounces and room tone (stereo, 44.1 kHz)."""
    return torch.from_numpy(make_clip(1002, duration=5.0, fps=12.0, size=64).audio)


@pytest.fixture(scope="module")
def marked(host) -> torch.Tensor:
    return embed_watermark(host, SR, PAYLOAD)


def test_payload_fields_and_names():
    assert PAYLOAD.model == model_id("kf-tiny") and PAYLOAD.seed == 123456 % 65536
    assert known_model(PAYLOAD.model) == "kf-tiny" and "kf-tiny" in str(PAYLOAD)
    assert Payload.from_bits(PAYLOAD.bits()) == PAYLOAD
    with pytest.raises(ValueError, match="16-bit"):
        Payload(model=70000)


def test_code_corrects_errors_and_its_crc_rejects_garbage():
    signs = 1.0 - 2.0 * encode(PAYLOAD).astype(float)
    rng = np.random.default_rng(0)
    flipped = signs.copy()
    flipped[rng.choice(CODED_BITS, 12, replace=False)] *= -1      # 12 of 138 coded bits wrong
    assert decode(flipped) == PAYLOAD
    rejected = sum(decode(rng.standard_normal(CODED_BITS)) is None for _ in range(50))
    assert rejected >= 45                                           # CRC-8: 1 in 256 pass by chance


def test_marked_audio_is_detected_with_its_payload(host, marked):
    d = detect_watermark(marked, SR)
    assert d.present and d.payload == PAYLOAD and d.p_value < 1e-10
    assert d.score > 2 * d.threshold and "MARKED" in str(d)
    assert marked.shape == host.shape and marked.abs().max() <= 1.0
    snr = 10 * torch.log10(host.square().sum() / (marked - host).square().sum())
    assert 12 < snr < 30                                            # a change proportional to the sound


def test_unmarked_and_other_key_audio_are_not_detected(host, marked):
    for wave, key in ((host, DEFAULT_KEY), (marked, "someone else's key")):
        d = detect_watermark(wave, SR, key=key)
        assert not d.present and d.payload is None and d.score < d.threshold and d.p_value > 1e-3
    own = embed_watermark(host, SR, PAYLOAD, key="private")
    assert detect_watermark(own, SR, key="private").payload == PAYLOAD
    assert not detect_watermark(own, SR).present


def test_the_score_is_calibrated_on_unmarked_audio(host):
    # for unmarked audio the pilot signs of any key are fair coins: p-values spread out, none is small
    noise = 0.05 * torch.randn(1, 3 * SR, generator=torch.Generator().manual_seed(1))
    p = [detect_watermark(w, SR, key=f"key {k}").p_value for k in range(8) for w in (host, noise)]
    assert min(p) > 1e-3 and np.median(p) > 0.2


def test_survives_aac_through_the_mux_path_and_a_3s_excerpt(marked, tmp_path):
    from kf_core.io import mux_audio
    video = make_video(tmp_path / "in.mp4", fps=24, seconds=5.0, width=32, height=32)
    out = mux_audio(video, marked, SR, tmp_path / "out.mp4")                      # AAC, as generate writes it
    wave, sr = read_audio(out)
    start = int(1.37 * sr)                                                        # an odd, unaligned start
    d = detect_watermark(wave[:, start:start + 3 * sr], sr)
    assert d.present and d.payload == PAYLOAD


def test_survives_16k_resampling_and_gain_and_marks_other_rates(host, marked):
    low = resample(marked, SR, 16000) * 0.5
    assert detect_watermark(low, 16000).payload == PAYLOAD
    host16 = resample(host, SR, 16000)                              # a 16 kHz model's output is marked too
    d = detect_watermark(embed_watermark(host16, 16000, PAYLOAD), 16000)
    assert d.present and d.payload == PAYLOAD


def test_batches_get_the_same_mark_per_take(host):
    batch = torch.stack([host, 0.5 * host.flip(-1)])                  # B C T
    out = embed_watermark(batch, SR, PAYLOAD)
    assert out.shape == batch.shape
    assert torch.equal(out[0], embed_watermark(host, SR, PAYLOAD))
    assert all(detect_watermark(take, SR).payload == PAYLOAD for take in out)


def test_silence_stays_silent_and_short_audio_is_not_flagged():
    silence = torch.zeros(2, SR)
    assert torch.equal(embed_watermark(silence, SR, PAYLOAD), silence)
    d = detect_watermark(torch.zeros(2, 100), SR)
    assert not d.present
    with pytest.raises(TypeError, match="Payload"):
        embed_watermark(silence, SR, 42)
    with pytest.raises(ValueError, match="key"):
        embed_watermark(silence, SR, PAYLOAD, key="")
    with pytest.raises(ValueError, match="f_low"):
        WatermarkConfig(f_low=9000.0, f_high=8000.0)


def test_detect_cli_reports_each_file_and_exit_status_says_all_marked(host, marked, tmp_path, capsys):
    from kf_core.__main__ import main
    good = write_audio(tmp_path / "marked.wav", marked, SR)
    plain = write_audio(tmp_path / "plain.flac", host, SR)
    assert main(["watermark", "detect", str(good)]) == 0
    assert main(["watermark", "detect", str(good), str(plain)]) == 1
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    assert main(["watermark", "detect", str(tmp_path / "broken.mp4"), str(good)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{good}: MARKED") and "kf-tiny" in out[0]
    assert f"{plain}: not marked" in out[2]
    assert "broken.mp4" in out[3] and "error" in out[3]


def _snr(host, marked):
    return float(10 * torch.log10(host.square().sum() / (marked - host).square().sum()))


def test_a_steady_tone_gets_a_lighter_mark_than_noise():
    t = torch.arange(3 * SR) / SR
    tone = 0.3 * torch.sin(2 * torch.pi * 1000 * t)
    relieved = _snr(tone, embed_watermark(tone, SR, PAYLOAD))
    flat = _snr(tone, embed_watermark(tone, SR, PAYLOAD, cfg=WatermarkConfig(tonal_relief=1.0)))
    assert relieved > flat + 8                                     # 0.3x the change: about 10 dB less mark


def test_bench_pieces_run_on_small_material(tmp_path, monkeypatch):
    from kf_core.eval import bench_watermark as bench
    noise = [0.05 * torch.randn(2, 4 * SR, generator=torch.Generator().manual_seed(i)) for i in range(10)]
    monkeypatch.setitem(bench._SETS, "marked", [embed_watermark(w, SR, bench._payload(i)) for i, w in enumerate(noise)])
    monkeypatch.setitem(bench._SETS, "unmarked", noise)
    rows = bench._run_attacks({"none": None, "3 s excerpt": None}, 10, 0, workers=1)
    assert [r[0] for r in rows] == ["none", "3 s excerpt"]
    assert all(r[1] == 1.0 and r[2] == 0.0 and r[6] == 1.0 for r in rows)       # TPR, FPR, payloads
    quality = dict(bench._quality(noise[:3], bench._SETS["marked"][:3], pesq_n=0))
    assert "PESQ" in next(k for k in quality if k.startswith("PESQ")) and float(quality[
        "mel distance marked vs unmarked (mean |d log-mel|)"]) > 0
    png = bench.write_figure(tmp_path / "wm.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size < 100_000
