"""Anti-aliased 2-D drawing on stacks of frames, vectorised over time (numpy only).

Shape legend: T frames, H rows, W columns. A canvas is float32 [T, H, W, 3] in [0, 1]; every
shape parameter is either a scalar or an array [T] (one value per frame), so a moving object is
drawn on all frames in one call. Pixel (row i, column j) has its centre at (x=j+0.5, y=i+0.5);
coordinates are in pixels of the canvas passed in (a band view of a larger frame is fine).
Coverage is the exact-ish area fraction of a one-pixel-wide soft edge, which keeps small
objects visible and their motion smooth at 64 px.

A scene may instead draw on a `View`: the whole frame seen through the clip's look (camera zoom
and pan per frame, colour tint, edge softness, floor style). Scenes call the same functions
either way; the plain-array path is the classic look, pixel for pixel.

Each shape is evaluated only in a window around it (per frame when it moves), not over the whole
frame: the pixels outside have zero coverage, so the result is the same, only cheaper.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["View", "new_canvas", "fill_disc", "fill_rect", "draw_line", "fill_points", "floor", "to_uint8"]

Color = tuple[float, float, float]


@dataclass(frozen=True, eq=False)
class View:
    """A scene's band of the frame as the look shows it: canvas x = scale·x + dx, canvas y =
    scale·y + dy (band offset folded into dy), per frame; colours pass through `tint`."""

    pixels: np.ndarray  # T H W 3 float32, the whole frame
    scale: np.ndarray  # [T] camera zoom (<= 1 keeps the band inside the frame)
    dx: np.ndarray  # [T] px
    dy: np.ndarray  # [T] px
    band: tuple[int, int]  # (h, w) of the band in scene pixels
    tint: Callable[[Color], Color]
    soft: float = 1.0  # edge width in px
    floor_painter: Callable[["View", float, float, Color], None] | None = None

    def x(self, v) -> np.ndarray:
        return self.scale * np.asarray(v, np.float64) + self.dx

    def y(self, v) -> np.ndarray:
        return self.scale * np.asarray(v, np.float64) + self.dy

    def length(self, v) -> np.ndarray:
        return self.scale * np.asarray(v, np.float64)


def new_canvas(n_frames: int, height: int, width: int, color: Color) -> np.ndarray:
    """(T, H, W, colour) -> float32 canvas [T, H, W, 3] filled with `color`."""
    canvas = np.empty((n_frames, height, width, 3), np.float32)
    canvas[...] = np.asarray(color, np.float32)
    return canvas


def _per_frame(value, n_frames: int) -> np.ndarray:
    """Scalar or [T] -> float32 [T, 1, 1] ready to broadcast against a [T, H, W] grid."""
    arr = np.broadcast_to(np.asarray(value, np.float32), (n_frames,))
    return arr[:, None, None]


def _span(lo, hi, size: int, n_frames: int) -> tuple[np.ndarray, int]:
    """Per-frame float extents [lo, hi] (px) -> (window start [T] int, window length) covering
    every pixel whose centre lies in them, clamped to [0, size)."""
    lo = np.broadcast_to(np.asarray(lo, np.float64), (n_frames,))
    hi = np.broadcast_to(np.asarray(hi, np.float64), (n_frames,))
    start = np.clip(np.floor(np.nan_to_num(lo, nan=0.0, neginf=0.0, posinf=size)) - 1, 0, size).astype(np.int64)
    stop = np.clip(np.ceil(np.nan_to_num(hi, nan=size, neginf=0.0, posinf=size)) + 1, 0, size).astype(np.int64)
    length = int(max(1, (stop - start).max()))
    length = min(length, size)
    return np.minimum(start, size - length), length


def _shade(canvas: np.ndarray, bounds, coverage_fn, color: Color, alpha) -> None:
    """Blend `color` into `canvas` [T, H, W, 3] where coverage_fn(xs, ys) > 0, in place.

    bounds = (x_lo, x_hi, y_lo, y_hi) per frame (px) encloses every pixel the shape can touch;
    coverage_fn maps pixel-centre grids (xs [T|1, 1, w], ys [T|1, h, 1]) to coverage [T, h, w].
    """
    t, h, w = canvas.shape[:3]
    ox, ww = _span(bounds[0], bounds[1], w, t)
    oy, wh = _span(bounds[2], bounds[3], h, t)
    if ww * wh * 2 > w * h:  # most of the frame: the full grid is cheaper than gathering
        xs = (np.arange(w, dtype=np.float32) + 0.5)[None, None, :]  # 1 1 W
        ys = (np.arange(h, dtype=np.float32) + 0.5)[None, :, None]  # 1 H 1
        _blend(canvas, coverage_fn(xs, ys), color, alpha)
        return
    if (ox == ox[0]).all() and (oy == oy[0]).all():  # a still window: a plain view, no copies
        x0, y0 = int(ox[0]), int(oy[0])
        xs = (np.arange(x0, x0 + ww, dtype=np.float32) + 0.5)[None, None, :]
        ys = (np.arange(y0, y0 + wh, dtype=np.float32) + 0.5)[None, :, None]
        _blend(canvas[:, y0:y0 + wh, x0:x0 + ww], coverage_fn(xs, ys), color, alpha)
        return
    cols = ox[:, None] + np.arange(ww)  # T ww
    rows = oy[:, None] + np.arange(wh)  # T wh
    frames = np.arange(t)[:, None, None]
    index = (frames, rows[:, :, None], cols[:, None, :])
    window = canvas[index]  # T wh ww 3 (a copy)
    xs = (cols.astype(np.float32) + 0.5)[:, None, :]  # T 1 ww
    ys = (rows.astype(np.float32) + 0.5)[:, :, None]  # T wh 1
    _blend(window, coverage_fn(xs, ys), color, alpha)
    canvas[index] = window


def _blend(canvas: np.ndarray, coverage: np.ndarray, color: Color, alpha) -> None:
    """Blend `color` into `canvas` in place with per-pixel weight coverage·alpha ([T, H, W])."""
    if not np.isscalar(alpha):
        alpha = _per_frame(alpha, canvas.shape[0])
    a = (np.clip(coverage, 0.0, 1.0) * alpha)[..., None]  # T H W 1
    rows = np.flatnonzero((a[..., 0] > 0).any(axis=(0, 2)))
    if rows.size == 0:
        return
    # Touch only the rows the shape reaches: most shapes are small next to the frame.
    r0, r1 = rows[0], rows[-1] + 1
    col = np.asarray(color, np.float32)
    view = canvas[:, r0:r1]
    view += (col - view) * a[:, r0:r1]


def _target(canvas, color: Color):
    """canvas or View -> (pixel array, placement or None, colour, edge softness)."""
    if isinstance(canvas, View):
        return canvas.pixels, canvas, canvas.tint(color), canvas.soft
    return canvas, None, color, 1.0


def fill_disc(canvas, cx, cy, radius, color: Color, alpha=1.0) -> None:
    """Draw a filled disc (centre cx, cy and radius: scalars or [T]) on every frame, in place."""
    pixels, view, color, soft = _target(canvas, color)
    if view is not None:
        cx, cy, radius = view.x(cx), view.y(cy), view.length(radius)
    t = pixels.shape[0]
    px, py, pr = _per_frame(cx, t), _per_frame(cy, t), _per_frame(radius, t)
    reach = np.asarray(radius, np.float64) + soft

    def coverage(xs, ys):
        dist = np.sqrt((xs - px) ** 2 + (ys - py) ** 2)  # T h w
        return (pr - dist) / soft + 0.5 if soft != 1.0 else pr - dist + 0.5

    c_x, c_y = np.asarray(cx, np.float64), np.asarray(cy, np.float64)
    _shade(pixels, (c_x - reach, c_x + reach, c_y - reach, c_y + reach), coverage, color, alpha)


def fill_rect(canvas, x0, y0, x1, y1, color: Color, alpha=1.0) -> None:
    """Draw an axis-aligned filled rectangle [x0, x1) x [y0, y1) (scalars or [T]), in place."""
    pixels, view, color, soft = _target(canvas, color)
    if view is not None:
        x0, x1, y0, y1 = view.x(x0), view.x(x1), view.y(y0), view.y(y1)
    t = pixels.shape[0]
    a0, a1, b0, b1 = (_per_frame(v, t) for v in (x0, x1, y0, y1))
    half = soft / 2

    def coverage(xs, ys):
        # Overlap of each pixel's footprint with the rectangle, per axis.
        if soft == 1.0:
            cov_x = np.clip(np.minimum(xs + 0.5, a1) - np.maximum(xs - 0.5, a0), 0, 1)
            cov_y = np.clip(np.minimum(ys + 0.5, b1) - np.maximum(ys - 0.5, b0), 0, 1)
        else:
            cov_x = np.clip((np.minimum(xs + half, a1) - np.maximum(xs - half, a0)) / soft, 0, 1)
            cov_y = np.clip((np.minimum(ys + half, b1) - np.maximum(ys - half, b0)) / soft, 0, 1)
        return cov_x * cov_y

    bounds = (np.asarray(x0, np.float64) - soft, np.asarray(x1, np.float64) + soft,
              np.asarray(y0, np.float64) - soft, np.asarray(y1, np.float64) + soft)
    _shade(pixels, bounds, coverage, color, alpha)


def draw_line(canvas, x0, y0, x1, y1, width, color: Color, alpha=1.0) -> None:
    """Draw a segment (x0, y0)-(x1, y1) with round caps of the given width (pixels), in place."""
    pixels, view, color, soft = _target(canvas, color)
    if view is not None:
        x0, x1, y0, y1, width = view.x(x0), view.x(x1), view.y(y0), view.y(y1), view.length(width)
    t = pixels.shape[0]
    ax, ay, bx, by = (_per_frame(v, t) for v in (x0, y0, x1, y1))
    dx, dy = bx - ax, by - ay
    length2 = np.maximum(dx * dx + dy * dy, 1e-6)
    half_width = width / 2 if np.isscalar(width) else _per_frame(np.asarray(width) / 2, t)

    def coverage(xs, ys):
        u = np.clip(((xs - ax) * dx + (ys - ay) * dy) / length2, 0.0, 1.0)  # T h w
        dist = np.sqrt((xs - ax - u * dx) ** 2 + (ys - ay - u * dy) ** 2)
        return (half_width - dist) / soft + 0.5 if soft != 1.0 else half_width - dist + 0.5

    reach = np.asarray(width, np.float64) / 2 + soft
    xa, xb, ya, yb = (np.asarray(v, np.float64) for v in (x0, x1, y0, y1))
    bounds = (np.minimum(xa, xb) - reach, np.maximum(xa, xb) + reach,
              np.minimum(ya, yb) - reach, np.maximum(ya, yb) + reach)
    _shade(pixels, bounds, coverage, color, alpha)


def fill_points(canvas, frame: np.ndarray, x: np.ndarray, y: np.ndarray,
                length: int, color: Color, alpha: float = 1.0) -> None:
    """Draw many 1-px-wide vertical streaks ending at (x, y) on frame `frame` (all [K]), in place.

    For particle systems (rain): thousands of tiny shapes are cheaper as direct pixel writes
    than as per-shape coverage grids. Streaks are clipped to the canvas.
    """
    canvas, view, color, _ = _target(canvas, color)
    if view is not None:
        s = view.scale[frame]
        x, y = s * x + view.dx[frame], s * y + view.dy[frame]
        length = max(1, int(round(length * float(np.mean(view.scale)))))
    h, w = canvas.shape[1:3]
    col = np.asarray(color, np.float32)
    xi = np.floor(x).astype(np.int64)
    for k in range(length):
        yi = np.floor(y).astype(np.int64) - k
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        f, r, c = frame[ok], yi[ok], xi[ok]
        canvas[f, r, c] += (col - canvas[f, r, c]) * alpha


def floor(canvas, y0: float, y1: float, color: Color) -> None:
    """The ground a scene stands on, rows [y0, y1) of its band: a plain band on a canvas, the
    look's floor style (band, line, plane or none, across the whole frame) on a View."""
    if isinstance(canvas, View):
        if canvas.floor_painter is not None:
            canvas.floor_painter(canvas, y0, y1, color)
        return
    fill_rect(canvas, 0, y0, canvas.shape[2], y1, color)


def to_uint8(canvas: np.ndarray) -> np.ndarray:
    """float canvas [T, H, W, 3] in [0, 1] -> uint8 frames [T, H, W, 3] (the canvas is consumed)."""
    np.multiply(canvas, 255.0, out=canvas)
    np.rint(canvas, out=canvas)
    np.clip(canvas, 0, 255, out=canvas)
    return canvas.astype(np.uint8)
