"""What the camera, the light and the file do to a rendered scene.

Shape legend: T frames (the clip's frame grid at `Look.fps`), h x w the drawing canvas (render
size), H x W the clip's frame size. `camera_path` gives the per-frame zoom and offset scenes are
drawn through (a coordinate transform, so nothing is resampled); `lighting_gain` the per-frame
brightness; `shown_frames` the variable-frame-rate schedule (frames that are shown, the rest hold
the previous one; every event frame is shown); `expose` turns the float canvas into uint8
(blur, sensor noise) and `finish` makes the clip's frames (hold, resize to the frame size,
H.264 round trip).
"""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from kf_core.data import render
from kf_core.data.looks import Look, SceneLook

__all__ = ["camera_path", "lighting_gain", "shown_frames", "expose", "finish", "h264_round_trip"]

_CHUNK_BYTES = 128 << 20  # frames are resized / encoded this many output bytes at a time
H264_PIXELS = 640 * 360  # the largest frame the H.264 round trip runs at


def _ease(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def camera_path(look: SceneLook, times: np.ndarray, height: int, width: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame times [T] (s) -> (scale, offset x, offset y) [T]: frame px = scale·scene px + offset.

    The scale is <= 1 and the offset stays inside the free margin, so the scene is always whole
    in the frame (a sounding object is never cut off by the camera)."""
    dur = max(float(times[-1]), 1e-3) if times.size else 1.0
    u = _ease(times / dur)
    scale = look.zoom[0] + (look.zoom[1] - look.zoom[0]) * u
    px = look.pan[0] + (look.pan[2] - look.pan[0]) * u
    py = look.pan[1] + (look.pan[3] - look.pan[1]) * u
    if look.shake > 0:  # handheld: a few slow sways plus a faster tremor, in the free margin
        rng = np.random.default_rng([look.seed, 4])
        for amp, lo, hi in ((0.7, 0.3, 1.5), (0.3, 4.0, 9.0)):
            for axis in range(2):
                f, ph = rng.uniform(lo, hi, 2), rng.uniform(0, 2 * np.pi, 2)
                wave = 0.5 * amp * look.shake * (np.sin(2 * np.pi * f[0] * times + ph[0])
                                                 + np.sin(2 * np.pi * f[1] * times + ph[1]))
                if axis == 0:
                    px = px + wave
                else:
                    py = py + wave
    px, py = np.clip(px, -1, 1), np.clip(py, -1, 1)
    margin_x, margin_y = (1 - scale) * width / 2, (1 - scale) * height / 2
    return scale, margin_x + px * margin_x, margin_y + py * margin_y


def lighting_gain(look: SceneLook, times: np.ndarray) -> np.ndarray:
    """Frame times [T] -> brightness factor [T]: steady 1, a slow drift, or flicker."""
    if look.lighting == "steady" or look.light_depth == 0:
        return np.ones_like(times)
    rng = np.random.default_rng([look.seed, 6])
    wave = np.sin(2 * np.pi * look.light_rate * times + rng.uniform(0, 2 * np.pi))
    if look.lighting == "flicker":  # mains-like flicker seen at the frame rate, plus uneven frames
        wave = 0.6 * wave + 0.4 * rng.uniform(-1, 1, times.shape)
    return 1.0 + look.light_depth * wave


def shown_frames(look: Look, n_frames: int, must_show: np.ndarray) -> np.ndarray | None:
    """-> indices [K] of the frames a variable-frame-rate clip shows (None: every frame).

    Frames are held for 1-3 ticks of the grid; frame 0, the last two frames (so the last
    interval is one tick and the clip still ends at T/fps) and every event frame are shown."""
    if not look.vfr or n_frames < 4:
        return None
    rng = np.random.default_rng([look.seed, 8])
    shown = np.zeros(n_frames, bool)
    k = 0
    while k < n_frames:
        shown[k] = True
        k += int(rng.choice(3, p=[0.55, 0.3, 0.15])) + 1
    shown[[0, n_frames - 2, n_frames - 1]] = True
    shown[np.clip(must_show, 0, n_frames - 1)] = True
    return np.flatnonzero(shown)


def h264_round_trip(frames: np.ndarray, fps: float, crf: int) -> np.ndarray:
    """uint8 frames [T, H, W, 3] (even H, W) -> the same frames after H.264 4:2:0 at `crf`."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    enc.time_base = Fraction(fps).limit_denominator(1001) ** -1
    enc.options = {"crf": str(crf), "preset": "ultrafast", "threads": "1"}
    dec = av.CodecContext.create("h264", "r")
    dec.options = {"threads": "1"}
    out = np.empty_like(frames)
    got = 0

    def take(packets):
        nonlocal got
        for packet in packets:
            for frame in dec.decode(packet):
                out[got] = frame.to_ndarray(format="rgb24")
                got += 1

    for i, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = i
        take(enc.encode(frame))
    take(enc.encode(None))
    for frame in dec.decode(None):
        out[got] = frame.to_ndarray(format="rgb24")
        got += 1
    if got != len(frames):
        raise RuntimeError(f"H.264 round trip returned {got} of {len(frames)} frames")
    return out


def _resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [T, h, w, 3] -> uint8 [T, H, W, 3] (bilinear), a chunk of frames at a time."""
    if frames.shape[1:3] == (height, width):
        return frames
    step = max(1, _CHUNK_BYTES // (height * width * 3))

    def chunk(a: int) -> np.ndarray:
        x = torch.from_numpy(frames[a:a + step]).permute(0, 3, 1, 2)  # t 3 h w (channels-last memory)
        y = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        return y.permute(0, 2, 3, 1).numpy()  # t H W 3, channels-last: no copy

    if frames.shape[0] <= step:
        return chunk(0)
    out = np.empty((frames.shape[0], height, width, 3), np.uint8)
    for a in range(0, frames.shape[0], step):
        out[a:a + step] = chunk(a)
    return out


def _fit_pixels(height: int, width: int, pixels: int) -> tuple[int, int]:
    """A frame size -> the same aspect with at most `pixels` pixels (even sides)."""
    scale = min(1.0, np.sqrt(pixels / (height * width)))
    return max(2, 2 * int(round(height * scale / 2))), max(2, 2 * int(round(width * scale / 2)))


def expose(canvas: np.ndarray, look: Look, part: int = 0) -> np.ndarray:
    """float canvas [T, h, w, 3] (consumed) -> uint8 frames [T, h, w, 3] with the look's blur and
    sensor noise (part: which part of a concatenation, for its own noise)."""
    if look.blur > 0:
        gaussian_filter(canvas, sigma=(0, look.blur, look.blur, 0), output=canvas, mode="nearest")
    if look.noise > 0:  # a few noise fields reused in random order: per-pixel noise, cheaply
        rng = np.random.default_rng([look.seed, 9, part])
        fields = rng.standard_normal((min(6, canvas.shape[0]),) + canvas.shape[1:], dtype=np.float32)
        fields *= look.noise / 255.0
        order = rng.integers(len(fields), size=canvas.shape[0])
        for k in range(len(fields)):
            canvas[order == k] += fields[k]
    return render.to_uint8(canvas)


def finish(frames: np.ndarray, look: Look, shown: np.ndarray | None) -> np.ndarray:
    """uint8 frames [T, h, w, 3] -> the clip's frames [T, H, W, 3]: held frames (VFR) repeat the
    last shown one, then the resize to the frame size and the H.264 round trip (done at most at
    H264_PIXELS, then resized: a large frame looks like a compressed stream scaled up)."""
    if shown is not None:
        hold = shown[np.searchsorted(shown, np.arange(frames.shape[0]), side="right") - 1]
        frames = frames[hold]
    if look.crf is not None:
        mid = _fit_pixels(look.height, look.width, max(H264_PIXELS, frames.shape[1] * frames.shape[2]))
        frames = np.ascontiguousarray(_resize(frames, *mid))
        step = max(8, _CHUNK_BYTES // (mid[0] * mid[1] * 3))
        for a in range(0, frames.shape[0], step):
            frames[a:a + step] = h264_round_trip(frames[a:a + step], look.fps, look.crf)
    return _resize(frames, look.height, look.width)
