"""Anti-aliased periodic activations for BigVGAN: Kaiser-sinc filters, ×2 resampling, Snake/SnakeBeta.

A periodic non-linearity such as snake creates harmonics above Nyquist; BigVGAN therefore runs it
at twice the sample rate: upsample ×2 (zero-stuffing + low-pass), activation, low-pass + ×2 down.

Filter (`kaiser_sinc_filter`): 12 taps, cutoff 0.25 and transition half-width 0.3, both in
cycles per sample of the ×2 signal (so the cutoff sits at the original signal's Nyquist), Kaiser
window with beta from Kaiser's empirical formula for the attenuation 12 taps can reach
(A ≈ 51 dB -> beta ≈ 4.664), normalised to unit DC gain. The same filter serves the up- and
down-sampler; it equals, bit for bit, the `…upsample.filter` buffers in BigVGAN-v2 checkpoints.

Shape legend: B batch, D channels, T samples.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["kaiser_sinc_filter", "kaiser_beta", "UpSample2x", "DownSample2x", "SnakeBeta", "Snake",
           "Activation1d", "FILTER_TAPS", "FILTER_CUTOFF", "FILTER_HALF_WIDTH"]

FILTER_TAPS = 12          # 6 · ratio, ratio 2
FILTER_CUTOFF = 0.25      # 0.5 / ratio, in cycles per sample
FILTER_HALF_WIDTH = 0.3   # 0.6 / ratio


def kaiser_beta(taps: int, half_width: float) -> float:
    """Kaiser's beta for a filter of `taps` taps and transition half-width -> beta (0 if no attenuation)."""
    # Attenuation A (dB) the filter length can reach for transition width 2·half_width
    # (normalised so 1.0 = sample rate), then Kaiser's piecewise beta(A).
    half = taps // 2
    atten = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if atten > 50.0:
        return 0.1102 * (atten - 8.7)
    if atten >= 21.0:
        return 0.5842 * (atten - 21.0) ** 0.4 + 0.07886 * (atten - 21.0)
    return 0.0


def kaiser_sinc_filter(cutoff: float = FILTER_CUTOFF, half_width: float = FILTER_HALF_WIDTH,
                       taps: int = FILTER_TAPS) -> torch.Tensor:
    """Low-pass design (cutoff, half-width in cycles/sample) -> float32 filter [1, 1, taps], DC gain 1."""
    if not 0.0 <= cutoff <= 0.5:
        raise ValueError(f"cutoff must be in [0, 0.5] cycles per sample, got {cutoff}")
    if taps < 2:
        raise ValueError(f"a filter needs at least 2 taps, got {taps}")
    window = torch.kaiser_window(taps, periodic=False, beta=kaiser_beta(taps, half_width))
    half = taps // 2
    # An even-length filter is centred between two samples, hence the half-sample offset.
    t = (torch.arange(-half, half) + 0.5) if taps % 2 == 0 else (torch.arange(taps) - half)
    if cutoff == 0.0:
        return torch.zeros(1, 1, taps)
    h = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
    h = h / h.sum()
    return h.view(1, 1, taps).float()


