"""Detection: any waveform in, whether it carries a key's mark (with a calibrated score) and its payload out.

    d = detect_watermark(wave [C,T] or [T], sample_rate, key="kling-foley")
    d.present, d.score, d.p_value, d.payload

How the score is calibrated. The detector reduces the audio to one number per tile v_i (the
tile's log-power minus that of its neighbouring bands, divided by the local variance of such
values, floored at what the mark alone would give) and correlates the pilot tiles with the key's
pilot signs w_i: z = Σ w_i v_i / sqrt(Σ v_i²). For audio that does not carry this key's mark the
w_i are fair ±1 coins independent of the audio, whatever it is, so z has mean 0, variance 1, and
by Hoeffding's inequality P(z ≥ t) ≤ exp(-t²/2) for any audio — no Gaussian approximation. The
detector tries each of the period's 256 frames as the excerpt's start and keeps the best; the
union bound gives p = min(1, 256·exp(-z²/2)). "present" means p ≤ `fpr` (default 1e-3: z ≥ 4.99),
so at most one unmarked file in a thousand is flagged: a guarantee, not a tuned threshold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..io import resample
from .code import CODED_BITS, PAYLOAD_BITS, Payload, decode, viterbi
from .pattern import DEFAULT_KEY, Pattern, WatermarkConfig, pattern_for

__all__ = ["Detection", "detect_watermark", "tile_scores", "DEFAULT_FPR"]

DEFAULT_FPR = 1e-3
_FLOOR = 1e-11          # power per bin this far (158 dB) below a full-scale tone's is no sound: no mark
_CHUNK_FRAMES = 4096    # STFT frames computed at once (24 s)
_NOISE_BLOCKS = 4      # the local noise of a tile is measured over ±4 slots
_NOISE_BANDS = 1        # and ±1 band
_CLIP = 4.0             # tile values clipped at this many RMS


@dataclass(frozen=True)
class Detection:
    """The verdict on one waveform."""

    present: bool
    score: float                  # the best pilot z-score over all alignments
    p_value: float                # a bound on the chance of a score this high without the mark
    threshold: float              # the z-score that `fpr` corresponds to here
    payload: Payload | None       # None when not present, or when its CRC does not check
    offset_s: float               # how far into the mark's period the audio starts (a found time shift)
    seconds: float                # audio examined
    bits: np.ndarray | None = None  # the decoded 32 payload bits even if the CRC failed (diagnostics)

    def __str__(self) -> str:
        verdict = "MARKED" if self.present else "not marked"
        pay = (str(self.payload) if self.payload is not None else "unreadable") if self.present else "-"
        return (f"{verdict}: score z={self.score:.2f} (threshold {self.threshold:.2f}, p={self.p_value:.2g}), "
                f"payload {pay}")


def _mono44(wave: torch.Tensor, sample_rate: int, cfg: WatermarkConfig) -> torch.Tensor:
    x = torch.as_tensor(wave).detach().float().cpu()
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"detect one clip at a time: a waveform [C,T] or [T], got shape {tuple(x.shape)}")
    x = x.mean(0, keepdim=True)                                                    # 1 T
    if sample_rate != cfg.sample_rate:
        x = resample(x, sample_rate, cfg.sample_rate)
    return x[0]


def _band_features(x: torch.Tensor, cfg: WatermarkConfig) -> np.ndarray:
    """Mono wave [T] -> log-power per frame, summed over each band's bins [F, Bn] (the frames of a
    centred STFT, computed a chunk at a time so an hour of audio needs no more memory than 30 s)."""
    n, hop = cfg.n_fft, cfg.hop
    window = torch.hann_window(n)
    padded = torch.nn.functional.pad(x[None, None], (n // 2, n // 2), mode="reflect")[0, 0]
    frames = (padded.shape[-1] - n) // hop + 1
    lo, hi = cfg.bin_range
    out = []
    for f0 in range(0, frames, _CHUNK_FRAMES):
        f1 = min(frames, f0 + _CHUNK_FRAMES)
        chunk = padded[f0 * hop:(f1 - 1) * hop + n]
        spec = torch.stft(chunk, n, hop, window=window, center=False, return_complex=True)   # K' F
        logp = spec[lo:hi].abs().square().clamp_min(_FLOOR).log().double().numpy()          # K F
        out.append(logp.reshape(cfg.n_bands, cfg.band_bins, -1).sum(1).T)                    # F Bn
    return np.concatenate(out)


def _box(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Mean over a centred (2·rows+1) x (2·cols+1) window [same shape] (at the edges: what exists)."""
    def window_sum(z: np.ndarray) -> np.ndarray:
        c = np.cumsum(np.cumsum(np.pad(z, ((rows + 1, rows), (cols + 1, cols))), 0), 1)
        r, k = 2 * rows + 1, 2 * cols + 1
        return c[r:, k:] - c[:-r, k:] - c[r:, :-k] + c[:-r, :-k]
    return window_sum(a) / window_sum(np.ones_like(a))


