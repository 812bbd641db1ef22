"""`python -m kf_core bench io`: decode + time-based sampling speed on a 1080p H.264 clip.

Makes a clip (default 60 s, 1920x1080, 25 fps, x264 ultrafast at a low bitrate) in a temp
folder, or uses `--video`, then times: decode only, both streams (8 fps visual 224 squash + 25 fps
sync 224 crop) in 8 s pieces as a generation reads a clip (memory flat in length), and for clips
up to 2 minutes each stream alone and both in one pass (which holds every output frame). Prints
frames/s (output frames and source frames decoded per second of wall time) and the peak resident
memory after each phase; run it beside another job to see a shared machine.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from kf_core.io import probe, sample_streams
from kf_core.io.video import decode_frames, open_video


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", type=Path, default=None, help="benchmark this file instead")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the generated clip")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=int, default=25)


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20  # macOS reports bytes


def make_clip(path: Path, seconds: float, width: int, height: int, fps: int) -> Path:
    """A moving-gradient clip (cheap to draw, realistic enough to decode) written with x264."""
    n = int(seconds * fps)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(xx * 255 // width), (yy * 255 // height), ((xx + yy) * 255 // (width + height))],
                    axis=-1).astype(np.uint8)  # H W 3
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.options = {"preset": "ultrafast", "crf": "32"}
        for k in range(n):
            img = np.roll(base, shift=(k * 7) % width, axis=1)
            img[(k * 13) % height: (k * 13) % height + 80, 200:400] = 255  # a moving box
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = k
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


def _decode_only(path: Path) -> int:
    info = probe(path)
    n = 0
    with open_video(path) as (container, stream):
        for _ in decode_frames(container, stream, origin=info.start_time, path=path):
            n += 1
    return n


def _in_pieces(path: Path, duration: float) -> int:
    """Both streams over the whole clip, piece by piece as `encode_video` reads a long clip -> frames made."""
    from kf_core.config import SeqConfig
    from kf_core.io import streams_for
    from kf_core.pipeline import _chunks
    seq = SeqConfig(duration)
    made = 0
    for chunk in _chunks(streams_for(seq), seq):
        out = sample_streams(path, chunk, duration=duration)
        made += sum(x.shape[0] for x in out.values())
    return made


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = args.video
        if path is None:
            path = Path(tmp) / "bench_1080p.mp4"
            t0 = time.perf_counter()
            make_clip(path, args.seconds, args.width, args.height, args.fps)
            print(f"made {path.name}: {args.seconds:g} s {args.width}x{args.height} @ {args.fps} fps "
                  f"in {time.perf_counter() - t0:.1f} s ({path.stat().st_size / 1e6:.1f} MB)")
        info = probe(path)
        src_frames = info.frame_count or int(info.duration * info.fps)
        print(f"video: {info.duration:.2f} s, {info.width}x{info.height}, {info.fps:.3f} fps, "
              f"{src_frames} frames, codec {info.codec}")

        t0 = time.perf_counter()
        decoded = _decode_only(path)
        dt = time.perf_counter() - t0
        print(f"decode only          : {decoded / dt:8.1f} source frames/s  ({dt:.1f} s)"
              f"  peak RSS {_peak_rss_mb():.0f} MB")
        t0 = time.perf_counter()
        made = _in_pieces(path, info.duration)
        dt = time.perf_counter() - t0
        print(f"both, 8 s pieces     : {made / dt:8.1f} output frames/s, {src_frames / dt:8.1f} source "
              f"frames/s  ({made} frames in {dt:.1f} s)  peak RSS {_peak_rss_mb():.0f} MB", flush=True)
        phases = {
            "visual 8 fps squash": {"visual": (8, 224, "squash")},
            "sync 25 fps crop": {"sync": (25, 224, "crop")},
            "both, one pass": {"visual": (8, 224, "squash"), "sync": (25, 224, "crop")},
        }
        for name, streams in (phases.items() if info.duration <= 120 else ()):
            t0 = time.perf_counter()
            out = sample_streams(path, streams)
            dt = time.perf_counter() - t0
            made = sum(x.shape[0] for x in out.values())
            print(f"{name:21s}: {made / dt:8.1f} output frames/s, {src_frames / dt:8.1f} source "
                  f"frames/s  ({made} frames in {dt:.1f} s)  peak RSS {_peak_rss_mb():.0f} MB")
    return 0
