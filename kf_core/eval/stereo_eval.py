"""`python -m kf_core eval stereo`: does `kf_core.spatial` put the sound where the picture has it?

Held-out synthetic clips: the clip's mono mix (L + R)/2 and its frames go in; the stereo that
comes out is scored by the stereo-direction correlation (ILD in the 100 ms after each sharp event
vs the event's on-screen x, `sync_metrics.stereo_pairs`), pooled per class and overall, next to
the ground truth's own. Sets: "classic" (one source), "distractor" (plus a silent disc drifting
smoothly over the picture: motion that makes no sound) and "multi" (2 sources in separate bands,
sounding at once: one mono track can only be in one place at a time, so this is the hard case).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from kf_core.data.dataset import split_seed
from kf_core.data.synthetic import Clip, make_clip
from kf_core.eval import sync_metrics as sm
from kf_core.spatial import StereoConfig, stereo_from_video

CLASSES = ("ball", "strike", "bell", "footsteps", "bird", "light")  # the ones with located sharp events
SETS = ("classic", "distractor", "multi")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--per-class", type=int, default=8, help="held-out clips per class and set")
    p.add_argument("--seed", type=int, default=0, help="base seed (held-out seeds are disjoint from training)")
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))


def add_distractor(frames: np.ndarray, fps: float, seed: int) -> np.ndarray:
    """uint8 frames [T,H,W,3] -> a copy with a silent disc drifting on a smooth sinusoidal path."""
    rng = np.random.default_rng(10_000 + seed)
    out = frames.copy()
    t_n, h, w, _ = out.shape
    r = max(3, int(rng.uniform(0.05, 0.09) * min(h, w)))
    colour = rng.integers(0, 256, 3)
    period, phase, y0 = rng.uniform(2.5, 5.0), rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.8) * h
    yy, xx = np.mgrid[0:h, 0:w]
    for t in range(t_n):
        cx = w * (0.5 + 0.38 * np.sin(2 * np.pi * t / fps / period + phase))
        cy = y0 + 0.05 * h * np.sin(2 * np.pi * t / fps / 1.7)
        out[t][(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = colour
    return out


def _clip(kind: str, which: str, index: int, j: int, seed: int, duration: float) -> Clip:
    """The j-th clip of `kind` (held-out item `index`); "multi" pairs it with the next classes in turn."""
    s = split_seed(index, seed, "heldout")
    if which == "multi":
        other = CLASSES[(CLASSES.index(kind) + 1 + j) % len(CLASSES)]
        return make_clip(s, duration=duration, classes=[kind, other], layout="multi")
    return make_clip(s, duration=duration, classes=[kind])


def evaluate(which: str, per_class: int, seed: int, duration: float, cfg: StereoConfig = StereoConfig()) -> dict:
    """-> {class: (pairs, ours, ground truth), ..., "overall": (...)} stereo correlations."""
    pooled: dict[str, tuple[list, list]] = {}
    for ci, kind in enumerate(CLASSES):
        for j in range(per_class):
            clip = _clip(kind, which, ci * per_class + j, j, seed, duration)
            frames = add_distractor(clip.frames, clip.fps, ci * per_class + j) if which == "distractor" else clip.frames
            mono = torch.from_numpy(clip.audio.mean(0))
            ours = stereo_from_video(mono, clip.sample_rate, torch.from_numpy(frames), fps=clip.fps, cfg=cfg)[0]
            events = clip.events if which == "multi" else [e for e in clip.events if e.kind == kind]
            pooled.setdefault(kind, ([], []))[0].append(sm.stereo_pairs(events, ours.numpy(), clip.sample_rate))
            pooled[kind][1].append(sm.stereo_pairs(events, clip.audio, clip.sample_rate))
    out = {}
    for kind, (ours, gt) in pooled.items():
        o, g = np.concatenate(ours), np.concatenate(gt)
        out[kind] = (len(o), sm.stereo_correlation(o), sm.stereo_correlation(g))
    o = np.concatenate([p for ours, _ in pooled.values() for p in ours])
    g = np.concatenate([p for _, gt in pooled.values() for p in gt])
    out["overall"] = (len(o), sm.stereo_correlation(o), sm.stereo_correlation(g))
    return out


def main(args: argparse.Namespace) -> int:
    if args.per_class < 1:
        raise SystemExit("--per-class must be at least 1")
    torch.set_num_threads(1)
    print(f"stereo from video: {args.per_class} held-out clips per class of {args.duration} s (seed {args.seed}); "
          "correlation of ILD with on-screen x (target >= 0.8)")
    for which in args.sets:
        start = time.perf_counter()
        res = evaluate(which, args.per_class, args.seed, args.duration)
        print(f"\n[{which}] ({time.perf_counter() - start:.0f} s)\n{'class':<11}{'pairs':>6}{'ours':>8}{'truth':>8}")
        for kind, (n, ours, gt) in res.items():
            print(f"{kind:<11}{n:>6}{ours:>8.3f}{gt:>8.3f}")
    return 0
