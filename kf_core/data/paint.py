"""What a look paints around the scenes: backgrounds, floors, and the tint of object colours.

Shape legend: T frames, H x W the drawing canvas (render size). Backgrounds are procedural
textures (`SceneLook.background`) laid on a sheet larger than the frame and shown through a
per-frame offset (slow drift, camera parallax); floors (`SceneLook.floor`) replace the plain band
a scene asks for with `render.floor`, across the whole frame; `make_tint` maps each colour a
scene uses to a nearby one of the look's colour family, far enough from the background to stay
visible. Nothing here draws from the content stream: randomness comes from `SceneLook.seed`.
"""
from __future__ import annotations

import colorsys
from typing import Callable

import numpy as np

from kf_core.data import render
from kf_core.data.looks import SceneLook

__all__ = ["paint_background", "floor_painter", "make_tint", "contrast"]

Color = tuple[float, float, float]


def _texture(look: SceneLook, rng: np.random.Generator, h: int, w: int, frame_h: int) -> np.ndarray:
    """-> mix weights [h, w] in [0, 1] between the look's two background colours."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / frame_h  # in frame heights
    c, s = np.cos(look.bg_angle), np.sin(look.bg_angle)
    along = c * x + s * y
    period = look.bg_scale
    kind = look.background
    if kind == "solid":
        return np.zeros((h, w), np.float32)
    if kind == "gradient":
        return (along - along.min()) / max(1e-6, float(along.max() - along.min()))
    if kind == "radial":
        cy, cx = rng.uniform(0.3, 0.7) * h / frame_h, rng.uniform(0.3, 0.7) * w / frame_h
        r = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        return np.clip(r / max(1e-6, float(r.max())), 0, 1) ** rng.uniform(0.7, 1.5)
    if kind == "stripes":
        wave = np.sin(2 * np.pi * along / period)
        return 0.5 + 0.5 * np.tanh(rng.uniform(1.0, 6.0) * wave) / np.tanh(1.0)
    if kind == "checker":
        across = -s * x + c * y
        return ((np.floor(along / period) + np.floor(across / period)) % 2).astype(np.float32)
    if kind == "bricks":
        row = np.floor(y / (0.5 * period))
        col = np.floor(x / period + 0.5 * (row % 2))
        fy, fx = (y / (0.5 * period)) % 1.0, (x / period + 0.5 * (row % 2)) % 1.0
        mortar = (np.minimum(fy, 1 - fy) < 0.08) | (np.minimum(fx, 1 - fx) < 0.04)
        shade = np.random.default_rng([look.seed, 7]).uniform(0.0, 0.35, 4096)
        brick = shade[((row * 131 + col * 17) % 4096).astype(np.int64)]
        return np.where(mortar, 1.0, brick).astype(np.float32)
    # "noise": smooth value noise, two octaves
    out = np.zeros((h, w), np.float32)
    for octave, amp in ((1.0, 0.65), (0.35, 0.35)):
        cell = max(2.0, period * octave * frame_h)
        gh, gw = int(h / cell) + 3, int(w / cell) + 3
        grid = rng.random((gh, gw)).astype(np.float32)
        gy, gx = np.arange(h) / cell, np.arange(w) / cell
        iy, ix = gy.astype(np.int64), gx.astype(np.int64)
        ty, tx = (gy - iy).astype(np.float32)[:, None], (gx - ix).astype(np.float32)[None, :]
        ty, tx = ty * ty * (3 - 2 * ty), tx * tx * (3 - 2 * tx)  # smoothstep: no grid creases
        top = grid[iy][:, ix] * (1 - tx) + grid[iy][:, ix + 1] * tx
        bottom = grid[iy + 1][:, ix] * (1 - tx) + grid[iy + 1][:, ix + 1] * tx
        out += amp * (top * (1 - ty) + bottom * ty)
    return np.clip((out - 0.5) * 1.6 + 0.5, 0, 1)


def paint_background(canvas: np.ndarray, look: SceneLook, times: np.ndarray, offset_x: np.ndarray,
                     offset_y: np.ndarray) -> None:
    """Fill canvas [T, H, W, 3] with the look's background, seen at per-frame offsets (px, [T])."""
    t, h, w = canvas.shape[:3]
    rng = np.random.default_rng([look.seed, 1])
    ox = np.rint(offset_x + look.bg_drift[0] * h * times).astype(np.int64)
    oy = np.rint(offset_y + look.bg_drift[1] * h * times).astype(np.int64)
    ox, oy = ox - ox.min(), oy - oy.min()
    sheet_h, sheet_w = h + int(oy.max()), w + int(ox.max())
    mix = _texture(look, rng, sheet_h, sheet_w, h)[..., None]  # Hs Ws 1
    a, b = (np.asarray(col, np.float32) for col in look.bg_colours)
    sheet = a + (b - a) * mix  # Hs Ws 3
    keys = oy * (sheet_w + 1) + ox
    for key in np.unique(keys):  # frames sharing an offset share one copy
        sel = keys == key
        y0, x0 = int(oy[sel][0]), int(ox[sel][0])
        canvas[sel] = sheet[y0:y0 + h, x0:x0 + w]


