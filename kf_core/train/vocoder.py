"""Vocoder trainer: GAN (multi-resolution STFT discriminators) + mel L1 + multi-resolution STFT losses.

With `mel_source` the generator learns from mels the Mel-VAE decoder produced (paper §4.5.2
stage 4: the vocoder adapts to the decoder's errors) instead of the true mels.

Shape legend: B batch, M mel bins, F mel frames, T samples.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as Fn
from torch import nn

from .checkpoint import rng_state, set_rng_state
from .clips import ClipBatches
from .gan import DiscConfig, SpecDiscriminator, hinge_d_loss, hinge_g_loss

__all__ = ["VocoderTrainConfig", "VocoderTrainer", "stft_mag", "multi_resolution_stft_loss"]


@dataclass(frozen=True)
class VocoderTrainConfig:
    batch_size: int = 8
    segment_frames: int = 32
    lr: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop)
    w_mel: float = 45.0
    w_stft: float = 1.0
    w_gan: float = 1.0
    grad_clip: float = 100.0
    disc: DiscConfig = DiscConfig(channels=16, layers=3, scales=(1,))
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.resolutions or any(h <= 0 or n < h for n, h in self.resolutions):
            raise ValueError(f"resolutions must be (n_fft, hop) pairs with 0 < hop <= n_fft, got {self.resolutions}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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


class VocoderTrainer:
    """Trains `generator(mel [B,M,F]) -> wave [B,1,F·hop]` against one STFT discriminator per resolution."""

    def __init__(self, generator: nn.Module, cfg: VocoderTrainConfig, clips, mel_fn, *, hop: int = 512,
                 mel_source=None, device="cpu") -> None:
        self.cfg, self.mel_fn, self.device, self.mel_source = cfg, mel_fn, torch.device(device), mel_source
        self.gen = generator.to(self.device)
        self.discs = nn.ModuleList(SpecDiscriminator(cfg.disc) for _ in cfg.resolutions).to(self.device)
        self.opt_g = torch.optim.AdamW(self.gen.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.opt_d = torch.optim.AdamW(self.discs.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.batches = ClipBatches(clips, cfg.batch_size, cfg.segment_frames * hop, seed=cfg.seed)
        self.step = 0

    def _judge(self, wave: torch.Tensor) -> list[torch.Tensor]:
        return [d(stft_mag(wave, n, h).log()) for d, (n, h) in zip(self.discs, self.cfg.resolutions)]

    def train_step(self) -> dict[str, float]:
        real = self.batches.next(self.step + 1).to(self.device)                # B T
        with torch.no_grad():
            mel = self.mel_fn(real)[..., :self.cfg.segment_frames]              # B M F
            inp = self.mel_source(mel) if self.mel_source is not None else mel
        fake = self.gen(inp)[:, 0, :real.shape[-1]]                            # B T
        # discriminator first, on a detached fake
        l_d = hinge_d_loss(self._judge(real), self._judge(fake.detach()))
        self.opt_d.zero_grad(set_to_none=True)
        l_d.backward()
        nn.utils.clip_grad_norm_(self.discs.parameters(), self.cfg.grad_clip)
        self.opt_d.step()
        l_mel = Fn.l1_loss(self.mel_fn(fake)[..., :mel.shape[-1]], mel)
        l_stft = multi_resolution_stft_loss(fake, real, self.cfg.resolutions)
        l_g = hinge_g_loss(self._judge(fake))
        total = self.cfg.w_mel * l_mel + self.cfg.w_stft * l_stft + self.cfg.w_gan * l_g
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_(self.gen.parameters(), self.cfg.grad_clip)
        self.opt_g.step()
        self.step += 1
        return {"loss": total.item(), "mel": l_mel.item(), "stft": l_stft.item(), "g": l_g.item(),
                "d": l_d.item(), "lr": self.opt_g.param_groups[0]["lr"]}

    def state_dict(self) -> dict:
        return {"model": self.gen.state_dict(), "disc": self.discs.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "data": self.batches.state_dict(), "rng": rng_state(),
                "trainer_step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.gen.load_state_dict(state["model"])
        self.discs.load_state_dict(state["disc"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.batches.load_state_dict(state["data"])
        set_rng_state(state["rng"])
        self.step = int(state["trainer_step"])

    def export_state(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"": {k: v.detach().cpu() for k, v in self.gen.state_dict().items()}}
