"""`python -m kf_core eval tiny`: the shipped kf-tiny's own checks as numbers for its model card.

- impact hits: the fixed clips of `tests/test_kf_tiny.py` (`impact_clips()`: held-out seeds in
  held-out looks, so sizes, aspect ratios, frame rates and VFR come from looks training never
  drew), each generated at 16 steps; an impact is hit when an audio onset lies within 100 ms. The
  control scores the same audio against the impact times shifted by half a second.
- real-time factor: one 8 s held-out clip written as H.264, generated from the file at 20 steps
  (all stages: decoding, encoders, sampling, decoder, stereo, vocoder), median of `--repeats`.

Writes OUT/eval_onsets.json (one entry per `--label`, merged with what is there) and
OUT/eval_rtf.json (or eval_<label>_rtf.json for a label other than v2).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import split_seed
from ..data.synthetic import Clip, make_clip
from . import sync_metrics as sm

__all__ = ["IMPACT_CLASSES", "impact_clips", "hit_rate", "impact_hits", "add_arguments", "main"]

IMPACT_CLASSES = ("ball", "strike", "light", "footsteps")
DURATION = 4.0
TOL_S = 0.1
SHIFT_S = 0.5


def impact_clips() -> list[Clip]:
    """The fixed clips: 8 held-out seeds (the "heldout" split never feeds training) in held-out looks."""
    return [make_clip(split_seed(500 + i, 0, "heldout"), duration=DURATION, classes=[c], looks="heldout")
            for i, c in enumerate(IMPACT_CLASSES * 2)]


def hit_rate(events: np.ndarray, onsets: np.ndarray, tol: float = TOL_S) -> tuple[int, int]:
    """(visual impacts with an audio onset within `tol`, impacts)."""
    if events.size == 0:
        return 0, 0
    if onsets.size == 0:
        return 0, int(events.size)
    d = np.abs(events[:, None] - onsets[None, :]).min(1)
    return int((d <= tol).sum()), int(events.size)


def impact_hits(clips: list[Clip], waves: list[np.ndarray], sr: int) -> dict:
    """Clips + generated audio [C,T] each -> {"hits", "control_hits", "impacts"}."""
    hits = control = total = 0
    for clip, wave in zip(clips, waves):
        onsets = sm.detect_onsets(wave, sr)
        h, n = hit_rate(clip.onset_times, onsets)
        c, _ = hit_rate((clip.onset_times + SHIFT_S) % clip.duration, onsets)
        hits, control, total = hits + h, control + c, total + n
    return {"hits": hits, "control_hits": control, "impacts": total}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=str, default=None, help="model folder (default: the bundled kf-tiny)")
    p.add_argument("--label", default="v2", help="name of this model in the card (v2, v1, ...)")
    p.add_argument("--out", type=Path, required=True, help="folder for the JSON files (a kf-tiny folder)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs for the real-time factor (median)")


def main(args: argparse.Namespace) -> int:
    from ..data.example_video import write_frames_mp4
    from ..pipeline import load_pipeline
    pipe = load_pipeline(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    clips = impact_clips()
    waves = []
    for i, clip in enumerate(clips):
        wave, sr = pipe.generate(torch.from_numpy(clip.frames), prompt=clip.caption, steps=16, seed=i, fps=clip.fps)
        waves.append(wave.float().numpy())
    result = impact_hits(clips, waves, sr)
    path = args.out / "eval_onsets.json"
    onsets = json.loads(path.read_text()) if path.is_file() else {}
    onsets[args.label] = result
    path.write_text(json.dumps(onsets, indent=1) + "\n")
    print(f"{args.label}: {result['hits']}/{result['impacts']} impacts within {TOL_S * 1000:.0f} ms "
          f"(control {result['control_hits']})")

    clip = make_clip(split_seed(900, 0, "heldout"), duration=8.0, classes=["ball"], looks="heldout")
    with tempfile.TemporaryDirectory() as tmp:
        video = write_frames_mp4(Path(tmp) / "clip.mp4", clip.frames, clip.fps)
        pipe.generate(str(video), prompt=clip.caption, steps=2, seed=0)  # warm-up (first-call allocations)
        times = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            pipe.generate(str(video), prompt=clip.caption, steps=20, seed=r)
            times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    rtf = {"rtf": seconds / clip.duration, "seconds": seconds, "duration": clip.duration, "steps": 20,
           "threads": torch.get_num_threads(),
           "note": f"median of {args.repeats}, {clip.frames.shape[2]}x{clip.frames.shape[1]} at {clip.fps:g} fps, "
                   f"from an H.264 file"}
    name = "eval_rtf.json" if args.label == "v2" else f"eval_{args.label}_rtf.json"
    (args.out / name).write_text(json.dumps(rtf, indent=1) + "\n")
    print(f"{args.label}: real-time factor {rtf['rtf']:.3f} ({seconds:.2f} s for {clip.duration:g} s, "
          f"{rtf['threads']} threads)")
    return 0
