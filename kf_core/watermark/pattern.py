"""The keyed time-frequency pattern: which tiles carry the pilot, which carry which coded bit.

    cfg = WatermarkConfig()
    pat = pattern_for(key, cfg)          # cached per (key, cfg)
    signs = pat.signs(coded)             # [S, Bn] ±1: pilot signs, and data chips times their bits

The STFT plane (44.1 kHz, `n_fft`/`hop`) is cut into tiles of `slot_frames` frames × one band of
bins; `slots` slots make one period that repeats for the whole clip. Each tile is pilot or data
(a keyed shuffle), has a keyed random sign, and a data tile is assigned one coded bit (each bit
gets the same number of tiles, spread over the whole period). Everything is a pure function of
the key (SHA-256 -> numpy PCG64): the embedder and the detector build the same pattern.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from .code import CODED_BITS

__all__ = ["WatermarkConfig", "Pattern", "pattern_for", "DEFAULT_KEY"]

DEFAULT_KEY = "kling-foley"   # public: anyone with the pack can check a default mark


@dataclass(frozen=True)
class WatermarkConfig:
    """Where and how strongly the mark sits. Frequencies in Hz, `strength` the relative magnitude
    change per tile (0.05 = ±0.4 dB)."""

    sample_rate: int = 44100        # the mark's own rate: other rates are resampled to it
    n_fft: int = 1024
    hop: int = 256                  # the detector's frame step
    embed_hop: int = 256            # the embedder's (75 % overlap: at 50 % the resynthesis ripples)
    f_low: float = 200.0            # the band: below 8 kHz so 16 kHz resampling keeps it
    f_high: float = 7000.0
    band_bins: int = 2              # STFT bins per band (43 Hz each)
    slot_frames: int = 8            # STFT frames per slot (46 ms at hop 256)
    slots: int = 32                 # slots per period (1.49 s)
    pilot_fraction: float = 0.4     # tiles that carry the sync/presence pilot
    strength: float = 0.15
    tonal_relief: float = 0.3       # on a band standing out of its neighbours (a partial, a beep) by
    tonal_nats: tuple[float, float] = (1.0, 3.0)  # these many nats the mark shrinks to this fraction

    def __post_init__(self) -> None:
        nyq = self.sample_rate / 2
        if not (0 < self.f_low < self.f_high < nyq):
            raise ValueError(f"need 0 < f_low < f_high < {nyq:g} Hz, got {self.f_low:g}..{self.f_high:g}")
        if self.hop <= 0 or self.n_fft < self.hop or self.band_bins < 1 or self.slot_frames < 1:
            raise ValueError(f"n_fft={self.n_fft}, hop={self.hop}, band_bins={self.band_bins}, "
                             f"slot_frames={self.slot_frames}: need n_fft >= hop > 0 and tiles of >= 1 bin/frame")
        if self.n_fft % self.embed_hop or self.n_fft // self.embed_hop < 3 or \
                (self.slot_frames * self.hop) % self.embed_hop:
            raise ValueError(f"embed_hop must divide n_fft into >= 3 hops (Hann overlap-add) and a slot "
                             f"into whole frames, got n_fft={self.n_fft}, embed_hop={self.embed_hop}, "
                             f"slot={self.slot_frames * self.hop} samples")
        if not 0.05 <= self.pilot_fraction <= 0.95:
            raise ValueError(f"pilot_fraction must be in [0.05, 0.95], got {self.pilot_fraction}")
        if not 0 < self.strength < 0.5:
            raise ValueError(f"strength must be in (0, 0.5), got {self.strength}")
        if not (0 < self.tonal_relief <= 1 and self.tonal_nats[0] < self.tonal_nats[1]):
            raise ValueError(f"tonal_relief must be in (0, 1] and tonal_nats increasing, got "
                             f"{self.tonal_relief}, {self.tonal_nats}")
        data_tiles = self.slots * self.n_bands - round(self.pilot_fraction * self.slots * self.n_bands)
        if data_tiles < 2 * CODED_BITS:
            raise ValueError(f"{data_tiles} data tiles per period cannot carry {CODED_BITS} coded bits twice; "
                             "use more slots or narrower bands")

    @property
    def bin_range(self) -> tuple[int, int]:
        """First and one-past-last STFT bin of the band, a whole number of bands."""
        df = self.sample_rate / self.n_fft
        lo = int(np.ceil(self.f_low / df))
        hi = int(np.floor(self.f_high / df)) + 1
        return lo, lo + (hi - lo) // self.band_bins * self.band_bins

    @property
    def n_bands(self) -> int:
        lo, hi = self.bin_range
        return (hi - lo) // self.band_bins

    @property
    def period_frames(self) -> int:
        return self.slots * self.slot_frames

    @property
    def period_seconds(self) -> float:
        return self.period_frames * self.hop / self.sample_rate


@dataclass(frozen=True, eq=False)
class Pattern:
    """One key's layout over a period: `pilot` bool [S, Bn], `chips` ±1 [S, Bn], `bit` int [S, Bn]
    (the coded bit of a data tile, -1 on pilot tiles)."""

    cfg: WatermarkConfig
    pilot: np.ndarray
    chips: np.ndarray
    bit: np.ndarray

    def signs(self, coded: np.ndarray) -> np.ndarray:
        """Coded bits [CODED_BITS] 0/1 -> tile signs ±1 float32 [S, Bn]."""
        data = 1.0 - 2.0 * coded.astype(np.float32)[np.maximum(self.bit, 0)]
        return np.where(self.pilot, self.chips, self.chips * data).astype(np.float32)


def _rng(key: str) -> np.random.Generator:
    digest = hashlib.sha256(f"kling-foley-watermark-v1\0{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


@functools.lru_cache(maxsize=16)
def pattern_for(key: str, cfg: WatermarkConfig = WatermarkConfig()) -> Pattern:
    """A key (any non-empty string) -> its Pattern (cached)."""
    if not isinstance(key, str) or not key:
        raise ValueError("the watermark key must be a non-empty string")
    rng = _rng(key)
    shape = (cfg.slots, cfg.n_bands)
    n = cfg.slots * cfg.n_bands
    order = rng.permutation(n)
    n_pilot = round(cfg.pilot_fraction * n)
    pilot = np.zeros(n, bool)
    pilot[order[:n_pilot]] = True
    bit = np.full(n, -1, np.int64)
    data = order[n_pilot:]
    bit[data] = rng.permutation(np.arange(len(data)) % CODED_BITS)    # every coded bit equally often
    chips = rng.choice(np.array([-1.0, 1.0], np.float32), size=n)
    return Pattern(cfg, pilot.reshape(shape), chips.reshape(shape), bit.reshape(shape))
