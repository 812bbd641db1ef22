"""The watermark in every generation path: FoleyPipeline.generate and .save (the stream the CLI
writes through), `python -m kf_core generate`, the Vocoder node (before its level stage); and the
Watermark Detect node. Off means bit for bit the audio from before the feature."""
from __future__ import annotations

import pytest
import torch

from kf_core.__main__ import main
from kf_core.codec import bundle
from kf_core.codec.griffinlim import GriffinLim
from kf_core.config import SeqConfig
from kf_core.io import read_audio, write_audio
from kf_core.pipeline import (Audio, Mel, decode_mel, encode_text, load_pipeline, sample_latents, stream_audio, to_stereo,
                              vocode, watermark_audio)
from kf_core.watermark import Payload, detect_watermark, embed_watermark
from nodes import _comfy, loaders
from nodes.codec import KlingFoleyVocoder
from nodes.watermark import KlingFoleyWatermarkDetect
from tiny_model import write_random_tiny_folder

SECONDS = 3.0


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_random_tiny_folder(tmp_path_factory.mktemp("kf-tiny-random"), vocoder=False)


@pytest.fixture(scope="module")
def pipe(folder):
    p = load_pipeline(folder)
    p.components.codec.vocoder = GriffinLim(p.components.codec.cfg, n_iter=2)   # fast; the mark does not care
    return p


def _stages(pipe, seed):
    """The unmarked reference: the stages generate() chained before the watermark existed."""
    c = pipe.components
    lat = sample_latents(c.dit, text=encode_text(c.text_encoder, "rain"), duration=SECONDS, steps=1, seed=seed)
    return lat, vocode(c.codec, to_stereo(c.codec, decode_mel(c.codec, lat)))


def test_generate_marks_by_default_and_off_is_bit_identical(pipe):
    lat, plain = _stages(pipe, seed=70001)
    off, sr = pipe.generate(prompt="rain", duration=SECONDS, steps=1, seed=70001, watermark=False)
    assert torch.equal(off, plain.waveform[0])
    on, _ = pipe.generate(prompt="rain", duration=SECONDS, steps=1, seed=70001)
    assert on.shape == off.shape and not torch.equal(on, off)
    d = detect_watermark(on, sr)
    assert d.present and d.payload == Payload.for_generation(pipe.components.name, 70001)
    assert not detect_watermark(off, sr).present
    assert torch.equal(watermark_audio(plain, model=pipe.components.name, seed=70001).waveform[0], on)


def test_save_streams_the_mark_into_the_file_and_off_is_bit_identical(pipe, tmp_path, monkeypatch):
    """save() marks block by block as it writes; its file holds exactly the samples of the whole
    unmarked track marked in one go (and with the mark off, the unmarked track), written alike."""
    monkeypatch.setattr(bundle, "VOCODE_CHUNK_S", 0.7)                # several blocks, cut mid-tile
    kw = dict(prompt="rain", duration=SECONDS, steps=1, seed=911)
    lat, _ = _stages(pipe, seed=911)
    assert len(list(stream_audio(pipe.components.codec, lat))) >= 4
    off, sr = pipe.generate(watermark=False, **kw)
    whole = watermark_audio(Audio(off[None], sr), model=pipe.components.name, seed=911).waveform[0]
    saved_on = read_audio(pipe.save(audio_out=tmp_path / "on.wav", **kw)["audio"])[0]
    saved_off = read_audio(pipe.save(audio_out=tmp_path / "off.wav", watermark=False, **kw)["audio"])[0]
    assert torch.equal(saved_on, read_audio(write_audio(tmp_path / "ref_on.wav", whole, sr))[0])
    assert torch.equal(saved_off, read_audio(write_audio(tmp_path / "ref_off.wav", off, sr))[0])
    d = detect_watermark(saved_on, sr)
    assert d.present and d.payload == Payload.for_generation(pipe.components.name, 911)
    assert not detect_watermark(saved_off, sr).present
    with pytest.raises(ValueError, match="watermark key"):
        pipe.save(audio_out=tmp_path / "x.wav", watermark=False, watermark_key="k", **kw)
    assert not (tmp_path / "x.wav").exists()


