"""Mel-VAE trainer: paper Alg. 2's four stages (MSE → +KL ramp → +GAN ramp → decoder refinement).

Losses: the reconstruction term (eq. 3's MSE, or L1, or their sum: `recon`), L_kl = max(0, KL − Δ)
(eq. 2), hinge L_g / L_d (eqs. 4–6) from a multi-scale spectrogram discriminator with the R1
penalty (eq. 7). Weights per step come from `schedules.vae_loss_weights`. Stage 4 trains only the
decoder: the encoder's learning rate is 0 (its parameters stay exactly as they were), which keeps
the set of parameters with gradients fixed, as DDP needs.

The learning rate is a pure function of the step (`vocoder.cosine_lr`), so resuming needs no
scheduler state. Distributed: DDP through `DistContext`; the VAE is called through its `forward`
so the wrapper sees every step.

Shape legend: B batch, M mel bins, F mel frames, C latent channels.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as Fn
from torch import nn

from ..codec.mel_vae import DiagonalGaussian, MelVAE, MelVAEConfig, kl_margin_loss
from .checkpoint import rng_state, set_rng_state
from .clips import ClipBatches
from .distributed import DistContext, all_reduce_mean, wrap
from .gan import DiscConfig, MultiScaleSpecDiscriminator, hinge_d_loss, hinge_g_loss, r1_penalty
from .schedules import VAEStages, vae_loss_weights
from .vocoder import cosine_lr

__all__ = ["VAETrainConfig", "VAETrainer", "kl_with_margin", "RECON_LOSSES", "reconstruction_loss",
           "mel_statistics", "init_mel_vae", "latent_statistics"]

RECON_LOSSES = ("mse", "l1", "mse+l1")


@dataclass(frozen=True)
class VAETrainConfig:
    """Alg. 2 stages, KL margin Δ, R1 weight, the reconstruction loss and the optimisers' settings."""

    stages: VAEStages = VAEStages()
    kl_margin: float = 0.0
    r1_weight: float = 1.0
    recon: str = "mse"
    batch_size: int = 8
    segment_frames: int = 64     # mel frames per training crop (even: the VAE halves it)
    lr: float = 1e-4
    lr_min: float = 0.0
    warmup_steps: int = 0
    decay_steps: int = 0         # cosine decay length after warm-up; 0 keeps lr constant
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
        if self.recon not in RECON_LOSSES:
            raise ValueError(f"recon must be one of {RECON_LOSSES}, got {self.recon!r}")
        if self.batch_size <= 0 or self.lr <= 0 or not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"need batch_size > 0 and 0 <= lr_min <= lr with lr > 0, got {self.batch_size}, "
                             f"{self.lr_min}, {self.lr}")
        if self.warmup_steps < 0 or self.decay_steps < 0:
            raise ValueError("warmup_steps and decay_steps must be >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def kl_with_margin(mean: torch.Tensor, logvar: torch.Tensor, margin: float) -> torch.Tensor:
    """Posterior N(mean, exp(logvar)) -> max(0, KL(N || N(0, I)) − Δ), KL averaged per latent element
    (the codec's own `kl_margin_loss`, for posteriors of any VAE that exposes mean/logvar)."""
    return kl_margin_loss(DiagonalGaussian(mean, logvar), margin)


def reconstruction_loss(rec: torch.Tensor, mel: torch.Tensor, kind: str) -> torch.Tensor:
    """Decoded and true log-mels [B,M,F] -> the chosen reconstruction loss (mean over elements)."""
    if kind == "mse":
        return Fn.mse_loss(rec, mel)
    if kind == "l1":
        return Fn.l1_loss(rec, mel)
    return Fn.mse_loss(rec, mel) + Fn.l1_loss(rec, mel)


@torch.no_grad()
def mel_statistics(clips, mel_fn) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips (items [Ch,T] or [T]) -> per-bin mean [M] and std [M] of their log-mels (std >= 1e-3)."""
    total = total_sq = None
    count = 0
    for i in range(len(clips)):
        mel = mel_fn(clips[i][None].float())[0].double()                    # M F
        s, sq = mel.sum(1), mel.square().sum(1)
        total, total_sq = (s, sq) if total is None else (total + s, total_sq + sq)
        count += mel.shape[1]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    return mean.float(), std.float().clamp_min(1e-3)


def init_mel_vae(cfg: MelVAEConfig, clips, mel_fn, *, seed: int) -> MelVAE:
    """A fresh MelVAE (weights from `seed`) whose mel standardisation is fitted to `clips`."""
    torch.manual_seed(seed)
    vae = MelVAE(cfg)
    vae.set_mel_statistics(*mel_statistics(clips, mel_fn))
    return vae


@torch.no_grad()
def latent_statistics(vae: nn.Module, clips, mel_fn) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means of every clip -> per-channel (mean [C], std [C]): the latent normalisation."""
    p = next(vae.parameters())
    zs = [vae.encode(mel_fn(clips[i][None].float()).to(p)).mean[0].float().cpu() for i in range(len(clips))]
    z = torch.cat(zs, dim=1)                                                  # C N·La
    return z.mean(dim=1), z.std(dim=1).clamp_min(1e-4)


def _is_decoder(name: str) -> bool:
    return name.startswith("decoder") or ".decoder" in name


class VAETrainer:
    """Trains a Mel-VAE (`forward(mel, generator=) -> (reconstruction, posterior)`) and its discriminator."""

    def __init__(self, vae: nn.Module, cfg: VAETrainConfig, clips, mel_fn, *, device=None, hop: int = 512,
                 ctx: DistContext | None = None) -> None:
        self.ctx = ctx or DistContext(device=torch.device(device or "cpu"))
        if self.ctx.fsdp:
            raise ValueError("Mel-VAEs are small: train them with DDP (drop --fsdp); FSDP is for the DiT")
        self.cfg, self.device, self.mel_fn = cfg, self.ctx.device, mel_fn
        self.vae = vae.to(self.device)
        self.vae_step = wrap(self.vae, self.ctx)
        self.disc = MultiScaleSpecDiscriminator(cfg.disc).to(self.device)
        self.disc_step = wrap(self.disc, self.ctx) if cfg.stages.gan_upper > 0 else self.disc
        decoder = [p for n, p in self.vae.named_parameters() if _is_decoder(n)]
        others = [p for n, p in self.vae.named_parameters() if not _is_decoder(n)]
        self.opt_g = torch.optim.AdamW([{"params": others, "name": "encoder"}, {"params": decoder, "name": "decoder"}],
                                       lr=cfg.lr, betas=cfg.betas)
        self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=cfg.lr_disc, betas=cfg.betas)
        self.batches = ClipBatches(clips, cfg.batch_size, cfg.segment_frames * hop, seed=cfg.seed,
                                   rank=self.ctx.rank, world=self.ctx.world)
        self.generator = torch.Generator()
        self.step = 0

    def _set_lr(self, step: int, freeze_encoder: bool) -> float:
        c = self.cfg
        lr = cosine_lr(step, c.lr, c.lr_min, c.warmup_steps, c.decay_steps)
        for group in self.opt_g.param_groups:
            group["lr"] = 0.0 if freeze_encoder and group["name"] == "encoder" else lr
        return lr

    def train_step(self) -> dict[str, float]:
        """One generator (+ discriminator) update at step+1 -> the step's losses and weights."""
        s = self.step + 1
        w = vae_loss_weights(s, self.cfg.stages)
        lr = self._set_lr(s, w.freeze_encoder)
        self.generator.manual_seed(self.cfg.seed * 7919 + self.ctx.rank * 104729 + s)
        with torch.no_grad():
            mel = self.mel_fn(self.batches.next(s).to(self.device))[..., :self.cfg.segment_frames]  # B M F
        rec, post = self.vae_step(mel, generator=self.generator)                # B M F, B C F/2
        l_rec = reconstruction_loss(rec, mel, self.cfg.recon)
        l_kl = kl_with_margin(post.mean, post.logvar, self.cfg.kl_margin)
        total = w.mse * l_rec + w.kl * l_kl
        out = {"stage": w.stage, "rec": all_reduce_mean(l_rec.detach(), self.ctx).item(),
               "kl": all_reduce_mean(l_kl.detach(), self.ctx).item(), "w_kl": w.kl, "w_gan": w.gan}
        if self.cfg.stages.gan_upper > 0:  # the same columns on every row (the metrics CSV keeps the first row's)
            out.update(g=math.nan, d=math.nan, r1=math.nan)
        if w.gan > 0:
            l_g = hinge_g_loss(self.disc_step(rec))
            total = total + w.gan * l_g
            out["g"] = all_reduce_mean(l_g.detach(), self.ctx).item()
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_(self.vae.parameters(), self.cfg.grad_clip)
        self.opt_g.step()
        if w.gan > 0:
            l_adv = hinge_d_loss(self.disc_step(mel), self.disc_step(rec.detach()))
            # R1 on the bare module: DDP does not support autograd.grad; its gradient joins the
            # same backward, so each parameter's hook still fires once
            r1 = r1_penalty(self.disc, mel)
            l_d = w.gan * l_adv + self.cfg.r1_weight * r1
            self.opt_d.zero_grad(set_to_none=True)
            l_d.backward()
            nn.utils.clip_grad_norm_(self.disc.parameters(), self.cfg.grad_clip)
            self.opt_d.step()
            out.update(d=all_reduce_mean(l_adv.detach(), self.ctx).item(),
                       r1=all_reduce_mean(r1.detach(), self.ctx).item())
        out["loss"] = all_reduce_mean(total.detach(), self.ctx).item()
        out["lr"] = lr
        self.step = s
        return out

    def state_dict(self) -> dict:
        return {"model": self.vae.state_dict(), "disc": self.disc.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "data": self.batches.state_dict(), "rng": rng_state(), "trainer_step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["trainer_step"])
        self.vae.load_state_dict(state["model"])
        self.disc.load_state_dict(state["disc"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.batches.load_state_dict(state["data"])
        set_rng_state(state["rng"])

    def export_state(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"": {k: v.detach().cpu() for k, v in self.vae.state_dict().items()}}
