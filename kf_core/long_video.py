"""Clips longer than a model's window: overlapping windows, each a full generation, crossfaded.

Each window [t0, t0 + d) gets its own video features, encoded from the frames shown in that span
(exact at any t0: nothing is resampled), its own slice of ONE noise tensor drawn for the whole
clip (shared tokens start from the same noise), and the duration embeddings seconds_start = t0,
seconds_total = the whole duration (paper §4.2). Window starts are whole latent tokens, so the
windows' latents line up and `sampling.longform.sample_long` blends them. A window's video
condition is cached on the whole clip's VideoCondition, so sampling again with other settings
re-encodes nothing.

Shapes: B batch, La latent tokens, C latent channels.
"""
from __future__ import annotations

import torch

from .config import CODEC_PRESETS, SeqConfig
from .sampling.longform import sample_long, window_plan

__all__ = ["sample_long_latents", "window_condition"]


def window_condition(video, start: float, span: float, check_cancel=None):
    """The whole clip's VideoCondition -> the condition of [start, start + span), encoded from the
    source video on first use and cached."""
    from .pipeline import encode_video
    key = (round(start, 6), round(span, 6))
    if key not in video.windows:
        if video.source is None:
            raise ValueError("this video condition does not know its source video, so a long clip cannot be "
                             "encoded window by window; encode the video with encode_video()")
        encoders, clip = video.source
        video.windows[key] = encode_video(encoders, clip, start=start, duration=span, check_cancel=check_cancel)
    return video.windows[key]


def sample_long_latents(dit, *, text=None, video=None, duration: float, window: float, overlap: float = 1.0,
                        steps: int = 20, sampler: str = "euler", schedule: str = "uniform", cfg: float = 4.5,
                        shift: float | None = None, seed: int = 0, batch_size: int = 1, callback=None,
                        check_cancel=None):
    """DiT + conditions of a clip of `duration` s -> Latents [B,La,C], sampled in windows of `window`
    s overlapping by `overlap` s. The callback sees one step count across all windows."""
    from .pipeline import Latents, sample_once
    mcfg = dit.model.cfg
    seq = SeqConfig.for_codec(duration, CODEC_PRESETS[mcfg.codec])
    tok = 1.0 / seq.latent_rate                                          # seconds per latent token
    win, ov = int(window / tok), int(round(overlap / tok))
    if window < seq.min_duration or not 0 <= ov < win:
        raise ValueError(f"windows need window >= {seq.min_duration:.2f} s (one sync segment) and "
                         f"0 <= overlap < window; got window {window} s, overlap {overlap} s")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    noise = torch.randn((batch_size, seq.latent_len, mcfg.latent_dim), generator=gen)  # B La C
    plan = window_plan(seq.latent_len, win, ov)

    def one(start: int, length: int) -> torch.Tensor:
        index = plan.index((start, length))
        t0 = start * tok
        span = (length - 0.5) * tok                                      # SeqConfig(span).latent_len == length
        part = None
        if video is not None:
            part = window_condition(video, t0, min(span, video.duration - t0), check_cancel)
        step_cb = None if callback is None else (
            lambda step, total, x, t: callback(index * total + step, total * len(plan), x, t))
        lat = sample_once(dit, text=text, video=part, duration=part.duration if part else span, steps=steps,
                          sampler=sampler, schedule=schedule, cfg=cfg, shift=shift, seed=seed + 1 + index,
                          batch_size=batch_size, callback=step_cb, seconds_start=t0, seconds_total=duration,
                          noise=noise[:, start:start + length])
        return lat.z

    z = sample_long(one, seq.latent_len, win, ov, check_cancel=check_cancel)
    return Latents(z=z, seq=seq, latent_mean=dit.info.latent_mean, latent_std=dit.info.latent_std)
