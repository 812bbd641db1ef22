"""Vocoder trainer: mel L1 + multi-resolution STFT losses, and a hinge GAN against one STFT
discriminator per resolution from step `gan_start` (w_gan = 0: no discriminator at all).

Trains any `generator(mel [B,M,F]) -> wave [B,1,F·hop]` (Vocos, BigVGAN). The training waves are
mono: a stereo clip is mixed to (L + R)/2, the wave whose mel the codec's mono path encodes.
With `mel_source` the generator learns from mels the Mel-VAE decoder produced (paper §4.5.2
stage 4: the vocoder adapts to the decoder's errors) instead of the true mels; `mel_source`
may mix both (see `tiny_codec.decoder_mels`).

The learning rate is a pure function of the step (linear warm-up, then cosine decay to `lr_min`
over `decay_steps`), so a resumed run follows the same schedule without scheduler state.
Distributed: DDP through `DistContext` (each rank its own crops; the generator and the
discriminators are wrapped once each).

Shape legend: B batch, M mel bins, F mel frames, T samples.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as Fn
from torch import nn

from .checkpoint import rng_state, set_rng_state
from .clips import ClipBatches
from .distributed import DistContext, all_reduce_mean, wrap
from .gan import DiscConfig, MultiResolutionSTFTDiscriminator, hinge_d_loss, hinge_g_loss

__all__ = ["VocoderTrainConfig", "VocoderTrainer", "stft_mag", "multi_resolution_stft_loss", "cosine_lr",
           "phase_loss", "phase_error",
           "spectrum_magnitude_loss", "decoder_mels"]


@dataclass(frozen=True)
class VocoderTrainConfig:
    batch_size: int = 8
    segment_frames: int = 32
    lr: float = 2e-4
    lr_min: float = 0.0
    warmup_steps: int = 0
    decay_steps: int = 0          # cosine decay length after warm-up; 0 keeps lr constant
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.01
    resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop)
    w_mel: float = 45.0
    w_stft: float = 1.0
    w_gan: float = 1.0
    w_phase: float = 0.0          # `phase_loss` of the output wave at phase_resolution (0: off)
    phase_resolution: tuple[int, int] = (2048, 512)
    # losses on the spectrum an iSTFT-head generator predicts (`forward(mel, return_spectrum=True)`)
    # against the real wave's STFT in the front end's framing (0: off; APNet's direct supervision)
    w_spec_mag: float = 0.0
    w_spec_phase: float = 0.0
    gan_start: int = 0            # first step with adversarial losses
    grad_clip: float = 100.0
    disc: DiscConfig = DiscConfig(channels=16, layers=3, scales=(1,))
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.resolutions or any(h <= 0 or n < h for n, h in self.resolutions):
            raise ValueError(f"resolutions must be (n_fft, hop) pairs with 0 < hop <= n_fft, got {self.resolutions}")
        if self.batch_size <= 0 or self.segment_frames <= 0:
            raise ValueError(f"batch_size ({self.batch_size}) and segment_frames ({self.segment_frames}) must be > 0")
        if min(self.lr, self.w_mel, self.w_stft, self.w_gan, self.w_phase, self.w_spec_mag, self.w_spec_phase) < 0 or self.lr_min > self.lr:
            raise ValueError(f"need lr >= lr_min >= 0 and non-negative loss weights, got lr {self.lr}, "
                             f"lr_min {self.lr_min}, weights {self.w_mel}/{self.w_stft}/{self.w_gan}")
        if min(self.warmup_steps, self.decay_steps, self.gan_start) < 0:
            raise ValueError("warmup_steps, decay_steps and gan_start must be >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def cosine_lr(step: int, lr: float, lr_min: float, warmup: int, decay: int) -> float:
    """(step counted from 1, peak lr, floor, warm-up and decay lengths) -> the learning rate."""
    if warmup and step <= warmup:
        return lr * step / warmup
    if not decay:
        return lr
    t = min(1.0, (step - warmup) / decay)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * t))


def stft_mag(wave: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """[B, T] -> [B, n_fft/2+1, frames] STFT magnitude (Hann window)."""
    win = torch.hann_window(n_fft, device=wave.device, dtype=wave.dtype)
    return torch.stft(wave, n_fft, hop, window=win, return_complex=True).abs().clamp_min(1e-7)


def multi_resolution_stft_loss(fake: torch.Tensor, real: torch.Tensor, resolutions) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over resolutions; waves [B, T]."""
    total = fake.new_zeros(())
    for n_fft, hop in resolutions:
        f, r = stft_mag(fake, n_fft, hop), stft_mag(real, n_fft, hop)
        sc = torch.linalg.norm(r - f, dim=(1, 2)) / torch.linalg.norm(r, dim=(1, 2)).clamp_min(1e-7)
        total = total + sc.mean() + Fn.l1_loss(f.log(), r.log())
    return total / len(resolutions)


