"""eval codec CLI on two tiny generated wav files: vocoder-only, a full (untrained) codec file, clear errors."""
from __future__ import annotations

import json
import math

import pytest
import torch

from kf_core.__main__ import main as cli
from kf_core.codec.bundle import AudioCodec
from kf_core.codec.mel_vae import MEL_VAE_PRESETS, MelVAE
from kf_core.config import CODEC_PRESETS
from kf_core.io import write_audio
from kf_core.loading import save_state_dict


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    sr = 16000
    t = torch.arange(sr) / sr
    tone = 0.3 * torch.sin(2 * math.pi * 330 * t) * (t * 4 % 1 < 0.5)           # gated tone, 1 s
    g = torch.Generator().manual_seed(0)
    noise = 0.1 * torch.randn(2, int(0.8 * sr), generator=g)                    # stereo noise, 0.8 s
    write_audio(d / "a_tone.wav", tone[None], sr)
    (d / "sub").mkdir()
    write_audio(d / "sub" / "b_noise.wav", noise, sr)
    return d


def test_vocoder_only_scores_every_file(audio_dir, tmp_path, capsys):
    out = tmp_path / "res.json"
    rc = cli(["eval", "codec", "--audio", str(audio_dir), "--vocoder-only", "--preset", "16k",
              "--gl-iters", "8", "--no-pesq", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "a_tone.wav" in text and "b_noise.wav" in text and "mean" in text
    res = json.loads(out.read_text())
    assert [r["file"] for r in res["files"]] == ["a_tone.wav", "sub/b_noise.wav"]
    for r in res["files"]:
        assert math.isfinite(r["sdr"]) and r["lsd"] > 0 and r["mel_loss"] < 1.0   # log10 mels
        assert r["seconds"] == pytest.approx(1.0 if "tone" in r["file"] else 0.8, abs=0.02)
    assert res["mean"]["lsd"] == pytest.approx(sum(r["lsd"] for r in res["files"]) / 2)


def test_limit_and_full_codec_file(audio_dir, tmp_path, capsys):
    vae = MelVAE(MEL_VAE_PRESETS["tiny"])
    path = save_state_dict(vae.state_dict(), tmp_path / "vae.safetensors")
    rc = cli(["eval", "codec", "--audio", str(audio_dir), "--codec", str(path), "--limit", "1", "--no-pesq",
              "--gl-iters", "4"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "MelVAE" in text and "a_tone.wav" in text and "b_noise.wav" not in text


def test_missing_weights_say_so(audio_dir, tmp_path, capsys):
    rc = cli(["eval", "codec", "--audio", str(audio_dir), "--codec", str(tmp_path / "nope.safetensors")])
    assert rc == 2
    assert "not found" in capsys.readouterr().out
    rc = cli(["eval", "codec", "--audio", str(tmp_path / "empty"), "--vocoder-only"])
    assert rc == 2


def test_audio_codec_round_trip_shapes_and_stereo():
    """AudioCodec with a tiny random MelVAE: normalisation, stereo decode, exact sample counts."""
    cfg = CODEC_PRESETS["44k"]
    vae_cfg = MEL_VAE_PRESETS["tiny"]
    from dataclasses import replace
    cfg = replace(cfg, latent_channels=vae_cfg.latent_channels)
    mean, std = torch.randn(16) * 0.1, torch.rand(16) + 0.5
    from kf_core.codec.griffinlim import GriffinLim
    from kf_core.codec.mono2stereo import Mono2Stereo
    codec = AudioCodec(cfg, MelVAE(vae_cfg).eval(), mean, std, vocoder=GriffinLim(cfg, n_iter=2),
                       mono2stereo=Mono2Stereo(128, visual_dim=8, hidden=16, layers=1)).eval()
    wave = 0.1 * torch.randn(2, 10 * 1024 + 300)
    with torch.no_grad():
        zm, zs = codec.encode_audio(wave)
        assert zm.shape == zs.shape == (2, 10, 16)
        raw, _ = codec.encode_audio(wave, normalize=False)
        torch.testing.assert_close(zm * std + mean, raw, atol=1e-5, rtol=1e-5)
        out = codec.decode_latents(zm, visual=torch.randn(2, 3, 8), num_samples=10 * 1024 + 300)
        assert out.shape == (2, 2, 10 * 1024 + 300) and out.abs().max() <= 1
        torch.testing.assert_close(out[:, 0], out[:, 1])   # untrained Mono2Stereo: centred
        assert codec.decode_latents(zm, stereo=False).shape == (2, 1, 10 * 1024)
    with pytest.raises(ValueError, match="too short"):
        codec.encode_audio(torch.zeros(1, 1500))
    with pytest.raises(ValueError, match="latent"):
        AudioCodec(cfg, MelVAE(vae_cfg), torch.zeros(3), torch.ones(3))
