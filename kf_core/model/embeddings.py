"""Feed-forward pieces of the DiT: SwiGLU MLPs, channel-last convs, per-stream input projections,
the flow-time embedding and the per-second duration embeddings.

Shapes: B batch, L any token count, D width, F timestep sinusoid width.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ChannelLastConv1d", "SwiGLU", "InputProjection", "TimestepEmbedder", "DurationEmbedder",
           "timestep_frequencies", "ffn", "zero_padding"]


def zero_padding(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """x [B, L, D] with padded positions (mask [B, L] False) set to exactly 0; x itself if mask is None.

    The one place padding is cleared: a time conv (kernel > 1) over a padded clip then reads the
    same zeros at the clip's end as its own same-length padding would, so the last real tokens
    never see their neighbours' padding. `masked_fill`, not a product, so NaN/inf padding is gone too.
    """
    return x if mask is None else x.masked_fill(~mask[..., None], 0)


class ChannelLastConv1d(nn.Conv1d):
    """Conv1d over time for channel-last tokens: [B, L, Din] -> [B, L, Dout] (same-length padding)."""

    def __init__(self, d_in: int, d_out: int, kernel: int, bias: bool = True, device=None, dtype=None):
        super().__init__(d_in, d_out, kernel, padding=kernel // 2, bias=bias, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)     # B L Dout


def _linear_or_conv(d_in: int, d_out: int, kernel: int, bias: bool, **factory) -> nn.Module:
    if kernel == 1:
        return nn.Linear(d_in, d_out, bias=bias, **factory)
    return ChannelLastConv1d(d_in, d_out, kernel, bias=bias, **factory)


class SwiGLU(nn.Module):
    """[B, L, D] -> [B, L, D]: w2(silu(w1 x) * w3 x), bias-free; kernel > 1 makes w1..w3 time convs."""

    def __init__(self, dim: int, hidden: int, kernel: int = 1, device=None, dtype=None):
        super().__init__()
        f = dict(device=device, dtype=dtype)
        self.kernel = kernel
        self.w1 = _linear_or_conv(dim, hidden, kernel, False, **f)
        self.w2 = _linear_or_conv(hidden, dim, kernel, False, **f)
        self.w3 = _linear_or_conv(dim, hidden, kernel, False, **f)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """mask [B, L] (True = real token) keeps padding out of the convs; point-wise MLPs ignore it."""
        if mask is None or self.kernel == 1:
            return self.w2(F.silu(self.w1(x)) * self.w3(x))           # B L D
        x = zero_padding(x, mask)
        h = zero_padding(F.silu(self.w1(x)) * self.w3(x), mask)        # B L hidden
        return self.w2(h)                                              # B L D


def ffn(dim: int, hidden: int, kernel: int, **factory) -> SwiGLU:
    return SwiGLU(dim, hidden, kernel, **factory)


class InputProjection(nn.Module):
    """[B, L, Din] -> [B, L, D]: `proj` (Linear, or conv of `in_kernel`), optional activation, SwiGLU.

    The activation is a config choice: SiLU (Kling-Foley, MMAudio v2), SELU (MMAudio v1 audio/sync),
    or none (MMAudio v1 visual/text).
    """

    def __init__(self, d_in: int, dim: int, hidden: int, *, in_kernel: int, mlp_kernel: int,
                 activation: str | None, device=None, dtype=None):
        super().__init__()
        f = dict(device=device, dtype=dtype)
        self.in_kernel = in_kernel
        self.proj = _linear_or_conv(d_in, dim, in_kernel, True, **f)
        self.act = {"silu": nn.SiLU(), "selu": nn.SELU(), None: nn.Identity()}[activation]
        self.mlp = SwiGLU(dim, hidden, mlp_kernel, **f)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """mask [B, L] (True = real token): padding never reaches a real token through a conv."""
        if mask is None:
            return self.mlp(self.act(self.proj(x)))                   # B L D
        h = self.act(self.proj(zero_padding(x, mask)))                # B L D
        return self.mlp(h, mask)                                      # B L D


def timestep_frequencies(dim: int, max_period: float) -> torch.Tensor:
    """-> [dim/2] float32 frequencies 10000^(-2i/dim) * (10000/max_period), built on CPU.

    Built exactly this way (float32 power on CPU, then the scale) because with max_period=1 the
    frequencies reach 1e4 rad and an ulp of difference moves the phase (fixture gotcha G5).
    """
    base = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    return (10000 / max_period) * base


class TimestepEmbedder(nn.Module):
    """Flow time t [B] in [0, 1] (used as is, no x1000) -> [B, D]: [cos, sin] sinusoid -> MLP."""

    def __init__(self, dim: int, freq_dim: int, max_period: float, device=None, dtype=None):
        super().__init__()
        self.freq_dim, self.max_period = freq_dim, max_period
        self.fc1 = nn.Linear(freq_dim, dim, device=device, dtype=dtype)
        self.fc2 = nn.Linear(dim, dim, device=device, dtype=dtype)
        self._freqs: dict[torch.device, torch.Tensor] = {}  # not a buffer: models are built on meta

    def frequencies(self, device: torch.device) -> torch.Tensor:
        if device not in self._freqs:
            self._freqs[device] = timestep_frequencies(self.freq_dim, self.max_period).to(device)
        return self._freqs[device]

    def sinusoid(self, t: torch.Tensor) -> torch.Tensor:
        """[B] -> [B, F] float32, cos first."""
        args = t[:, None].float() * self.frequencies(t.device)[None]   # B F/2
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # B F

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        h = self.sinusoid(t).to(self.fc1.weight.dtype)                 # B F
        return self.fc2(F.silu(self.fc1(h)))                            # B D


class DurationEmbedder(nn.Module):
    """Seconds [B] (float) -> [B, D]: learnable per-second embeddings (paper §4.2).

    Whole seconds index the table directly; a fractional duration interpolates linearly between
    its two neighbouring seconds, so 2.37 s is distinguishable from 2 s. Values are clamped to
    [0, max_seconds].
    """

    def __init__(self, dim: int, max_seconds: int, device=None, dtype=None):
        super().__init__()
        self.max_seconds = max_seconds
        self.table = nn.Embedding(max_seconds + 1, dim, device=device, dtype=dtype)

    def forward(self, seconds: torch.Tensor) -> torch.Tensor:
        s = seconds.float().clamp(0, self.max_seconds)                 # B
        lo = s.floor().long().clamp(max=self.max_seconds)
        hi = (lo + 1).clamp(max=self.max_seconds)
        w = (s - lo.float())[:, None].to(self.table.weight.dtype)      # B 1
        return self.table(lo) * (1 - w) + self.table(hi) * w           # B D
