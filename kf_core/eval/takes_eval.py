"""`python -m kf_core eval takes`: how much does best-of-N (kf_core.takes) improve onset F1 over one take?

Held-out synthetic clips (classes cycle, as in `eval synthetic`), N takes each from one seeded
batch (seed = clip index; take 0 is exactly the single take of that seed), mono. Each take's onsets
(`sync_metrics.detect_onsets`) are matched to the clip's true onsets within 50 ms (texture spans
ignored); micro-averaged F1 with counts for: take 0 (one take), the take the weight-free score
picks, the oracle (the truly best of N) and the mean over single takes.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from kf_core.eval import sync_metrics as sm
from kf_core.eval.synthetic_eval import heldout_clips


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=24, help="held-out clips (classes cycle)")
    p.add_argument("--takes", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--model", default=None, help="model folder/name (default: the bundled kf-tiny)")


def _micro(rows: list[list[dict]], picks: list[int]) -> tuple[float, int, int, int]:
    tp = sum(r[p]["tp"] for r, p in zip(rows, picks))
    fp = sum(r[p]["fp"] for r, p in zip(rows, picks))
    fn = sum(r[p]["fn"] for r, p in zip(rows, picks))
    return (2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")), tp, fp, fn


def main(args: argparse.Namespace) -> int:
    from kf_core.pipeline import load_pipeline
    from kf_core.takes import generate_takes
    if args.n < 1 or args.takes < 2:
        raise SystemExit("--n must be >= 1 and --takes >= 2")
    pipe = load_pipeline(args.model)
    clips, _ = heldout_clips(args.n, args.seed, args.duration)
    rows, picks, start = [], [], time.perf_counter()
    for i, clip in enumerate(clips):
        takes = generate_takes(pipe, torch.from_numpy(clip.frames), args.takes, fps=clip.fps, prompt=clip.caption,
                               steps=args.steps, seed=i, stereo=False)
        rows.append([sm.onset_scores(clip.onset_times, sm.detect_onsets(w.numpy(), takes.sample_rate), 0.05,
                                     clip.texture_spans) for w in takes.waveforms])
        picks.append(takes.best)
        print(f"clip {i} ({clip.labels[0]}): true F1 per take {[round(r['f1'], 2) for r in rows[-1]]}, "
              f"picked take {takes.best}", flush=True)
    n = len(rows)
    table = {"one take (take 0)": [0] * n, f"best of {args.takes} by the score": picks,
             f"oracle (truly best of {args.takes})": [int(np.argmax([r["f1"] for r in row])) for row in rows]}
    print(f"\n{n} held-out clips x {args.takes} takes, {args.steps} steps ({time.perf_counter() - start:.0f} s); "
          "onset F1 at 50 ms, micro-averaged")
    for name, chosen in table.items():
        f1, tp, fp, fn = _micro(rows, chosen)
        print(f"{name:<28} F1 {f1:.3f}  (tp {tp}, fp {fp}, fn {fn})")
    print(f"{'mean of single takes':<28} F1 {np.mean([_micro(rows, [k] * n)[0] for k in range(args.takes)]):.3f}")
    return 0
