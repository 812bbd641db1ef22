"""Write a generated clip as a small silent H.264 MP4 (the README's example of the world).

kf_core.io had no frame writer when this was written, so this encodes with PyAV directly.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from kf_core.data.synthetic import Clip, make_clip

__all__ = ["write_frames_mp4", "write_example_video"]


def write_frames_mp4(path: str | Path, frames: np.ndarray, fps: float, crf: int = 30) -> Path:
    """uint8 frames [T, H, W, 3] + fps -> a silent H.264 (yuv420p) MP4 at `path`; never overwrites."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; remove it or choose another path")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise ValueError(f"H.264 yuv420p needs even sizes, got {w}x{h}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        out.mux(stream.encode(None))
    tmp.rename(path)  # atomic: a half-written file never has the final name
    return path


def write_example_video(path: str | Path, seed: int = 0, *, duration: float = 5.0, fps: float = 25.0,
                        size: int = 128, classes: tuple[str, ...] = ("ball",)) -> Clip:
    """Render make_clip(seed, ...) and write its frames to `path` (silent MP4) -> the clip."""
    clip = make_clip(seed, duration=duration, fps=fps, size=size, classes=list(classes))
    write_frames_mp4(path, clip.frames, fps)
    return clip
