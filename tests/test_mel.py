"""Mel front end: Slaney filterbank vs librosa and MMAudio's fixture, exact mel parity, framing, inverse."""
from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from kf_core.codec.mel import MelSpectrogram, hz_to_mel, mel_filterbank, mel_to_hz
from kf_core.config import CODEC_PRESETS, CodecConfig


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [
    (44100, 2048, 128, 0.0, None), (16000, 1024, 80, 0.0, 8000.0), (22050, 512, 40, 50.0, 9000.0)])
def test_filterbank_equals_librosa_slaney(sr, n_fft, n_mels, fmin, fmax):
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax).numpy()
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm="slaney", htk=False)
    assert ours.shape == ref.shape == (n_mels, n_fft // 2 + 1)
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    assert np.abs(ours - ref).max() < 1e-8  # measured 1.9e-9: float64 then float32, as librosa


def test_slaney_scale_is_linear_below_1khz_and_invertible():
    hz = np.array([0.0, 200.0, 1000.0, 4000.0, 22050.0])
    mel = hz_to_mel(hz)
    assert mel[1] == pytest.approx(3.0) and mel[2] == pytest.approx(15.0)
    np.testing.assert_allclose(mel_to_hz(mel), hz, rtol=1e-12, atol=1e-9)


@pytest.fixture(scope="module")
def mel44k(mmaudio_fixtures):
    return load_file(str(mmaudio_fixtures / "mel44k_vectors.safetensors"))


def test_filterbank_and_window_equal_fixture(mel44k):
    front = MelSpectrogram(CODEC_PRESETS["44k"])
    torch.testing.assert_close(front.mel_basis, mel44k["mel_basis"], atol=1e-7, rtol=0)
    torch.testing.assert_close(front.window, mel44k["hann_window"], atol=1e-7, rtol=0)


def test_front_end_reproduces_fixture_mel(mel44k):
    front = MelSpectrogram(CODEC_PRESETS["44k"])
    mel = front(mel44k["waveform"])
    assert mel.shape == mel44k["mel"].shape == (2, 128, 86)
    # FFT rounding differs between CPUs (AVX2 vs AVX-512 kernels): 2e-6 in the linear mel, which the
    # log stretches to ~1e-4 at the quietest bins; a wrong recipe is off by > 0.1 (next test)
    torch.testing.assert_close(mel.exp(), mel44k["mel"].exp(), atol=1e-5, rtol=0)
    torch.testing.assert_close(mel, mel44k["mel"], atol=5e-4, rtol=0)


def test_wrong_recipe_is_far_from_fixture(mel44k):
    """log10 instead of ln (gotcha G22) is caught by the fixture comparison."""
    front = MelSpectrogram(CodecConfig(log="log10"))
    assert (front(mel44k["waveform"]) - mel44k["mel"]).abs().max() > 1.0


@pytest.mark.parametrize("preset", ["44k", "16k"])
def test_frame_count_is_samples_over_hop(preset):
    cfg = CODEC_PRESETS[preset]
    front = MelSpectrogram(cfg)
    for frames in (4, 37):
        mel = front(torch.zeros(3, frames * cfg.hop))
        assert mel.shape == (3, cfg.n_mels, frames) == (3, cfg.n_mels, front.frames(frames * cfg.hop))
    floor = np.log(cfg.log_floor) if cfg.log == "ln" else np.log10(cfg.log_floor)
    assert mel.min().item() == pytest.approx(floor, abs=1e-5)  # silence sits exactly at the floor


def test_input_is_clamped_and_frames_are_centred():
    cfg = CODEC_PRESETS["16k"]
    front = MelSpectrogram(cfg)
    x = torch.zeros(1, 32 * cfg.hop)
    x[0, 10 * cfg.hop + cfg.hop // 2] = 1.0      # an impulse at the centre of frame 10
    loud = x * 5.0                              # clamped to the same waveform
    torch.testing.assert_close(front(loud), front(x))
    energy = front(x).exp().sum(1)[0]           # F (16k uses log10, but argmax is what matters)
    assert int(energy.argmax()) == 10


def test_mel_to_linear_inverts_the_basis_on_its_range():
    cfg = CODEC_PRESETS["16k"]
    front = MelSpectrogram(cfg)
    g = torch.Generator().manual_seed(1)
    wave = 0.3 * torch.randn(2, 20 * cfg.hop, generator=g)
    mel = front(wave)
    lin = front.mel_to_linear(mel)
    assert lin.shape == (2, cfg.n_fft // 2 + 1, 20) and (lin >= 0).all()
    # Projecting the estimate back through the basis gives (nearly) the original mel.
    back = torch.log10(torch.matmul(front.mel_basis, lin).clamp_min(cfg.log_floor))
    assert (back - mel).abs().mean() < 0.05


def test_errors_name_the_problem():
    front = MelSpectrogram(CODEC_PRESETS["16k"])
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        front(torch.zeros(1, 2, 4096))
    with pytest.raises(ValueError, match="samples"):
        front(torch.zeros(1, 100))
    with pytest.raises(ValueError, match="fmin"):
        mel_filterbank(16000, 1024, 80, 0.0, 9000.0)
