"""Clips longer than a model's window: which windows, at which lengths, and their conditions.

Each window is a full generation over tokens [start, start + length) of the whole clip's latent:
its own video features, encoded from the frames shown in its span [t0, t0 + span) (exact at any
t0: nothing is resampled), its own slice of ONE noise tensor drawn for the whole clip (shared
tokens start from the same noise), and, for networks with duration embeddings, seconds_start = t0
and seconds_total = the whole duration (paper §4.2). Window starts are whole latent tokens, so
the windows' latents line up and `sampling.longform.sample_long` crossfades them.

- MMAudio networks (no duration embedding, trained on 8 s): every window is exactly the trained
  configuration, 8 s of video -> 345 / 64 / 192 tokens; the windows are spread evenly, so
  neighbours share at least `overlap` seconds (30 s: 5 windows sharing ~2.5 s).
- Kling-Foley networks: the fewest windows of at most `window` s sharing exactly `overlap` s,
  lengths differing by at most one token (`window_plan`).

A window's video condition is cached on the whole clip's VideoCondition (`windows`), so sampling
again with other settings re-encodes nothing. This module knows nothing of the pipeline: the
caller passes how to encode a span (`encode(start, span, pad_end)`).

Shapes: B batch, La latent tokens, C latent channels.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .config import CODEC_PRESETS, SeqConfig
from .sampling.longform import window_plan

__all__ = ["Window", "plan_windows", "long_noise", "window_condition"]


@dataclass(frozen=True)
class Window:
    """One window: latent tokens [start, start + length), sampled as a clip of `span` seconds
    whose video starts at `t0` s (span may reach up to one token past the clip's end)."""

    index: int
    start: int
    length: int
    t0: float
    span: float


def plan_windows(dit, duration: float, window: float, overlap: float) -> tuple[SeqConfig, list[Window]]:
    """DiT, clip duration, window and overlap (s) -> (the whole clip's SeqConfig, its windows)."""
    mcfg = dit.model.cfg
    codec = CODEC_PRESETS[mcfg.codec]
    seq = SeqConfig.for_codec(duration, codec)
    tok = 1.0 / seq.latent_rate                                          # seconds per latent token
    if window < seq.min_duration or overlap < 0 or overlap >= window:
        raise ValueError(f"windows need window >= {seq.min_duration:.2f} s (one sync segment) and "
                         f"0 <= overlap < window; got window {window} s, overlap {overlap} s")
    ov = int(round(overlap / tok))
    if dit.family == "mmaudio":
        span = dit.network_duration(window)                              # whole sync segments
        win = SeqConfig.for_codec(span, codec).latent_len                # 8 s -> 345
        plan = window_plan(seq.latent_len, win, min(ov, win - 1), fixed=True)
        return seq, [Window(k, s, n, s * tok, span) for k, (s, n) in enumerate(plan)]
    win = int(window / tok)
    if not 0 <= ov < win:
        raise ValueError(f"overlap {overlap} s must be shorter than the window ({window} s)")
    plan = window_plan(seq.latent_len, win, ov)
    # (length - 0.5) tokens of seconds: SeqConfig(span).latent_len == length
    return seq, [Window(k, s, n, s * tok, min((n - 0.5) * tok, duration - s * tok)) for k, (s, n) in enumerate(plan)]


def long_noise(seq: SeqConfig, batch_size: int, latent_dim: int, seed: int) -> torch.Tensor:
    """One seeded CPU noise tensor [B, La, C] for the whole clip (windows take their slices)."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn((batch_size, seq.latent_len, latent_dim), generator=gen)


def window_condition(video, w: Window, encode: Callable, check_cancel: Callable[[], None] | None = None):
    """The whole clip's VideoCondition + a window -> the window's condition, made on first use by
    `encode(encoders, clip, start, span, pad_end, check_cancel)` from the source video and cached."""
    key = (round(w.t0, 6), round(w.span, 6))
    if key not in video.windows:
        if video.source is None:
            raise ValueError("this video condition does not know its source video, so a long clip cannot be "
                             "encoded window by window; encode the video with encode_video()")
        encoders, clip = video.source
        pad_end = max(0.0, w.t0 + w.span - clip.duration)
        video.windows[key] = encode(encoders, clip, w.t0, w.span, pad_end, check_cancel)
    return video.windows[key]
