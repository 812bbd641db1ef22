"""Adversarial pieces shared by the codec trainers: a multi-scale spectrogram discriminator,
hinge losses and the R1 gradient penalty.

Shape legend: B batch, M frequency bins (mel or STFT), F frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as Fn
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["DiscConfig", "SpecDiscriminator", "MultiScaleSpecDiscriminator", "MultiResolutionSTFTDiscriminator",
           "hinge_d_loss", "hinge_g_loss", "r1_penalty"]


@dataclass(frozen=True)
class DiscConfig:
    """Widths and scales of the multi-scale spectrogram discriminator."""

    channels: int = 32
    layers: int = 4
    scales: tuple[int, ...] = (1, 2, 4)  # average-pool factors over (M, F)

    def __post_init__(self) -> None:
        if self.channels <= 0 or self.layers <= 0 or not self.scales or min(self.scales) < 1:
            raise ValueError(f"DiscConfig needs positive channels/layers and scales >= 1, got {self}")


class SpecDiscriminator(nn.Module):
    """[B, M, F] spectrogram -> [B, 1, M', F'] real/fake logits from a strided 2-D conv stack."""

    def __init__(self, cfg: DiscConfig) -> None:
        super().__init__()
        ch, layers = cfg.channels, []
        c_in = 1
        for i in range(cfg.layers):
            c_out = ch * min(2 ** i, 8)
            layers.append(weight_norm(nn.Conv2d(c_in, c_out, (3, 9), stride=(1, 2) if i else 1, padding=(1, 4))))
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.out = weight_norm(nn.Conv2d(c_in, 1, 3, padding=1))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        h = spec[:, None]                                   # B 1 M F
        for conv in self.convs:
            h = Fn.leaky_relu(conv(h), 0.2)                 # B ch M F'
        return self.out(h)                                  # B 1 M F'


class MultiScaleSpecDiscriminator(nn.Module):
    """[B, M, F] -> list of logit maps, one per scale (the input average-pooled by 1, 2, 4, ...)."""

    def __init__(self, cfg: DiscConfig = DiscConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.discs = nn.ModuleList(SpecDiscriminator(cfg) for _ in cfg.scales)

    def forward(self, spec: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for s, d in zip(self.cfg.scales, self.discs):
            x = Fn.avg_pool2d(spec[:, None], s, ceil_mode=True)[:, 0] if s > 1 else spec  # B M/s F/s
            out.append(d(x))
        return out


class MultiResolutionSTFTDiscriminator(nn.Module):
    """Waves [B, T] -> one logit map per STFT resolution, each from a SpecDiscriminator on the log
    magnitude (the vocoder's judges; one module so a distributed run wraps it once)."""

    def __init__(self, cfg: DiscConfig, resolutions: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        self.resolutions = tuple(resolutions)
        self.discs = nn.ModuleList(SpecDiscriminator(cfg) for _ in self.resolutions)

    def forward(self, wave: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for (n_fft, hop), d in zip(self.resolutions, self.discs):
            win = torch.hann_window(n_fft, device=wave.device, dtype=wave.dtype)
            mag = torch.stft(wave, n_fft, hop, window=win, return_complex=True).abs().clamp_min(1e-7)
            out.append(d(mag.log()))                        # B 1 K' F'
        return out


def hinge_d_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Discriminator hinge loss (eq. 6): E[max(0, 1 − D(real))] + E[max(0, 1 + D(fake))], summed over scales."""
    return sum(Fn.relu(1 - r).mean() + Fn.relu(1 + f).mean() for r, f in zip(real, fake))


def hinge_g_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """Generator loss (eq. 4): −E[D(fake)], summed over scales."""
    return sum(-f.mean() for f in fake)


def r1_penalty(disc: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """R1 (eq. 7): E ||∇_x D(x)||² at real inputs x (the standard form; penalises D's slope on data)."""
    x = real.detach().requires_grad_(True)
    score = sum(o.sum() for o in disc(x))
    (grad,) = torch.autograd.grad(score, x, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()
