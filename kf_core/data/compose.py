"""One scene's picture under a look: the canvas, what lies behind the scenes, how they are seen.

`Backdrop.open(look, part, T, fps)` paints the background (with drift and camera parallax) and
the silent distractors on a float canvas [T, h, w, 3] at the look's render size and fixes the
camera path; `view(top, bottom)` is the `render.View` a scene in that band draws through;
`close(events)` applies the lighting and moves the events' positions to where the camera shows
them. Nothing here touches the content random stream or the audio.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from kf_core.data import film, paint, render
from kf_core.data.distractors import draw_distractors
from kf_core.data.looks import Look, SceneLook
from kf_core.data.world import Event

__all__ = ["Backdrop"]


@dataclass
class Backdrop:
    canvas: np.ndarray  # T h w 3 float32
    scene: SceneLook
    times: np.ndarray  # [T] s
    scale: np.ndarray  # [T] camera
    offset_x: np.ndarray  # [T] px
    offset_y: np.ndarray  # [T] px
    fps: float
    tint: Callable  # colour -> the look's colour (paint.make_tint)
    floor: Callable  # the look's floor painter (paint.floor_painter)

    @classmethod
    def open(cls, look: Look, part: int, n_frames: int, fps: float) -> "Backdrop":
        scene = look.scenes[part % len(look.scenes)]
        h, w = look.render_height, look.render_width
        times = np.arange(n_frames) / fps
        scale, ox, oy = film.camera_path(scene, times, h, w)
        canvas = np.empty((n_frames, h, w, 3), np.float32)
        parallax = np.random.default_rng([scene.seed, 10]).uniform(0.3, 1.0)  # the background is far
        paint.paint_background(canvas, scene, times, parallax * ox, parallax * oy)
        backdrop = cls(canvas, scene, times, scale, ox, oy, fps, paint.make_tint(scene),
                       paint.floor_painter(scene, h))
        draw_distractors(backdrop.view(0, h), scene, times)
        return backdrop

    def view(self, top: int, bottom: int) -> render.View:
        """-> the View a scene on band rows [top, bottom) draws through."""
        return render.View(self.canvas, self.scale, self.offset_x, self.offset_y + self.scale * top,
                           (bottom - top, self.canvas.shape[2]), self.tint, self.scene.soft, self.floor)

    def screen_x(self, x, t):
        """x in [0,1] of the frame's width in the scene, at time(s) t (s) -> x on screen (same shape)."""
        w = self.canvas.shape[2]
        scale = np.interp(t, self.times, self.scale)
        return np.clip(scale * np.asarray(x, np.float64) + np.interp(t, self.times, self.offset_x) / w, 0.0, 1.0)

    def close(self, events: list[Event]) -> list[Event]:
        """Apply the lighting; -> events with x, y where the camera shows them at their frame."""
        gain = film.lighting_gain(self.scene, self.times).astype(np.float32)
        if not np.all(gain == 1):
            self.canvas *= gain[:, None, None, None]
        t, h = self.canvas.shape[:2]
        out = []
        for e in events:
            k = int(np.clip(round(e.time_s * self.fps), 0, t - 1))
            x = None if e.x is None else float(self.screen_x(e.x, e.time_s))
            y = None if e.y is None else float(np.clip((self.scale[k] * e.y * h + self.offset_y[k]) / h, 0, 1))
            out.append(dataclasses.replace(e, x=x, y=y))
        return out
