"""The watermark in every generation path: FoleyPipeline.generate, `python -m kf_core generate`, the
Vocoder node; and the Watermark Detect node. Off means bit for bit the audio from before the feature."""
from __future__ import annotations

import pytest
import torch

from kf_core.__main__ import main
from kf_core.codec.griffinlim import GriffinLim
from kf_core.config import SeqConfig
from kf_core.io import read_audio
from kf_core.pipeline import (Mel, decode_mel, encode_text, load_pipeline, sample_latents, to_stereo, vocode,
                              watermark_audio)
from kf_core.watermark import Payload, detect_watermark, embed_watermark
from nodes import loaders
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
    return vocode(c.codec, to_stereo(c.codec, decode_mel(c.codec, lat)))


def test_generate_marks_by_default_and_off_is_bit_identical(pipe):
    plain = _stages(pipe, seed=70001)
    off, sr = pipe.generate(prompt="rain", duration=SECONDS, steps=1, seed=70001, watermark=False)
    assert torch.equal(off, plain.waveform[0])
    on, _ = pipe.generate(prompt="rain", duration=SECONDS, steps=1, seed=70001)
    assert on.shape == off.shape and not torch.equal(on, off)
    d = detect_watermark(on, sr)
    assert d.present and d.payload == Payload.for_generation(pipe.components.name, 70001)
    assert not detect_watermark(off, sr).present
    assert torch.equal(watermark_audio(plain, model=pipe.components.name, seed=70001).waveform[0], on)


def test_cli_generate_key_and_switch(folder, tmp_path, capsys):
    out = tmp_path / "keyed.wav"
    assert main(["generate", "--prompt", "rain", "--duration", "2", "--steps", "1", "--model", str(folder),
                 "--audio-out", str(out), "--watermark-key", "studio secret"]) == 0
    wave, sr = read_audio(out)
    assert detect_watermark(wave, sr, key="studio secret").present
    assert not detect_watermark(wave, sr).present                      # the public key does not see it
    assert main(["watermark", "detect", str(out), "--key", "studio secret"]) == 0
    assert main(["watermark", "detect", str(out)]) == 1
    with pytest.raises(SystemExit, match="--watermark-key"):
        main(["generate", "--prompt", "x", "--audio-out", str(tmp_path / "y.wav"), "--no-watermark",
              "--watermark-key", "k"])


def test_vocoder_node_marks_unless_switched_off(comfy):
    codec = loaders.bundled().codec
    seq = SeqConfig(SECONDS)
    mel = Mel(mel=torch.randn(1, 2, 128, seq.mel_len, generator=torch.Generator().manual_seed(3)) - 4, seq=seq)
    (off,) = KlingFoleyVocoder().vocode(codec, mel, False)
    assert torch.equal(off["waveform"], vocode(codec, mel).waveform)
    (on,) = KlingFoleyVocoder().vocode(codec, mel, True)
    d = detect_watermark(on["waveform"][0], on["sample_rate"])
    assert d.present and d.payload == Payload.for_generation("comfyui", None) and "comfyui" in str(d)


def test_detect_node_shows_one_verdict_per_take():
    noise = 0.05 * torch.randn(2, 2, int(SECONDS * 44100), generator=torch.Generator().manual_seed(4))
    batch = torch.stack([embed_watermark(noise[0], 44100, Payload(7, 8)), noise[1]])
    out = KlingFoleyWatermarkDetect().detect({"waveform": batch, "sample_rate": 44100}, "kling-foley")
    (text,) = out["result"]
    assert out["ui"]["text"] == [text]
    first, second = text.splitlines()
    assert first.startswith("take 1: MARKED") and "seed 8" in first
    assert second.startswith("take 2: not marked")
