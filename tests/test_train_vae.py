"""Mel-VAE trainer: Alg. 2's stages switch losses on as scheduled and stage 4 trains only the decoder.

`StandInVAE` is a test double with the MelVAE contract (encode -> .mean/.logvar, decode); never shipped.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch import nn

from kf_core.train.gan import DiscConfig, MultiScaleSpecDiscriminator, hinge_d_loss, hinge_g_loss, r1_penalty
from kf_core.train.schedules import VAEStages
from kf_core.train.vae import VAETrainConfig, VAETrainer, kl_with_margin

M, HOP = 16, 32


class StandInVAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv1d(M, 8, 2, stride=2)
        self.decoder = nn.ConvTranspose1d(4, M, 2, stride=2)

    def encode(self, mel):
        mean, logvar = self.encoder(mel).chunk(2, 1)
        return SimpleNamespace(mean=mean, logvar=logvar)

    def decode(self, z, frames=None):
        out = self.decoder(z)
        return out if frames is None else out[..., :frames]

    def forward(self, mel, generator=None, sample=True):  # MelVAE's contract
        post = self.encode(mel)
        eps = torch.randn(post.mean.shape, generator=generator)
        z = post.mean + (0.5 * post.logvar).exp() * eps if sample else post.mean
        return self.decode(z, frames=mel.shape[-1]), post


def mel_fn(wave):  # [B, T] -> [B, M, T // HOP] log band energies (a stand-in front end)
    frames = wave.reshape(wave.shape[0], -1, HOP)
    spec = torch.fft.rfft(frames, dim=-1).abs()[..., :M]
    return torch.log(spec.square() + 1e-5).transpose(1, 2)


def test_kl_margin_clamps_below_delta():
    mean, logvar = torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    assert kl_with_margin(mean, logvar, 0.0).item() == 0.0
    mean = torch.ones(2, 3, 4)  # KL per element = 0.5
    assert math.isclose(kl_with_margin(mean, logvar, 0.0).item(), 0.5, rel_tol=1e-6)
    assert math.isclose(kl_with_margin(mean, logvar, 0.2).item(), 0.3, rel_tol=1e-6)
    assert kl_with_margin(mean, logvar, 0.6).item() == 0.0


def test_hinge_and_r1():
    d = MultiScaleSpecDiscriminator()
    x = torch.randn(2, M, 32)
    assert [o.shape[0] for o in d(x)] == [2, 2, 2]
    big = [torch.full((2, 1, 4, 4), 5.0)]
    assert hinge_d_loss(big, [-b for b in big]).item() == 0.0  # confident and right: no loss
    assert hinge_g_loss([-b for b in big]).item() == 5.0
    assert r1_penalty(d, x).item() > 0


def test_stages_switch_losses_and_freeze_the_encoder():
    clips = [torch.randn(HOP * 40) for _ in range(8)]
    cfg = VAETrainConfig(stages=VAEStages(stage1_end=2, stage2_end=4, stage3_end=6, kl_upper=0.5, gan_upper=0.1),
                         batch_size=4, segment_frames=16, lr=1e-3, disc=DiscConfig(channels=8, layers=2))
    tr = VAETrainer(StandInVAE(), cfg, clips, mel_fn, hop=HOP)
    rows = []
    for _ in range(6):
        rows.append(tr.train_step())
    assert [r["stage"] for r in rows] == [1, 1, 2, 2, 3, 3]
    assert [r["w_kl"] for r in rows] == [0.0, 0.0, 0.25, 0.5, 0.5, 0.5]
    assert math.isnan(rows[3]["d"]) and math.isfinite(rows[4]["d"]) and abs(rows[4]["w_gan"] - 0.05) < 1e-9
    enc = [p.detach().clone() for p in tr.vae.encoder.parameters()]
    dec = [p.detach().clone() for p in tr.vae.decoder.parameters()]
    disc = [p.detach().clone() for p in tr.disc.parameters()]
    r = tr.train_step()  # step 7: stage 4
    assert r["stage"] == 4 and r["w_gan"] == 0.1
    assert all(torch.equal(a, b) for a, b in zip(enc, tr.vae.encoder.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(dec, tr.vae.decoder.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(disc, tr.disc.parameters()))
