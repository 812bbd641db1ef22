"""Videos longer than a model's window: overlapping windows, each a full generation, crossfaded.

Each window [t0, t0 + d) gets its own video features, encoded from the frames shown in that span
(so any t0 is exact, no resampling of features), its own slice of ONE noise tensor drawn for the
whole clip (shared tokens start from the same noise), and the duration embeddings
seconds_start = t0, seconds_total = the whole duration (paper §4.2). Window starts are whole latent
tokens, so the windows' latents line up and `sampling.longform.sample_long` blends them.

Shapes: B batch, La latent tokens, C latent channels, Lv visual tokens, Dv visual width.
"""
from __future__ import annotations

import torch

from .config import CODEC_PRESETS, SeqConfig
from .sampling.longform import sample_long, window_plan

__all__ = ["sample_long_latents"]


def _stitch_visual(parts: list[tuple[float, torch.Tensor]], seq: SeqConfig) -> torch.Tensor:
    """Per-window visual features (t0, [1,Lv_w,Dv]) -> [1,Lv,Dv] on the whole clip's 8 fps grid
    (each frame time takes the latest window covering it; frames are at most half a frame off)."""
    times = torch.arange(seq.visual_len, dtype=torch.float64) / seq.visual_fps
    out = None
    for t0, feats in parts:
        local = torch.round((times - t0) * seq.visual_fps).long()
        ok = (local >= 0) & (local < feats.shape[1])
        if out is None:
            out = feats.new_zeros(1, seq.visual_len, feats.shape[2])
        out[:, ok] = feats[:, local[ok]]
    return out


def sample_long_latents(components, *, clip=None, text=None, duration: float, window: float,
                        overlap: float = 1.0, steps: int = 20, sampler: str = "euler",
                        schedule: str = "uniform", cfg: float = 4.5, shift: float | None = None,
                        seed: int = 0, batch_size: int = 1, callback=None, check_cancel=None):
    """Components + VideoClip/TextCondition -> (Latents over `duration` s, VideoCondition with the
    whole clip's visual features or None), sampled in windows of `window` s overlapping by `overlap` s.

    The callback sees one step count across all windows (step, steps · windows, x, t).
    """
    from .pipeline import Latents, VideoCondition, encode_video, sample_latents
    dit = components.dit
    mcfg = dit.model.cfg
    seq = SeqConfig.for_codec(duration, CODEC_PRESETS[mcfg.codec])
    tok = 1.0 / seq.latent_rate                                          # seconds per latent token
    win, ov = int(window / tok), int(round(overlap / tok))
    if seq.sync_segment / seq.sync_fps > window or not 0 <= ov < win:
        raise ValueError(f"long-form needs window >= {seq.min_duration:.2f} s and 0 <= overlap < window; "
                         f"got window {window} s, overlap {overlap} s")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    noise = torch.randn((batch_size, seq.latent_len, mcfg.latent_dim), generator=gen)  # B La C
    plan = window_plan(seq.latent_len, win, ov)
    visual_parts: list[tuple[float, torch.Tensor]] = []

    def one(start: int, length: int) -> torch.Tensor:
        index = plan.index((start, length))
        t0 = start * tok
        span = (length - 0.5) * tok                                      # ceil(span / tok) == length
        video = None
        if clip is not None:
            span = min(span, clip.duration - t0)
            video = encode_video(components.visual_encoders, clip, start=t0, duration=span,
                                 check_cancel=check_cancel)
            visual_parts.append((t0, video.visual))
        step_cb = None if callback is None else (
            lambda step, total, x, t: callback(index * total + step, total * len(plan), x, t))
        lat = sample_latents(dit, text=text, video=video, duration=None if video else span, steps=steps,
                             sampler=sampler, schedule=schedule, cfg=cfg, shift=shift, seed=seed + 1 + index,
                             batch_size=batch_size, callback=step_cb, seconds_start=t0,
                             seconds_total=duration, noise=noise[:, start:start + length])
        return lat.z

    z = sample_long(one, seq.latent_len, win, ov, check_cancel=check_cancel)
    whole = None
    if visual_parts:
        whole = VideoCondition(visual=_stitch_visual(visual_parts, seq), sync=None, duration=duration)
    return Latents(z=z, seq=seq, latent_mean=dit.info.latent_mean, latent_std=dit.info.latent_std), whole