class UpSample2x(nn.Module):
    """x [B,D,T] -> [B,D,2T]: zero-stuffing ×2 by a per-channel transposed conv with the low-pass.

    The even-length filter delays the output by half an output sample; `DownSample2x`'s
    asymmetric padding (taps/2 − 1 left, taps/2 right) removes that delay again.
    """

    def __init__(self, taps: int = FILTER_TAPS) -> None:
        super().__init__()
        self.taps = taps
        self.pad = taps // 2 - 1                               # input samples of context per side
        self.crop_left = self.pad * 2 + (taps - 2) // 2        # transposed-conv warm-up to drop
        self.crop_right = self.pad * 2 + (taps - 2 + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter(taps=taps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")                  # B D T+2p
        w = self.filter.to(x.dtype).expand(d, -1, -1)
        # ×2 restores the energy lost by inserting zeros between samples.
        x = 2.0 * F.conv_transpose1d(x, w, stride=2, groups=d)               # B D 2T+...
        return x[..., self.crop_left:x.shape[-1] - self.crop_right]          # B D 2T


class LowPass(nn.Module):
    """x [B,D,T] -> [B,D,T/stride]: per-channel low-pass then decimation (replicate padding)."""

    def __init__(self, taps: int = FILTER_TAPS, stride: int = 2) -> None:
        super().__init__()
        self.stride = stride
        self.pad_left = taps // 2 - int(taps % 2 == 0)
        self.pad_right = taps // 2
        self.register_buffer("filter", kaiser_sinc_filter(taps=taps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")      # B D T+taps-1
        return F.conv1d(x, self.filter.to(x.dtype).expand(d, -1, -1), stride=self.stride, groups=d)


class DownSample2x(nn.Module):
    """x [B,D,2T] -> [B,D,T]; holds its filter as `lowpass.filter` (the checkpoint key)."""

    def __init__(self, taps: int = FILTER_TAPS) -> None:
        super().__init__()
        self.lowpass = LowPass(taps, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class SnakeBeta(nn.Module):
    """x [B,D,T] -> x + sin²(α·x) / β per channel; α, β stored as logs when `log_scale`."""

    def __init__(self, channels: int, log_scale: bool = True) -> None:
        super().__init__()
        self.log_scale = log_scale
        init = torch.zeros(channels) if log_scale else torch.ones(channels)
        self.alpha = nn.Parameter(init.clone())
        self.beta = nn.Parameter(init.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha, scale = self.factors()
        return x + scale * (x * alpha).sin().pow(2)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (α, 1/β) as [1,D,1]: the per-channel factors of x + sin²(α·x)·(1/β)."""
        alpha, beta = (self.alpha.exp(), self.beta.exp()) if self.log_scale else (self.alpha, self.beta)
        return alpha[None, :, None], 1.0 / (beta[None, :, None] + 1e-9)


class Snake(nn.Module):
    """x [B,D,T] -> x + sin²(α·x) / α per channel (the single-parameter snake)."""

    def __init__(self, channels: int, log_scale: bool = True) -> None:
        super().__init__()
        self.log_scale = log_scale
        self.alpha = nn.Parameter(torch.zeros(channels) if log_scale else torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha, scale = self.factors()
        return x + scale * (x * alpha).sin().pow(2)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (α, 1/α) as [1,D,1]: the per-channel factors of x + sin²(α·x)·(1/α)."""
        alpha = (self.alpha.exp() if self.log_scale else self.alpha)[None, :, None]
        return alpha, 1.0 / (alpha + 1e-9)


class Activation1d(nn.Module):
    """x [B,D,T] -> [B,D,T]: ×2 up, periodic activation, low-pass ×2 down (keys upsample/act/downsample).

    Without autograd (generation) the three steps run as one polyphase pass (`_polyphase`): the
    same sums in another order (within 1e-6 of the modules' path), 2-6x faster on the CPU. Training
    keeps the modules' path, and so does every call while `Activation1d.polyphase` is False (benchmarks).
    """

    polyphase = True

    def __init__(self, act: nn.Module, taps: int = FILTER_TAPS) -> None:
        super().__init__()
        self.upsample = UpSample2x(taps)
        self.act = act
        self.downsample = DownSample2x(taps)

    def forward(self, x: torch.Tensor, *, reuse_input: bool = False) -> torch.Tensor:
        """`reuse_input`: the caller no longer needs x, so the polyphase pass may write its result into
        x's memory (no new tensor of x's size: on the CPU each fresh one costs page faults)."""
        if self.polyphase and not torch.is_grad_enabled() and self.upsample.taps == FILTER_TAPS and x.shape[-1] > 0:
            return _polyphase(x, self.upsample.filter, self.downsample.lowpass.filter, self.act,
                              overwrite=reuse_input and not x.requires_grad)
        return self.downsample(self.act(self.upsample(x)))


POLYPHASE_BLOCK = 1 << 18  # elements per block (1 MB in float32): the pass's temporaries stay in cache


def _polyphase(x: torch.Tensor, up: torch.Tensor, down: torch.Tensor, act: nn.Module, *,
               overwrite: bool = False) -> torch.Tensor:
    """`Activation1d` as one pass over time blocks, for its 12-tap filters (into x itself if `overwrite`).

    The ×2 signal u is never built: its even samples u[2j] = e[j] and odd ones u[2j+1] = o[j] are
    each a 6-tap filter of the input (the up-filter's odd / even taps, ×2 for the zeros), the
    activation is pointwise, and the strided low-pass sums the down-filter's odd taps over e and
    its even taps over o. Indices follow the modules exactly: with xp the input replicate-padded by
    5, e[j] = Σk 2·h[2k+1]·xp[j+7-k], o[j] = Σk 2·h[2k]·xp[j+8-k], y[i] = Σk g[k]·u[i·2+k-5] with
    u's replicate padding (before the start u[0] = e[0], past the end u[2T-1] = o[T-1]). Each block
    of outputs computes the e and o it reads (3 samples either side) from the input samples it needs
    (3 more either side; only the first and last block pad), so the whole pass stays in cache
    instead of streaming five tensors of twice the length through memory. Written into x, a block
    waits until the next one has read its input (the blocks' reads reach 6 samples back).
    """
    h = [2.0 * v for v in up.reshape(-1).tolist()]
    g = down.reshape(-1).tolist()
    act = _in_place(act, x.dtype)
    t = x.shape[-1]
    out = None if overwrite else torch.empty_like(x)
    step = max(256, POLYPHASE_BLOCK // max(1, x.shape[0] * x.shape[1]))
    pending: tuple[int, torch.Tensor] | None = None    # overwrite: a finished block not yet written into x
    for a in range(0, t, step):
        b = min(t, a + step)
        j0, j1 = max(a - 3, 0), min(b + 3, t)
        n = j1 - j0
        lo, hi = j0 - 3, j1 + 3                                                # piece[i] = x[lo + i] = xp[lo + 5 + i]
        piece = x[..., max(lo, 0):min(hi, t)]
        if lo < 0 or hi > t:
            piece = F.pad(piece, (max(0, -lo), max(0, hi - t)), mode="replicate")
        e = piece[..., 5:5 + n] * h[1]                                         # B D n  u's even samples
        o = piece[..., 6:6 + n] * h[0]                                         # B D n  and odd ones
        for k in range(1, 6):
            e.add_(piece[..., 5 - k:5 - k + n], alpha=h[2 * k + 1])
            o.add_(piece[..., 6 - k:6 - k + n], alpha=h[2 * k])
        e, o = act(e), act(o)
        # y[a:b] reads e[a-2 : b+3] and o[a-3 : b+2]; what lies outside [0, T) is u's replicate padding
        e_at, o_at = min(j0, a - 2), min(j0, a - 3)                            # index of e[..., 0], o[..., 0]
        if j0 > a - 3:                                                         # before the start: u[0] = e[0]
            first = e[..., :1]
            e = torch.cat([first.expand(*first.shape[:-1], j0 - e_at), e], -1)
            o = torch.cat([first.expand(*first.shape[:-1], j0 - o_at), o], -1)
        if j1 < b + 3:                                                         # past the end: u[2T-1] = o[T-1]
            last = o[..., -1:]
            e = torch.cat([e, last.expand(*last.shape[:-1], b + 3 - j1)], -1)
            o = torch.cat([o, last.expand(*last.shape[:-1], max(0, b + 2 - j1))], -1)
        m = b - a
        y = out[..., a:b] if out is not None else x.new_empty(*x.shape[:-1], m)
        torch.mul(e[..., a - 2 - e_at:a - 2 - e_at + m], g[1], out=y)
        for k in range(3, 12, 2):
            s = a + (k - 5) // 2 - e_at
            y.add_(e[..., s:s + m], alpha=g[k])
        for k in range(0, 12, 2):
            s = a + (k - 6) // 2 - o_at
            y.add_(o[..., s:s + m], alpha=g[k])
        if out is None:
            if pending is not None:
                x[..., pending[0]:a].copy_(pending[1])
            pending = (a, y)
    if out is None:
        if pending is not None:
            x[..., pending[0]:].copy_(pending[1])
        return x
    return out


def _in_place(act: nn.Module, dtype: torch.dtype):
    """A snake module -> a function that applies it to a temporary in place, its factors computed once
    for the whole pass (not per block and call), in the module's order of operations, so the values
    are the module's; any other activation is called as it is."""
    if not isinstance(act, (Snake, SnakeBeta)):
        return act
    alpha, scale = act.factors()
    if alpha.dtype != dtype:  # the module would promote the result to its parameters' dtype
        return act

    def apply(x: torch.Tensor) -> torch.Tensor:
        s = torch.mul(x, alpha).sin_()
        return x.add_(s.mul_(s).mul_(scale))
    return apply
