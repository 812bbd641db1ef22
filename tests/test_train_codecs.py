"""Mono2Stereo and vocoder trainers on tiny stand-in networks (test doubles, never shipped)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kf_core.train.stereo import StereoTrainConfig, StereoTrainer, mono_and_channels
from kf_core.train.vocoder import VocoderTrainConfig, VocoderTrainer, multi_resolution_stft_loss
from test_train_vae import HOP, M, mel_fn


class StandInPan(nn.Module):
    """One learnable pan per mel bin: L = 2p·mono, R = 2(1−p)·mono in the linear domain."""

    def __init__(self) -> None:
        super().__init__()
        self.logit = nn.Parameter(torch.zeros(M, 1))

    def forward(self, mono, visual=None):
        p = torch.sigmoid(self.logit)
        return torch.stack([mono + torch.log(2 * p), mono + torch.log(2 * (1 - p))], 1)


def test_stereo_targets_mix_in_linear_domain():
    wave = torch.randn(2, 2, HOP * 8)
    mono, lr = mono_and_channels(wave, mel_fn)
    assert torch.allclose(mono.exp(), lr.exp().mean(1).clamp_min(1e-5), rtol=1e-5)


def test_stereo_trainer_learns_a_fixed_pan():
    g = torch.Generator().manual_seed(0)
    clips = []
    for _ in range(8):
        x = torch.randn(HOP * 24, generator=g)
        clips.append(torch.stack([0.9 * x, 0.3 * x]))  # a source panned left
    tr = StereoTrainer(StandInPan(), StereoTrainConfig(batch_size=4, segment_frames=8, lr=0.05), clips, mel_fn, hop=HOP)
    losses = [tr.train_step()["loss"] for _ in range(60)]
    assert losses[-1] < 0.2 * losses[0]
    p = torch.sigmoid(tr.model.logit).mean().item()
    assert abs(p - 0.81 / (0.81 + 0.09)) < 0.05  # energy share of the left channel


class StandInVocoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose1d(M, 1, HOP, stride=HOP)

    def forward(self, mel):
        return self.up(mel)  # B 1 F·HOP


def test_vocoder_trainer_steps_and_uses_decoder_mels():
    clips = [torch.randn(HOP * 20) for _ in range(4)]
    seen = []
    cfg = VocoderTrainConfig(batch_size=2, segment_frames=8, resolutions=((64, 16), (128, 32)))
    tr = VocoderTrainer(StandInVocoder(), cfg, clips, mel_fn, hop=HOP, mel_source=lambda m: seen.append(m) or m * 0.9)
    rows = [tr.train_step() for _ in range(3)]
    assert len(seen) == 3 and seen[0].shape == (2, M, 8)
    assert all(torch.isfinite(torch.tensor(list(r.values()))).all() for r in rows)
    real = torch.randn(2, 512)
    assert multi_resolution_stft_loss(real, real, cfg.resolutions).item() < 1e-5
    assert multi_resolution_stft_loss(real * 0.5, real, cfg.resolutions).item() > 0.3


def test_cosine_lr_warms_up_then_decays_to_the_floor():
    from kf_core.train.vocoder import cosine_lr
    assert cosine_lr(5, 1e-3, 1e-5, 10, 100) == pytest.approx(5e-4)
    assert cosine_lr(10, 1e-3, 1e-5, 10, 100) == pytest.approx(1e-3)
    assert cosine_lr(60, 1e-3, 1e-5, 10, 100) == pytest.approx((1e-3 + 1e-5) / 2)
    assert cosine_lr(500, 1e-3, 1e-5, 10, 100) == pytest.approx(1e-5)
    assert cosine_lr(500, 1e-3, 1e-5, 0, 0) == 1e-3


def test_phase_error_is_zero_for_equal_phases_and_grows_with_a_shift():
    from kf_core.train.vocoder import phase_error
    g = torch.Generator().manual_seed(0)
    spec = torch.polar(torch.rand(2, 9, 7, generator=g) + 0.1, torch.rand(2, 9, 7, generator=g) * 6.28)
    assert phase_error(spec, spec).item() < 1e-6
    assert phase_error(3.0 * spec, spec).item() < 1e-6                     # magnitude does not count
    rotated = spec * torch.polar(torch.ones(()), torch.tensor(0.5))         # a constant phase offset:
    ip_only = phase_error(rotated, spec).item()                             # only the instantaneous term
    assert ip_only == pytest.approx(1 - math.cos(0.5), rel=1e-4)
    ramp = spec * torch.polar(torch.ones(7), torch.arange(7) * 0.3)         # a time ramp: IP and IAF
    assert phase_error(ramp, spec).item() > ip_only


def test_decoder_mels_replace_the_first_share_of_the_batch():
    from kf_core.train.vocoder import decoder_mels
    vae = StandInCodecVAE()
    mel = torch.randn(4, M, 8)
    out = decoder_mels(vae, share=0.5)(mel)
    assert torch.equal(out[2:], mel[2:]) and not torch.allclose(out[:2], mel[:2])
    torch.testing.assert_close(out[:2], vae.decode(vae.encode(mel[:2]).mean, frames=8))
    assert torch.equal(decoder_mels(vae, share=0.0)(mel), mel)


class StandInCodecVAE(nn.Module):
    """The MelVAE contract (encode -> posterior with .mean, decode(z, frames)) on M bins."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Conv1d(M, 4, 2, stride=2)
        self.dec = nn.ConvTranspose1d(4, M, 2, stride=2)

    def encode(self, mel):
        from types import SimpleNamespace
        return SimpleNamespace(mean=self.enc(mel))

    def decode(self, z, frames=None):
        out = self.dec(z)
        return out if frames is None else out[..., :frames]
