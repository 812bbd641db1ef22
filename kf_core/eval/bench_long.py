"""`python -m kf_core bench long`: peak memory and time of a whole generation against the clip's length.

Makes 64x64 clips (`--size`) of the lengths asked for (`--seconds`, default an 8 s baseline,
10 min and 60 min), and runs `FoleyPipeline.save` (video in, muxed video + WAV out, exactly what
`python -m kf_core generate` does) on each in its own process, so each peak resident memory is
its own. Prints seconds, seconds per audio minute and peak RSS per length, and each peak as a
multiple of the first (shortest) one: memory is flat in length when that stays near 1. Sampling
steps are few by default (`--steps 2`): the sampler's cost is linear in length by construction
(windows), the point here is what every other stage does with length.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from .benchutil import format_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, nargs="+", default=[8.0, 600.0, 3600.0],
                        help="clip lengths to run (default 8 600 3600)")
    parser.add_argument("--size", type=int, default=64, help="frame width and height")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--steps", type=int, default=2, help="sampling steps (default 2)")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled kf-tiny)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="keep clips and outputs here")
    parser.add_argument("--one", type=Path, default=None, help=argparse.SUPPRESS)  # child: run one clip


def make_clip(path: Path, seconds: float, size: int, fps: int) -> Path:
    """A size x size clip of a bouncing square (x264, very fast), `seconds` long."""
    n = int(round(seconds * fps))
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.codec_context.options = {"preset": "ultrafast", "crf": "30"}
        img = np.zeros((size, size, 3), np.uint8)
        for k in range(n):
            img[:] = 40
            y = abs((k * 3) % (2 * (size - 8)) - (size - 8))
            img[y:y + 8, size // 2 - 4:size // 2 + 4] = 230
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = k
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2 ** 20


def _run_one(args) -> int:
    import torch

    from ..pipeline import load_pipeline
    torch.set_num_threads(args.threads)
    video = args.one
    start = time.perf_counter()
    pipe = load_pipeline(args.model)
    loaded = time.perf_counter()
    paths = pipe.save(video, out=video.with_name(video.stem + "_foley.mp4"),
                      audio_out=video.with_name(video.stem + "_foley.wav"), steps=args.steps)
    done = time.perf_counter()
    print(json.dumps({"load_s": loaded - start, "generate_s": done - loaded, "peak_rss_mb": _peak_rss_mb(),
                      "outputs": {k: str(v) for k, v in paths.items()}}))
    return 0


def main(args) -> int:
    if args.one is not None:
        return _run_one(args)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kf-bench-long-"))
    work.mkdir(parents=True, exist_ok=True)
    rows, first = [], None
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    for seconds in args.seconds:
        clip = work / f"clip_{seconds:g}s.mp4"
        if not clip.exists():
            t = time.perf_counter()
            make_clip(clip, seconds, args.size, args.fps)
            print(f"made {clip} ({seconds:g} s) in {time.perf_counter() - t:.1f} s", flush=True)
        cmd = [sys.executable, "-m", "kf_core", "bench", "long", "--one", str(clip), "--steps", str(args.steps),
               "--threads", str(args.threads)] + (["--model", args.model] if args.model else [])
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            print(res.stderr[-4000:], file=sys.stderr)
            return res.returncode
        r = json.loads(res.stdout.strip().splitlines()[-1])
        first = first or r["peak_rss_mb"]
        rows.append([f"{seconds:g}", f"{r['generate_s']:.1f}", f"{r['generate_s'] / (seconds / 60):.1f}",
                     f"{r['peak_rss_mb']:.0f}", f"{r['peak_rss_mb'] / first:.2f}"])
        print(format_table(["clip s", "generate s", "s per audio min", "peak RSS MB", "x first"], rows[-1:]),
              flush=True)
    print(format_table(["clip s", "generate s", "s per audio min", "peak RSS MB", "x first"], rows))
    return 0
