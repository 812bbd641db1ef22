"""Embedding: waveform in, the same waveform with its keyed spectral mark added out.

    marked = embed_watermark(wave [..., T], sample_rate, Payload(model, seed), key="kling-foley")

Every STFT tile of the band gets its magnitude scaled by 1 ± strength (the tile's sign), phases
untouched; the change is computed as a separate signal and added to the input, so the host is
kept sample for sample and only the mark is new. Silence stays silent (the mark is proportional
to what is there). Every channel gets the same pattern, so a mono downmix keeps the mark.
"""
from __future__ import annotations

import torch

from ..io import resample
from .code import Payload, encode
from .pattern import DEFAULT_KEY, WatermarkConfig, pattern_for

__all__ = ["embed_watermark", "mark_gain"]


def mark_gain(signs, cfg: WatermarkConfig, frames: int, hop: int) -> torch.Tensor:
    """Tile signs [S, Bn] -> the relative magnitude change per band bin and frame [K, F]
    (K bins of the band, F frames `hop` apart from the clip's start; the period repeats)."""
    signs = torch.as_tensor(signs, dtype=torch.float32)
    slot = (torch.arange(frames) * hop // (cfg.slot_frames * cfg.hop)) % cfg.slots  # F
    per_frame = signs[slot].T                                                       # Bn F
    return cfg.strength * per_frame.repeat_interleave(cfg.band_bins, dim=0)        # K F


def _mark(x: torch.Tensor, gain_fn, cfg: WatermarkConfig) -> torch.Tensor:
    """Host [N, T] at cfg.sample_rate -> the mark signal [N, T]: the band's STFT times the gain,
    resynthesised by windowed overlap-add (Hann at a quarter-window hop sums to a constant, so
    this equals torch.istft away from the clip's first and last 12 ms, at a third of its cost)."""
    n, hop, t = cfg.n_fft, cfg.embed_hop, x.shape[-1]
    window = torch.hann_window(n, dtype=x.dtype, device=x.device)
    spec = torch.stft(x, n, hop, window=window, center=True, return_complex=True)   # N K' F
    lo, hi = cfg.bin_range
    f = spec.shape[-1]
    band = torch.zeros(spec.shape[0], f, hi, dtype=spec.dtype, device=x.device)      # N F hi
    band[:, :, lo:hi] = spec[:, lo:hi].transpose(1, 2) * gain_fn(f).T.to(x.device)
    frames = torch.fft.irfft(band, n=n) * window                                    # N F n
    r = n // hop
    parts = frames.reshape(-1, f, r, hop)                                           # N F r hop
    out = torch.zeros(parts.shape[0], f + r - 1, hop, dtype=x.dtype, device=x.device)
    for j in range(r):                                                              # overlap-add
        out[:, j:j + f] += parts[:, :, j]
    envelope = window.square().sum() / hop                                          # 1.5 for Hann, n/4
    return out.reshape(out.shape[0], -1)[:, n // 2:n // 2 + t] / envelope          # N T


def embed_watermark(wave: torch.Tensor, sample_rate: int, payload: Payload, *, key: str = DEFAULT_KEY,
                    cfg: WatermarkConfig = WatermarkConfig()) -> torch.Tensor:
    """Waveform [..., T] (float, any rate; [B,C,T] batches too) -> marked float32 [..., T] in [-1, 1].

    `payload` is what the detector reads back; `key` selects the pattern (only the same key
    detects it). Clips of any length are marked; detection needs about 1.5 s of sound or more.
    """
    if not isinstance(payload, Payload):
        raise TypeError(f"payload must be a kf_core.watermark.Payload, not {type(payload).__name__}")
    if wave.shape[-1] == 0:
        return wave.float()
    pat = pattern_for(key, cfg)
    signs = pat.signs(encode(payload))
    x = wave.detach().float().reshape(-1, wave.shape[-1])                          # N T
    if sample_rate == cfg.sample_rate:
        mark = _mark(x, lambda f: mark_gain(signs, cfg, f, cfg.embed_hop), cfg)
    else:  # the mark lives at 44.1 kHz below 7 kHz, so it resamples back without loss
        up = resample(x.cpu(), sample_rate, cfg.sample_rate)
        mark44 = _mark(up, lambda f: mark_gain(signs, cfg, f, cfg.embed_hop), cfg)
        mark = resample(mark44, cfg.sample_rate, sample_rate).to(x.device)
    return (x + mark).clamp(-1.0, 1.0).reshape(wave.shape)
