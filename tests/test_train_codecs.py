"""Mono2Stereo and vocoder trainers on tiny stand-in networks (test doubles, never shipped)."""
from __future__ import annotations

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