def test_cli_generate_key_and_switch(folder, tmp_path, capsys):
    out = tmp_path / "keyed.wav"
    assert main(["generate", "--prompt", "rain", "--duration", "2", "--steps", "1", "--model", str(folder),
                 "--audio-out", str(out), "--watermark-key", "studio secret"]) == 0
    wave, sr = read_audio(out)
    assert detect_watermark(wave, sr, key="studio secret").present
    assert not detect_watermark(wave, sr).present                      # the public key does not see it
    assert main(["watermark", "detect", str(out), "--key", "studio secret"]) == 0
    assert main(["watermark", "detect", str(out)]) == 1
    plain = tmp_path / "plain.wav"
    assert main(["generate", "--prompt", "rain", "--duration", "2", "--steps", "1", "--model", str(folder),
                 "--audio-out", str(plain), "--no-watermark"]) == 0
    assert main(["watermark", "detect", str(plain)]) == 1
    capsys.readouterr()
    assert main(["generate", "--prompt", "x", "--audio-out", str(tmp_path / "y.wav"), "--no-watermark",
                 "--watermark-key", "k"]) == 2
    assert "--watermark-key" in capsys.readouterr().err and not (tmp_path / "y.wav").exists()


def _mel(seconds, loud=0.0):
    seq = SeqConfig(seconds)
    return Mel(mel=torch.randn(1, 2, 128, seq.mel_len, generator=torch.Generator().manual_seed(3)) - 4 + loud, seq=seq)


def test_vocoder_node_marks_unless_switched_off(comfy):
    codec = _comfy.Loaded(loaders.bundled().codec, ("vocoder",), "x")
    mel = _mel(SECONDS)
    off = KlingFoleyVocoder.execute(codec, mel, "limit", -1.0, False)[0]
    assert torch.equal(off["waveform"], vocode(codec.value, mel, level="limit").waveform)
    on = KlingFoleyVocoder.execute(codec, mel)[0]                       # the default: marked
    d = detect_watermark(on["waveform"][0], on["sample_rate"])
    assert d.present and d.payload == Payload.for_generation("comfyui", None) and "comfyui" in str(d)


@pytest.mark.parametrize("level,ceiling_db", [("limit", -1.0), ("normalize", -6.0), ("clip", 0.0)])
def test_the_mark_goes_in_before_the_level_so_peaks_stay_under_the_ceiling(comfy, level, ceiling_db):
    codec = _comfy.Loaded(loaders.bundled().codec, ("vocoder",), "x")
    mel = _mel(SECONDS, loud=2.0)                                       # loud: the level stage has work to do
    on = KlingFoleyVocoder.execute(codec, mel, level, ceiling_db, True)[0]["waveform"][0]
    off = KlingFoleyVocoder.execute(codec, mel, level, ceiling_db, False)[0]["waveform"][0]
    ceiling = 10 ** (ceiling_db / 20)
    assert on.abs().max() <= ceiling + 1e-6 and off.abs().max() > 0.5 * ceiling
    assert detect_watermark(on, 44100).present


def test_detect_node_shows_one_verdict_per_take():
    noise = 0.05 * torch.randn(2, 2, int(SECONDS * 44100), generator=torch.Generator().manual_seed(4))
    batch = torch.stack([embed_watermark(noise[0], 44100, Payload(7, 8)), noise[1]])
    out = KlingFoleyWatermarkDetect.execute({"waveform": batch, "sample_rate": 44100}, "kling-foley")
    (text,) = out.args
    assert out.ui["text"] == [text]
    first, second = text.splitlines()
    assert first.startswith("take 1: MARKED") and "seed 8" in first
    assert second.startswith("take 2: not marked")
