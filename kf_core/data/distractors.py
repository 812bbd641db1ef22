"""Moving things that make no sound, so a model must tie sound to contact, not to motion.

Each distractor moves smoothly and never touches anything: a shape drifting across, a pendulum
swinging in mid-air, a shape bobbing up and down (a smooth sine, unlike a bounce's sharp turn at
the floor), a ball rolling through the air, a spinning bar. They are drawn behind the scenes, get
no Event and add nothing to the audio. Randomness comes from the look (`SceneLook.seed`).
"""
from __future__ import annotations

import numpy as np

from kf_core.data import render
from kf_core.data.looks import SceneLook
from kf_core.data.paint import contrast

__all__ = ["draw_distractors"]


def _shape(view: render.View, rng: np.random.Generator, x, y, size: float, colour) -> None:
    kind = int(rng.integers(3))
    if kind == 0:
        render.fill_disc(view, x, y, size, colour)
    elif kind == 1:
        render.fill_rect(view, x - size, y - 0.7 * size, x + size, y + 0.7 * size, colour)
    else:  # a ring
        render.fill_disc(view, x, y, size, colour)
        render.fill_disc(view, x, y, 0.55 * size, tuple(0.5 * (c + b) for c, b in zip(colour, (0.5,) * 3)))


def draw_distractors(view: render.View, look: SceneLook, times: np.ndarray) -> None:
    """Draw the look's silent distractors on a whole-frame `view` at frame times [T] (s)."""
    h, w = view.band
    dur = max(float(times[-1]) if times.size else 1.0, 1e-3)
    for i, kind in enumerate(look.distractors):
        rng = np.random.default_rng([look.seed, 5, i])
        colour = tuple(float(c) for c in contrast(rng.uniform(0.1, 0.95, 3), look.mean_colour))
        size = rng.uniform(0.03, 0.09) * min(h, w)
        phase = rng.uniform(0, 2 * np.pi)
        if kind == "drift":  # a straight glide between two points
            (x0, x1), (y0, y1) = rng.uniform(0.05, 0.95, 2) * w, rng.uniform(0.1, 0.75, 2) * h
            u = times / dur
            _shape(view, rng, x0 + (x1 - x0) * u, y0 + (y1 - y0) * u, size, colour)
        elif kind == "pendulum":  # swings in mid-air: its lowest point stays well above the ground
            px, py = rng.uniform(0.1, 0.9) * w, rng.uniform(0.0, 0.1) * h
            length = rng.uniform(0.2, 0.45) * h
            theta = np.radians(rng.uniform(15, 45)) * np.sin(2 * np.pi * times / rng.uniform(0.8, 2.5) + phase)
            bx, by = px + length * np.sin(theta), py + length * np.cos(theta)
            render.draw_line(view, px, py, bx, by, max(1.0, 0.012 * h), tuple(0.6 * c for c in colour))
            render.fill_disc(view, bx, by, size, colour)
        elif kind == "bob":  # floats up and down along a smooth sine
            x0, y0 = rng.uniform(0.1, 0.9) * w, rng.uniform(0.25, 0.6) * h
            amp = rng.uniform(0.05, 0.18) * h
            y = y0 + amp * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * times + phase)
            _shape(view, rng, x0 + rng.uniform(-0.05, 0.05) * w * times / dur, y, size, colour)
        elif kind == "roller":  # a ball rolling through the air at constant speed, its spoke turning
            y0 = rng.uniform(0.15, 0.6) * h
            x0, x1 = (0.0, w) if rng.random() < 0.5 else (w, 0.0)
            x = x0 + (x1 - x0) * (rng.uniform(-0.2, 0.2) + times / dur * rng.uniform(0.6, 1.2))
            spin = (x - x0) / max(size, 1.0)
            render.fill_disc(view, x, y0, size, colour)
            render.draw_line(view, x, y0, x + 0.9 * size * np.cos(spin), y0 + 0.9 * size * np.sin(spin),
                             max(1.0, 0.25 * size), tuple(0.4 * c for c in colour))
        else:  # "spinner": a bar turning about its centre
            cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.15, 0.6) * h
            arm = rng.uniform(1.5, 3.0) * size
            angle = phase + 2 * np.pi * rng.uniform(-1.0, 1.0) * times
            dx, dy = arm * np.cos(angle), arm * np.sin(angle)
            render.draw_line(view, cx - dx, cy - dy, cx + dx, cy + dy, max(1.0, 0.4 * size), colour)
