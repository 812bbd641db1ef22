"""Output level: keep every take inside full scale without hard clipping.

    wave = set_level(wave, sample_rate, "limit", ceiling_db=-1.0)     # [..., C, T] -> [..., C, T]

- "limit": a look-ahead peak limiter, linked across channels (the stereo image stays put). Where
  the peaks stay under the ceiling the wave is returned untouched, sample for sample; around a
  louder peak the gain dips smoothly — it starts `attack_ms` before the peak (the whole clip is
  known, so looking ahead costs nothing) and recovers exponentially in dB with `release_ms`.
  The output peak never passes the ceiling.
- "normalize": one gain per take so that its peak sits at the ceiling (quiet takes get louder).
- "clip": hard clip at full scale (what the pipeline always did).

Shape legend: N takes (all leading dims), C channels, T samples.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["MODES", "set_level", "peak_limit", "normalize_peak", "limiter_gain"]

MODES = ("limit", "normalize", "clip")


def _ceiling(ceiling_db: float) -> float:
    if not (math.isfinite(ceiling_db) and -60.0 <= ceiling_db <= 0.0):
        raise ValueError(f"ceiling_db must be between -60 and 0 dBFS, got {ceiling_db}")
    return 10.0 ** (ceiling_db / 20.0)


def _check(wave: torch.Tensor) -> None:
    if wave.dim() < 2:
        raise ValueError(f"expected a wave [..., channels, samples], got shape {tuple(wave.shape)}")


def limiter_gain(peak: torch.Tensor, sample_rate: int, *, ceiling: float, attack_ms: float = 2.0,
                 release_ms: float = 60.0) -> torch.Tensor:
    """Per-sample peak [N,T] (the loudest channel) -> gain [N,T] float64 in (0,1], gain·peak <= ceiling.

    g = min(1, ceiling/peak) is the gain each sample needs. Release: the needed reduction r (in dB)
    is held as max_u r[u]·exp(-(t-u)/τ) — computed without a loop as a running max in the log
    domain. Attack: a running min over the next A samples, then a running mean over the last A;
    every mean it takes only includes values <= the gain needed at t, so the bound holds exactly.
    """
    if sample_rate <= 0 or attack_ms < 0 or release_ms <= 0:
        raise ValueError(f"need sample_rate > 0, attack_ms >= 0, release_ms > 0; got {sample_rate}, "
                         f"{attack_ms}, {release_ms}")
    peak = peak.double()
    need_db = (20.0 * torch.log10(peak.clamp_min(1e-30) / ceiling)).clamp_min(0.0)   # N T, dB to take off
    t = torch.arange(peak.shape[-1], dtype=torch.float64, device=peak.device) / (release_ms * 1e-3 * sample_rate)
    held_db = torch.exp(torch.cummax(torch.log(need_db) + t, dim=-1).values - t)     # N T, log(0) = -inf: 0 dB
    gain = 10.0 ** (-held_db / 20.0)                                                 # N T
    a = max(1, round(attack_ms * 1e-3 * sample_rate))
    if a == 1:
        return gain
    padded = F.pad(gain[:, None], (a - 1, a - 1), value=1.0)                         # N 1 T+2(a-1)
    ahead_min = -F.max_pool1d(-padded, a, stride=1)                                  # N 1 T+a-1
    return F.avg_pool1d(ahead_min, a, stride=1)[:, 0]                                # N T


def peak_limit(wave: torch.Tensor, sample_rate: int, *, ceiling_db: float = -1.0, attack_ms: float = 2.0,
               release_ms: float = 60.0) -> torch.Tensor:
    """Wave [..., C, T] -> the same wave with its peaks held at or under `ceiling_db` dBFS."""
    _check(wave)
    ceiling = _ceiling(ceiling_db)
    flat = wave.reshape(-1, *wave.shape[-2:])                                        # N C T
    peak = flat.abs().amax(dim=1)                                                    # N T
    if not bool((peak > ceiling).any()):
        return wave
    gain = limiter_gain(peak, sample_rate, ceiling=ceiling, attack_ms=attack_ms, release_ms=release_ms)
    out = (flat.double() * gain[:, None]).to(wave.dtype)                             # N C T
    return out.clamp(-ceiling, ceiling).reshape(wave.shape)  # the cast to float32 may round up by 1 ulp


def normalize_peak(wave: torch.Tensor, *, ceiling_db: float = -1.0) -> torch.Tensor:
    """Wave [..., C, T] -> each take scaled so its peak is `ceiling_db` dBFS (silence stays silent)."""
    _check(wave)
    ceiling = _ceiling(ceiling_db)
    peak = wave.abs().amax(dim=(-2, -1), keepdim=True)                               # ... 1 1
    gain = torch.where(peak > 0, ceiling / peak.clamp_min(1e-30), torch.ones_like(peak))
    return (wave * gain).clamp(-ceiling, ceiling)


def set_level(wave: torch.Tensor, sample_rate: int, mode: str = "limit", ceiling_db: float = -1.0) -> torch.Tensor:
    """Wave [..., C, T] -> inside full scale by `mode` ("limit" | "normalize" | "clip", see above)."""
    if mode == "limit":
        return peak_limit(wave, sample_rate, ceiling_db=ceiling_db)
    if mode == "normalize":
        return normalize_peak(wave, ceiling_db=ceiling_db)
    if mode == "clip":
        return wave.clamp(-1.0, 1.0)
    raise ValueError(f"output level mode must be one of {', '.join(MODES)}; got {mode!r}")