def _residual(mean: np.ndarray) -> np.ndarray:
    """Block log-powers [K, Bn] -> each minus the mean of the bands ±1 and ±2 at the same time
    (0 for the two outermost bands on each side, which have no such neighbours)."""
    d = np.zeros_like(mean)
    d[:, 2:-2] = mean[:, 2:-2] - 0.25 * (mean[:, :-4] + mean[:, 1:-3] + mean[:, 3:-1] + mean[:, 4:])
    return d


def tile_scores(e: np.ndarray, cfg: WatermarkConfig) -> np.ndarray:
    """Band features [F, Bn] -> per frame phase φ, whitened tile values folded onto one period [T_b, S, Bn].

    Block k holds the frames t with (t + φ) // T_b = k. A block's value is its log-power minus its
    neighbouring bands' (`_residual`), divided by the local variance of such values (tiles over a
    loud, busy host count for less). Blocks k ≡ s (mod S) are summed into slot s."""
    f, nb = e.shape
    tb, s = cfg.slot_frames, cfg.slots
    # a tile's variance is at least what the mark alone would give it: no host, no weight (else a
    # nearly constant or floored host would get huge weights and a few tiles would make the score)
    floor = (2 * cfg.strength * cfg.band_bins * tb) ** 2
    out = np.zeros((tb, s, nb))
    for phi in range(tb):
        k = -(-(f + phi) // tb)                                                     # blocks
        frames = np.zeros((k * tb, nb))
        frames[phi:phi + f] = e
        count = np.zeros(k * tb)
        count[phi:phi + f] = 1.0
        count = count.reshape(k, tb).sum(1)[:, None]                                # K 1
        d = _residual(frames.reshape(k, tb, nb).sum(1) / count) * count             # K Bn
        v = d / (_box(d * d, _NOISE_BLOCKS, _NOISE_BANDS) + floor)
        lim = _CLIP * np.sqrt(np.mean(v * v)) + 1e-12
        folded = np.zeros((-(-k // s) * s, nb))
        folded[:k] = np.clip(v, -lim, lim)
        out[phi] = folded.reshape(-1, s, nb).sum(0)                                 # S Bn
    return out


def _align(folded: np.ndarray, pat: Pattern) -> tuple[np.ndarray, np.ndarray]:
    """Folded tiles [T_b, S, Bn] -> pilot z for every (φ, σ) [T_b, S], and the tiles aligned as
    D[φ, σ] = roll(folded[φ], σ) [T_b, S, S, Bn] (slot s of D is the pattern's slot s)."""
    s = folded.shape[1]
    idx = (np.arange(s)[None, :] - np.arange(s)[:, None]) % s                       # σ s -> source slot
    aligned = folded[:, idx]                                                       # T_b S(σ) S Bn
    w = np.where(pat.pilot, pat.chips, 0.0)
    num = np.einsum("psab,ab->ps", aligned, w)
    den = np.sqrt(np.einsum("psab,ab->ps", aligned ** 2, pat.pilot.astype(np.float64)))
    return num / np.maximum(den, 1e-12), aligned


def _soft_bits(tiles: np.ndarray, pat: Pattern) -> np.ndarray:
    """Aligned tiles [S, Bn] -> per coded bit the chip-weighted sum over its tiles [CODED_BITS]."""
    data = ~pat.pilot
    return np.bincount(pat.bit[data], weights=(pat.chips * tiles)[data], minlength=CODED_BITS)


def _tail(z: float) -> float:
    """P(z >= t) for a fair-coin sum, any weights (Hoeffding): exp(-t²/2); 1 for t <= 0."""
    return math.exp(-0.5 * z * z) if z > 0 else 1.0


def _z_for(p: float) -> float:
    return math.sqrt(2.0 * math.log(1.0 / p))


def detect_watermark(wave: torch.Tensor, sample_rate: int, *, key: str = DEFAULT_KEY, fpr: float = DEFAULT_FPR,
                     cfg: WatermarkConfig = WatermarkConfig()) -> Detection:
    """Waveform [C,T] or [T] at any rate -> Detection (channels are mixed to mono first)."""
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be a probability in (0, 1), got {fpr}")
    pat = pattern_for(key, cfg)
    x = _mono44(wave, sample_rate, cfg)
    seconds = x.shape[-1] / cfg.sample_rate
    n_tries = cfg.period_frames               # every frame of the period as its start (a shift is <= hop/2 off)
    threshold = _z_for(fpr / n_tries)
    if x.shape[-1] < cfg.n_fft:
        return Detection(False, 0.0, 1.0, threshold, None, 0.0, seconds)
    z, aligned = _align(tile_scores(_band_features(x, cfg), cfg), pat)
    phi, sigma = np.unravel_index(int(np.argmax(z)), z.shape)
    score, tiles = float(z[phi, sigma]), aligned[phi, sigma]
    offset = (sigma * cfg.slot_frames + phi) * cfg.hop / cfg.sample_rate   # detector frame 0 = pattern frame
    p_value = min(1.0, n_tries * _tail(score))
    present = p_value <= fpr
    soft = _soft_bits(tiles, pat)
    return Detection(present, score, p_value, threshold, decode(soft) if present else None, offset, seconds,
                     bits=viterbi(soft)[:PAYLOAD_BITS])