def contrast(colour, background) -> np.ndarray:
    """rgb -> the same hue moved in value until it is >= 0.3 (rgb distance) from `background`."""
    c, bg = np.clip(np.asarray(colour, np.float64), 0, 1), np.asarray(background, np.float64)
    if np.linalg.norm(c - bg) >= 0.3:
        return c
    lighter = float(np.mean(bg)) < 0.5
    target = np.ones(3) if lighter else np.zeros(3)
    for k in np.linspace(0.1, 1.0, 10):
        moved = c + (target - c) * k
        if np.linalg.norm(moved - bg) >= 0.3:
            return moved
    return target


_FAMILY_HSV = {  # hue jitter, saturation factor range, value factor range, mix toward white
    "vivid": (0.03, (0.85, 1.15), (0.9, 1.05), (0.0, 0.0)),
    "muted": (0.04, (0.4, 0.7), (0.7, 0.95), (0.0, 0.0)),
    "light": (0.03, (0.8, 1.0), (1.0, 1.0), (0.15, 0.4)),
    "dark": (0.03, (0.9, 1.1), (0.4, 0.6), (0.0, 0.0)),
}


def make_tint(look: SceneLook) -> Callable[[Color], Color]:
    """-> colour map of the look's colour family: each scene colour becomes one nearby colour
    (the same for every call in the clip), kept visible on the background."""
    cache: dict[tuple, Color] = {}
    hue_j, sat_f, val_f, white = _FAMILY_HSV[look.colours]
    background = look.mean_colour

    def tint(colour: Color) -> Color:
        key = tuple(int(round(float(c) * 10000)) for c in colour)
        if key not in cache:
            rng = np.random.default_rng([look.seed, 2, *key])
            hue, sat, val = colorsys.rgb_to_hsv(*np.clip(colour, 0, 1))
            hue = (hue + rng.uniform(-hue_j, hue_j)) % 1.0
            sat = min(1.0, sat * rng.uniform(*sat_f))
            val = min(1.0, val * rng.uniform(*val_f))
            rgb = np.array(colorsys.hsv_to_rgb(hue, sat, val))
            rgb = rgb + (1 - rgb) * rng.uniform(*white)
            cache[key] = tuple(float(c) for c in contrast(rgb, background))
        return cache[key]

    return tint


def floor_painter(look: SceneLook, frame_h: int) -> Callable:
    """-> painter(view, y0, y1, colour) drawing the look's floor style for a scene's ground at
    band rows [y0, y1): its top edge stays at y0 (where contacts happen), it spans the frame."""
    rng = np.random.default_rng([look.seed, 3])
    jitter = rng.uniform(0.75, 1.25, 3)
    lines = rng.integers(3, 7)
    grain = rng.uniform(0.15, 0.4)
    shade = rng.uniform(-0.3, 0.3)

    def paint(view: render.View, y0: float, y1: float, colour: Color) -> None:
        pixels = view.pixels
        w = pixels.shape[2]
        base = contrast(np.clip(np.asarray(colour) * jitter, 0, 1), look.mean_colour)
        top = view.y(y0)  # T
        to_bottom = y1 >= view.band[0] - 1e-6
        if look.floor == "none":
            return
        if look.floor == "line":
            width = max(1.0, look.floor_thickness)
            render.fill_rect(pixels, -1, top, w + 1, top + width, tuple(base))
            return
        if look.floor == "band":
            depth = view.length(y1 - y0) * (1.0 if to_bottom else look.floor_thickness)
            bottom = np.full_like(top, pixels.shape[1] + 1.0) if to_bottom else top + np.maximum(1.0, depth)
            render.fill_rect(pixels, -1, top, w + 1, bottom, tuple(base))
            return
        # "plane": the ground recedes to the frame's bottom: shaded nearer, planks closer far away
        bottom = np.full_like(top, pixels.shape[1] + 1.0)
        render.fill_rect(pixels, -1, top, w + 1, bottom, tuple(base))
        depth = np.maximum(bottom - top, 1.0)
        near = tuple(np.clip(base * (1 + shade), 0, 1))
        for k in range(4):  # a stepped gradient toward the viewer
            render.fill_rect(pixels, -1, top + depth * (0.25 + 0.25 * k), w + 1, bottom, near, alpha=0.25)
        plank = tuple(np.clip(base * (1 - grain), 0, 1))
        for k in range(1, int(lines) + 1):
            y = top + depth * (k / (lines + 1)) ** 1.6
            render.fill_rect(pixels, -1, y, w + 1, y + np.maximum(1.0, 0.03 * depth), plank)
        render.fill_rect(pixels, -1, top, w + 1, top + max(1.0, 0.01 * frame_h),
                         tuple(np.clip(base * (1 + grain), 0, 1)))

    return paint
