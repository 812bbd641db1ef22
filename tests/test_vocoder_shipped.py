"""The trained vocoder of a model folder beats Griffin-Lim (issue 12): on fixed held-out synthetic
clips its mel loss is lower than Griffin-Lim's on the same true mel, and the codec through it
(Mel-VAE -> vocoder) is closer to the input than the same VAE -> Griffin-Lim.

MODEL_FOLDER is the bundled kf-tiny (or KF_TINY_MODEL, a `train-tiny` output folder). A folder whose
manifest names no vocoder plays through Griffin-Lim, and these tests skip, saying so.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from kf_core.codec.bundle import load_audio_codec
from kf_core.codec.griffinlim import GriffinLim
from kf_core.codec.mel import MelSpectrogram
from kf_core.codec.vocos import Vocos
from kf_core.components import BUNDLED_DIR
from kf_core.data.dataset import split_seed
from kf_core.data.synthetic import make_clip
from kf_core.eval.metrics import mel_loss

MODEL_FOLDER = Path(os.environ.get("KF_TINY_MODEL") or BUNDLED_DIR)
CLASSES = ("ball", "bell", "footsteps")  # an impact, a tonal decay and a noise burst


@pytest.fixture(scope="module")
def codec():
    manifest = json.loads((MODEL_FOLDER / "manifest.json").read_text())
    if not manifest["components"].get("vocoder"):
        pytest.skip(f"{MODEL_FOLDER} ships no vocoder (Griffin-Lim plays its mels)")
    c = load_audio_codec(MODEL_FOLDER).eval()
    assert isinstance(c.vocoder, Vocos)
    return c


@pytest.fixture(scope="module")
def clips():
    """Fixed held-out clips (seeds no trainer draws), 2 s, mono, whole latent tokens."""
    waves = []
    for i, cls in enumerate(CLASSES):
        audio = make_clip(split_seed(900 + i, 0, "heldout"), duration=2.0, classes=[cls]).audio
        waves.append(torch.from_numpy(audio).mean(0)[: 86 * 1024])
    return torch.stack(waves)                                                     # 3 T


def test_vocoder_beats_griffin_lim_on_true_mels(codec, clips):
    torch.set_num_threads(1)
    front = MelSpectrogram(codec.cfg)
    with torch.no_grad():
        mel = front(clips)
        ours = codec.vocoder(mel)[:, 0]
        gl = GriffinLim(codec.cfg)(mel)[:, 0]
    assert ours.shape == gl.shape == clips.shape
    ours_loss, gl_loss = mel_loss(clips, ours, codec.cfg), mel_loss(clips, gl, codec.cfg)
    assert (ours_loss < gl_loss).all(), f"vocoder {ours_loss.tolist()} vs Griffin-Lim {gl_loss.tolist()}"


def test_codec_through_the_vocoder_beats_the_codec_through_griffin_lim(codec, clips):
    with torch.no_grad():
        ours = codec.reconstruct(clips)
        vocoder, codec.vocoder = codec.vocoder, GriffinLim(codec.cfg)
        try:
            gl = codec.reconstruct(clips)
        finally:
            codec.vocoder = vocoder
    assert mel_loss(clips, ours, codec.cfg).mean() < mel_loss(clips, gl, codec.cfg).mean()
