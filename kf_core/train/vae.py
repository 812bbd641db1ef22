"""Mel-VAE trainer: paper Alg. 2's four stages (MSE → +KL ramp → +GAN ramp → decoder refinement).

Losses: L_mse (eq. 3), L_kl = max(0, KL − Δ) (eq. 2), hinge L_g / L_d (eqs. 4–6) from a multi-scale
spectrogram discriminator with the R1 penalty (eq. 7). Weights per step come from
`schedules.vae_loss_weights`; stage 4 freezes every VAE parameter outside the decoder.

Shape legend: B batch, M mel bins, F mel frames, C latent channels.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as Fn
from torch import nn

from ..codec.mel_vae import DiagonalGaussian, kl_margin_loss
from .checkpoint import rng_state, set_rng_state
from .clips import ClipBatches
from .gan import DiscConfig, MultiScaleSpecDiscriminator, hinge_d_loss, hinge_g_loss, r1_penalty
from .schedules import VAEStages, vae_loss_weights

__all__ = ["VAETrainConfig", "VAETrainer", "kl_with_margin"]


@dataclass(frozen=True)
class VAETrainConfig:
    """Alg. 2 stages, KL margin Δ, R1 weight and the two optimisers' settings."""

    stages: VAEStages = VAEStages()
    kl_margin: float = 0.0
    r1_weight: float = 1.0
    batch_size: int = 8
    segment_frames: int = 64     # mel frames per training crop (even: the VAE halves it)
    lr: float = 1e-4
    lr_disc: float = 1e-4
    betas: tuple[float, float] = (0.8, 0.99)
    grad_clip: float = 1.0
    disc: DiscConfig = DiscConfig()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.segment_frames <= 0 or self.segment_frames % 2:
            raise ValueError(f"segment_frames must be a positive even number, got {self.segment_frames}")
        if self.kl_margin < 0 or self.r1_weight < 0:
            raise ValueError(f"kl_margin and r1_weight must be >= 0, got {self.kl_margin}, {self.r1_weight}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def kl_with_margin(mean: torch.Tensor, logvar: torch.Tensor, margin: float) -> torch.Tensor:
    """Posterior N(mean, exp(logvar)) -> max(0, KL(N || N(0, I)) − Δ), KL averaged per latent element
    (the codec's own `kl_margin_loss`, for posteriors of any VAE that exposes mean/logvar)."""
    return kl_margin_loss(DiagonalGaussian(mean, logvar), margin)


def _is_decoder(name: str) -> bool:
    return name.startswith("decoder") or ".decoder" in name


class VAETrainer:
    """Trains a Mel-VAE (encode -> posterior with .mean/.logvar, decode) and its discriminator."""

    def __init__(self, vae: nn.Module, cfg: VAETrainConfig, clips, mel_fn, *, device="cpu",
                 hop: int = 512) -> None:
        self.cfg, self.device, self.mel_fn = cfg, torch.device(device), mel_fn
        self.vae = vae.to(self.device)
        self.disc = MultiScaleSpecDiscriminator(cfg.disc).to(self.device)
        self.opt_g = torch.optim.AdamW(self.vae.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=cfg.lr_disc, betas=cfg.betas)
        self.batches = ClipBatches(clips, cfg.batch_size, cfg.segment_frames * hop, seed=cfg.seed)
        self.generator = torch.Generator()
        self.step = 0

    def _freeze_encoder(self) -> None:
        for name, p in self.vae.named_parameters():
            if not _is_decoder(name):
                p.requires_grad_(False)

    def train_step(self) -> dict[str, float]:
        """One generator (+ discriminator) update at step+1 -> the step's losses and weights."""
        s = self.step + 1
        w = vae_loss_weights(s, self.cfg.stages)
        if w.freeze_encoder:
            self._freeze_encoder()
        self.generator.manual_seed(self.cfg.seed * 7919 + s)
        with torch.no_grad():
            mel = self.mel_fn(self.batches.next(s).to(self.device))[..., :self.cfg.segment_frames]  # B M F
        post = self.vae.encode(mel)
        eps = torch.randn(post.mean.shape, generator=self.generator).to(self.device)
        z = post.mean + (0.5 * post.logvar).exp() * eps                      # B C F/2
        rec = self.vae.decode(z)[..., :mel.shape[-1]]                          # B M F
        l_mse = Fn.mse_loss(rec, mel)
        l_kl = kl_with_margin(post.mean, post.logvar, self.cfg.kl_margin)
        total = w.mse * l_mse + w.kl * l_kl
        out = {"stage": w.stage, "mse": l_mse.item(), "kl": l_kl.item(), "w_kl": w.kl, "w_gan": w.gan}
        if w.gan > 0:
            l_g = hinge_g_loss(self.disc(rec))
            total = total + w.gan * l_g
            out["g"] = l_g.item()
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_([p for p in self.vae.parameters() if p.requires_grad], self.cfg.grad_clip)
        self.opt_g.step()
        if w.gan > 0:
            l_adv = hinge_d_loss(self.disc(mel), self.disc(rec.detach()))
            r1 = r1_penalty(self.disc, mel)
            l_d = w.gan * l_adv + self.cfg.r1_weight * r1
            self.opt_d.zero_grad(set_to_none=True)
            l_d.backward()
            nn.utils.clip_grad_norm_(self.disc.parameters(), self.cfg.grad_clip)
            self.opt_d.step()
            out.update(d=l_adv.item(), r1=r1.item())
        out["loss"] = total.item()
        out["lr"] = self.opt_g.param_groups[0]["lr"]
        self.step = s
        return out

    def state_dict(self) -> dict:
        return {"model": self.vae.state_dict(), "disc": self.disc.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "data": self.batches.state_dict(), "rng": rng_state(), "trainer_step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["trainer_step"])
        if vae_loss_weights(self.step, self.cfg.stages).freeze_encoder:
            self._freeze_encoder()
        self.vae.load_state_dict(state["model"])
        self.disc.load_state_dict(state["disc"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.batches.load_state_dict(state["data"])
        set_rng_state(state["rng"])

    def export_state(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"": {k: v.detach().cpu() for k, v in self.vae.state_dict().items()}}
