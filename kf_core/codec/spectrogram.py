"""Audio -> a picture of its mel spectrogram (the Spectrogram Preview node, README figures).

One 44.1 kHz log-mel front end for every input, so images of different sources compare.
"""
from __future__ import annotations

import torch

__all__ = ["spectrogram_image"]

# magma-like anchors, dark (quiet) to bright (loud)
_COLOURS = torch.tensor([[0.0, 0.0, 0.02], [0.23, 0.06, 0.44], [0.55, 0.16, 0.51], [0.87, 0.29, 0.41],
                         [0.99, 0.62, 0.36], [0.99, 0.99, 0.75]])


def spectrogram_image(wave: torch.Tensor, sample_rate: int, top_db: float = 80.0) -> torch.Tensor:
    """Waveform [B,C,T] -> IMAGE [B, C·M + gaps, F, 3] in 0..1: one log-mel panel per channel (left on
    top), low frequencies at the bottom, each take scaled to its own loudest point and top_db below."""
    from ..config import CODEC_PRESETS
    from ..io import resample
    from .mel import MelSpectrogram
    cfg = CODEC_PRESETS["44k"]
    b, c, _ = wave.shape
    if sample_rate != cfg.sample_rate:  # one front end for every input, so images compare
        wave = torch.stack([resample(w, sample_rate, cfg.sample_rate) for w in wave])
    logmel = MelSpectrogram(cfg)(wave.flatten(0, 1).float())                       # B*C M F
    db = 20.0 * logmel / torch.log(torch.tensor(10.0)) if cfg.log == "ln" else 20.0 * logmel
    db = db.reshape(b, c, *db.shape[1:]).flip(2)                                    # B C M F, low at bottom
    peak = db.amax(dim=(1, 2, 3), keepdim=True)
    level = ((db - peak) / top_db + 1.0).clamp(0.0, 1.0)                            # B C M F in 0..1
    gap = torch.ones(b, c, 2, level.shape[-1])                                      # white rule between channels
    rows = torch.cat([level, gap], dim=2).flatten(1, 2)[:, :-2]                    # B H F
    pos = rows * (len(_COLOURS) - 1)
    lo = pos.floor().long().clamp(max=len(_COLOURS) - 2)
    frac = (pos - lo)[..., None]
    img = _COLOURS[lo] * (1 - frac) + _COLOURS[lo + 1] * frac                       # B H F 3
    sep = torch.zeros_like(rows, dtype=torch.bool)
    for k in range(1, c):  # paint the rules white, not as loud bins
        start = k * (level.shape[2] + 2) - 2
        sep[:, start:start + 2] = True
    return torch.where(sep[..., None], torch.ones(3), img).contiguous()
