"""Anti-aliased 2-D drawing on stacks of frames, vectorised over time (numpy only).

Shape legend: T frames, H rows, W columns. A canvas is float32 [T, H, W, 3] in [0, 1]; every
shape parameter is either a scalar or an array [T] (one value per frame), so a moving object is
drawn on all frames in one call. Pixel (row i, column j) has its centre at (x=j+0.5, y=i+0.5);
coordinates are in pixels of the canvas passed in (a band view of a larger frame is fine).
Coverage is the exact-ish area fraction of a one-pixel-wide soft edge, which keeps small
objects visible and their motion smooth at 64 px.
"""
from __future__ import annotations

import numpy as np

__all__ = ["new_canvas", "fill_disc", "fill_rect", "draw_line", "fill_points", "to_uint8"]

Color = tuple[float, float, float]


def new_canvas(n_frames: int, height: int, width: int, color: Color) -> np.ndarray:
    """(T, H, W, colour) -> float32 canvas [T, H, W, 3] filled with `color`."""
    canvas = np.empty((n_frames, height, width, 3), np.float32)
    canvas[...] = np.asarray(color, np.float32)
    return canvas


def _per_frame(value, n_frames: int) -> np.ndarray:
    """Scalar or [T] -> float32 [T, 1, 1] ready to broadcast against a [T, H, W] grid."""
    arr = np.broadcast_to(np.asarray(value, np.float32), (n_frames,))
    return arr[:, None, None]


def _grid(canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = canvas.shape[1:3]
    ys = (np.arange(h, dtype=np.float32) + 0.5)[None, :, None]  # 1 H 1
    xs = (np.arange(w, dtype=np.float32) + 0.5)[None, None, :]  # 1 1 W
    return xs, ys


def _blend(canvas: np.ndarray, coverage: np.ndarray, color: Color, alpha: float) -> None:
    """Blend `color` into `canvas` in place with per-pixel weight coverage·alpha ([T, H, W])."""
    a = (np.clip(coverage, 0.0, 1.0) * alpha)[..., None]  # T H W 1
    rows = np.flatnonzero((a[..., 0] > 0).any(axis=(0, 2)))
    if rows.size == 0:
        return
    # Touch only the rows the shape reaches: most shapes are small next to the frame.
    r0, r1 = rows[0], rows[-1] + 1
    col = np.asarray(color, np.float32)
    view = canvas[:, r0:r1]
    view += (col - view) * a[:, r0:r1]


def fill_disc(canvas: np.ndarray, cx, cy, radius, color: Color, alpha: float = 1.0) -> None:
    """Draw a filled disc (centre cx, cy and radius: scalars or [T]) on every frame, in place."""
    t = canvas.shape[0]
    xs, ys = _grid(canvas)
    dist = np.sqrt((xs - _per_frame(cx, t)) ** 2 + (ys - _per_frame(cy, t)) ** 2)  # T H W
    _blend(canvas, _per_frame(radius, t) - dist + 0.5, color, alpha)


def fill_rect(canvas: np.ndarray, x0, y0, x1, y1, color: Color, alpha: float = 1.0) -> None:
    """Draw an axis-aligned filled rectangle [x0, x1) x [y0, y1) (scalars or [T]), in place."""
    t = canvas.shape[0]
    xs, ys = _grid(canvas)
    # Overlap of each pixel's unit interval with the rectangle, per axis.
    cov_x = np.clip(np.minimum(xs + 0.5, _per_frame(x1, t)) - np.maximum(xs - 0.5, _per_frame(x0, t)), 0, 1)
    cov_y = np.clip(np.minimum(ys + 0.5, _per_frame(y1, t)) - np.maximum(ys - 0.5, _per_frame(y0, t)), 0, 1)
    _blend(canvas, cov_x * cov_y, color, alpha)


def draw_line(canvas: np.ndarray, x0, y0, x1, y1, width: float, color: Color, alpha: float = 1.0) -> None:
    """Draw a segment (x0, y0)-(x1, y1) with round caps of the given width (pixels), in place."""
    t = canvas.shape[0]
    xs, ys = _grid(canvas)
    ax, ay, bx, by = (_per_frame(v, t) for v in (x0, y0, x1, y1))
    dx, dy = bx - ax, by - ay
    length2 = np.maximum(dx * dx + dy * dy, 1e-6)
    u = np.clip(((xs - ax) * dx + (ys - ay) * dy) / length2, 0.0, 1.0)  # T H W
    dist = np.sqrt((xs - ax - u * dx) ** 2 + (ys - ay - u * dy) ** 2)
    _blend(canvas, width / 2 - dist + 0.5, color, alpha)


def fill_points(canvas: np.ndarray, frame: np.ndarray, x: np.ndarray, y: np.ndarray,
                length: int, color: Color, alpha: float = 1.0) -> None:
    """Draw many 1-px-wide vertical streaks ending at (x, y) on frame `frame` (all [K]), in place.

    For particle systems (rain): thousands of tiny shapes are cheaper as direct pixel writes
    than as per-shape coverage grids. Streaks are clipped to the canvas.
    """
    h, w = canvas.shape[1:3]
    col = np.asarray(color, np.float32)
    xi = np.floor(x).astype(np.int64)
    for k in range(length):
        yi = np.floor(y).astype(np.int64) - k
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        f, r, c = frame[ok], yi[ok], xi[ok]
        canvas[f, r, c] += (col - canvas[f, r, c]) * alpha


def to_uint8(canvas: np.ndarray) -> np.ndarray:
    """float canvas [T, H, W, 3] in [0, 1] -> uint8 frames [T, H, W, 3]."""
    return np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8)
