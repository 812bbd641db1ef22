"""Embedding: waveform in, the same waveform with its keyed spectral mark added out.

    marked = embed_watermark(wave [..., T], sample_rate, Payload(model, seed), key="kling-foley")

Every STFT tile of the band gets its magnitude scaled by 1 ± strength (the tile's sign; less on
a steady tone, where a level step would be heard first), phases untouched; the change is computed as a separate signal and added to the input, so the host is
kept sample for sample and only the mark is new. Silence stays silent (the mark is proportional
to what is there). Every channel gets the same pattern, so a mono downmix keeps the mark.
"""
from __future__ import annotations

import torch

from ..io import resample
from .code import Payload, encode
from .pattern import DEFAULT_KEY, WatermarkConfig, pattern_for

__all__ = ["embed_watermark", "tile_gain"]


def tile_gain(signs, cfg: WatermarkConfig, frames: int) -> torch.Tensor:
    """Tile signs [S, Bn] -> the relative magnitude change per embedding frame and band [F, Bn]
    (F frames `cfg.embed_hop` apart from the clip's start; the period repeats)."""
    signs = torch.as_tensor(signs, dtype=torch.float32)
    slot = (torch.arange(frames) * cfg.embed_hop // (cfg.slot_frames * cfg.hop)) % cfg.slots   # F
    return cfg.strength * signs[slot]                                                # F Bn


def _tonal_relief(power: torch.Tensor, cfg: WatermarkConfig) -> torch.Tensor:
    """Band power per frame [N, F, Bn] -> a factor on the mark [N, F, Bn]: 1 where a tile's band is
    level with its neighbours (noise, a dense texture: the change is masked), down to
    cfg.tonal_relief where it stands out above them by cfg.tonal_nats on average over the tile
    (a partial, a beep: a steady tone's level stepping from tile to tile is heard first)."""
    f, nb = power.shape[1:]
    e = power.clamp_min(1e-20).log()
    padded = torch.nn.functional.pad(e, (2, 2), mode="replicate")                   # N F Bn+4
    rel = e - 0.25 * (padded[..., :-4] + padded[..., 1:-3] + padded[..., 3:-1] + padded[..., 4:])
    per = cfg.slot_frames * cfg.hop // cfg.embed_hop                                # frames per tile
    k = -(-f // per)
    tiles = torch.nn.functional.pad(rel, (0, 0, 0, k * per - f)).reshape(-1, k, per, nb).mean(2)  # N k Bn
    lo, hi = cfg.tonal_nats
    factor = ((hi - tiles) / (hi - lo)).clamp(cfg.tonal_relief, 1.0)
    return factor.repeat_interleave(per, 1)[:, :f]                                  # N F Bn


def _mark(x: torch.Tensor, signs, cfg: WatermarkConfig) -> torch.Tensor:
    """Host [N, T] at cfg.sample_rate -> the mark signal [N, T]: the band's STFT times the gain,
    resynthesised by windowed overlap-add (Hann at a quarter-window hop sums to a constant, so
    this equals torch.istft away from the clip's first and last 12 ms, at a third of its cost)."""
    n, hop, t = cfg.n_fft, cfg.embed_hop, x.shape[-1]
    window = torch.hann_window(n, dtype=x.dtype, device=x.device)
    # the STFT (centred frames, reflect padding, as torch.stft), kept frame-major for the synthesis
    padded = torch.nn.functional.pad(x[:, None], (n // 2, n // 2), mode="reflect")[:, 0]
    spec = torch.fft.rfft(padded.unfold(-1, n, hop) * window)                      # N F K'
    lo, hi = cfg.bin_range
    n_ch, f = spec.shape[:2]
    host = spec[..., lo:hi]                                                         # N F K
    power = torch.view_as_real(host).square().sum(-1).reshape(n_ch, f, cfg.n_bands, cfg.band_bins).sum(-1)
    gain = tile_gain(signs, cfg, f).to(x.device) * _tonal_relief(power, cfg)       # N F Bn
    band = torch.zeros(n_ch, f, hi, dtype=spec.dtype, device=x.device)              # N F hi
    band[..., lo:hi] = host * gain.repeat_interleave(cfg.band_bins, -1)
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
        mark = _mark(x, signs, cfg)
    else:  # the mark lives at 44.1 kHz below 7 kHz, so it resamples back without loss
        up = torch.cat([resample(row[None].cpu(), sample_rate, cfg.sample_rate) for row in x])
        mark44 = _mark(up, signs, cfg)
        mark = torch.cat([resample(row[None], cfg.sample_rate, sample_rate) for row in mark44]).to(x.device)
    return (x + mark).clamp(-1.0, 1.0).reshape(wave.shape)