def decoder_mels(vae: nn.Module, share: float = 0.5):
    """A Mel-VAE -> `mel_source` for the trainer: the first round(share·B) mels of each batch [B,M,F]
    replaced by decode(posterior mean) of themselves (crops are shuffled, so the split by position
    is random in content and needs no RNG: a resumed run sees the same inputs)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    vae = vae.eval().requires_grad_(False)

    def source(mel: torch.Tensor) -> torch.Tensor:
        k = round(share * mel.shape[0])
        if k == 0:
            return mel
        p = next(vae.parameters())
        part = mel[:k].to(p)
        rec = vae.decode(vae.encode(part).mean, frames=part.shape[-1]).to(mel)   # k M F
        return torch.cat([rec, mel[k:]])

    return source


def phase_error(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Complex STFTs [B,K,F] -> magnitude-weighted phase error: instantaneous phase, group delay
    (phase step along frequency) and instantaneous frequency (phase step along time), each as
    1 − cos(Δ) of unit phasors, so no phase wrapping enters (after APNet's anti-wrapping losses,
    Ai & Ling 2023). The weights are the true STFT's magnitudes (silent bins have no phase)."""
    up, ut = pred / pred.abs().clamp_min(1e-4), true / true.abs().clamp_min(1e-4)  # unit phasors
    w = true.abs()
    w = w / w.sum(dim=(1, 2), keepdim=True).clamp_min(1e-7)                   # B K F, sums to 1 per item

    def err(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return ((1 - (a * b.conj()).real) * weight).sum(dim=(1, 2)).mean()

    ip = err(up, ut, w)
    gd = err(up[:, 1:] * up[:, :-1].conj(), ut[:, 1:] * ut[:, :-1].conj(), torch.minimum(w[:, 1:], w[:, :-1]))
    iaf = err(up[..., 1:] * up[..., :-1].conj(), ut[..., 1:] * ut[..., :-1].conj(),
              torch.minimum(w[..., 1:], w[..., :-1]))
    return ip + gd + iaf


def phase_loss(fake: torch.Tensor, real: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Waves [B,T] -> `phase_error` of their STFTs (Hann window, n_fft, hop)."""
    win = torch.hann_window(n_fft, device=fake.device, dtype=fake.dtype)
    return phase_error(torch.stft(fake, n_fft, hop, window=win, return_complex=True),
                       torch.stft(real, n_fft, hop, window=win, return_complex=True))


def spectrum_magnitude_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Complex STFTs [B,K,F] -> mean |ln|pred| − ln|true|| (magnitudes floored at 1e-5)."""
    return Fn.l1_loss(pred.abs().clamp_min(1e-5).log(), true.abs().clamp_min(1e-5).log())


def _mono(wave: torch.Tensor) -> torch.Tensor:
    """[B, T] or [B, Ch, T] -> [B, T] (the channels' mean)."""
    return wave if wave.dim() == 2 else wave.mean(1)


class VocoderTrainer:
    """Trains `generator(mel [B,M,F]) -> wave [B,1,F·hop]`, with STFT discriminators when w_gan > 0."""

    def __init__(self, generator: nn.Module, cfg: VocoderTrainConfig, clips, mel_fn, *, hop: int = 512,
                 mel_source=None, device=None, ctx: DistContext | None = None,
                 export_dtype: torch.dtype = torch.float32, stft=None) -> None:
        self.ctx = ctx or DistContext(device=torch.device(device or "cpu"))
        if self.ctx.fsdp:
            raise ValueError("vocoders are small: train them with DDP (drop --fsdp); FSDP is for the DiT")
        self.cfg, self.mel_fn, self.device, self.mel_source = cfg, mel_fn, self.ctx.device, mel_source
        self.export_dtype = export_dtype
        # wave [B,T] -> complex STFT [B,K,F] in the generator's framing, for the spectrum losses
        self.stft = stft
        if (cfg.w_spec_mag > 0 or cfg.w_spec_phase > 0) and stft is None:
            raise ValueError("spectrum losses need `stft` (the codec front end's MelSpectrogram.stft)")
        self.gen = generator.to(self.device)
        self.gen_step = wrap(self.gen, self.ctx)
        self.disc = None
        if cfg.w_gan > 0:
            self.disc = MultiResolutionSTFTDiscriminator(cfg.disc, cfg.resolutions).to(self.device)
            self.disc_step = wrap(self.disc, self.ctx)
            self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=cfg.lr, betas=cfg.betas,
                                           weight_decay=cfg.weight_decay)
        self.opt_g = torch.optim.AdamW(self.gen.parameters(), lr=cfg.lr, betas=cfg.betas,
                                       weight_decay=cfg.weight_decay)
        self.batches = ClipBatches(clips, cfg.batch_size, cfg.segment_frames * hop, seed=cfg.seed,
                                   rank=self.ctx.rank, world=self.ctx.world)
        self.step = 0

    def _set_lr(self, step: int) -> float:
        c = self.cfg
        lr = cosine_lr(step, c.lr, c.lr_min, c.warmup_steps, c.decay_steps)
        for opt in (self.opt_g, getattr(self, "opt_d", None)):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = lr
        return lr

    def train_step(self) -> dict[str, float]:
        s = self.step + 1
        lr = self._set_lr(s)
        real = _mono(self.batches.next(s)).to(self.device)                      # B T
        with torch.no_grad():
            mel = self.mel_fn(real)[..., :self.cfg.segment_frames]              # B M F
            inp = self.mel_source(mel) if self.mel_source is not None else mel
        spectrum_losses = self.cfg.w_spec_mag > 0 or self.cfg.w_spec_phase > 0
        if spectrum_losses:
            fake, spec = self.gen_step(inp, return_spectrum=True)               # B 1 T, B K F
            fake = fake[:, 0, :real.shape[-1]]                                  # B T
        else:
            fake = self.gen_step(inp)[:, 0, :real.shape[-1]]                    # B T
        adversarial = self.disc is not None and s >= self.cfg.gan_start
        # the same columns on every row (the metrics CSV keeps the first row's)
        out = {"d": math.nan, "g": math.nan} if self.disc is not None else {}
        if adversarial:  # discriminator first, on a detached fake
            l_d = hinge_d_loss(self.disc_step(real), self.disc_step(fake.detach()))
            self.opt_d.zero_grad(set_to_none=True)
            l_d.backward()
            nn.utils.clip_grad_norm_(self.disc.parameters(), self.cfg.grad_clip)
            self.opt_d.step()
            out["d"] = all_reduce_mean(l_d.detach(), self.ctx).item()
        l_mel = Fn.l1_loss(self.mel_fn(fake)[..., :mel.shape[-1]], mel)
        l_stft = multi_resolution_stft_loss(fake, real, self.cfg.resolutions)
        total = self.cfg.w_mel * l_mel + self.cfg.w_stft * l_stft
        if spectrum_losses:
            true = self.stft(real)[..., :spec.shape[-1]]                        # B K F
            l_smag, l_sphase = spectrum_magnitude_loss(spec, true), phase_error(spec, true)
            total = total + self.cfg.w_spec_mag * l_smag + self.cfg.w_spec_phase * l_sphase
            out["spec_mag"] = all_reduce_mean(l_smag.detach(), self.ctx).item()
            out["spec_phase"] = all_reduce_mean(l_sphase.detach(), self.ctx).item()
        if self.cfg.w_phase > 0:
            l_phase = phase_loss(fake, real, *self.cfg.phase_resolution)
            total = total + self.cfg.w_phase * l_phase
            out["phase"] = all_reduce_mean(l_phase.detach(), self.ctx).item()
        if adversarial:
            l_g = hinge_g_loss(self.disc_step(fake))
            total = total + self.cfg.w_gan * l_g
            out["g"] = all_reduce_mean(l_g.detach(), self.ctx).item()
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_(self.gen.parameters(), self.cfg.grad_clip)
        self.opt_g.step()
        self.step = s
        out.update(loss=all_reduce_mean(total.detach(), self.ctx).item(),
                   mel=all_reduce_mean(l_mel.detach(), self.ctx).item(),
                   stft=all_reduce_mean(l_stft.detach(), self.ctx).item(), lr=lr)
        return out

    def state_dict(self) -> dict:
        state = {"model": self.gen.state_dict(), "opt_g": self.opt_g.state_dict(),
                 "data": self.batches.state_dict(), "rng": rng_state(), "trainer_step": self.step}
        if self.disc is not None:
            state.update(disc=self.disc.state_dict(), opt_d=self.opt_d.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        self.gen.load_state_dict(state["model"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.disc is not None:
            if "disc" not in state:
                raise ValueError("this checkpoint was trained without a discriminator (w_gan 0); "
                                 "resume it with w_gan 0, or start a new run folder")
            self.disc.load_state_dict(state["disc"])
            self.opt_d.load_state_dict(state["opt_d"])
        self.batches.load_state_dict(state["data"])
        set_rng_state(state["rng"])
        self.step = int(state["trainer_step"])

    def export_state(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"": {k: v.detach().cpu().to(self.export_dtype) if v.is_floating_point() else v.detach().cpu()
                     for k, v in self.gen.state_dict().items()}}
