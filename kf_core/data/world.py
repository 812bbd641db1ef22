"""The shared vocabulary of the synthetic world: events, the stage a source plays on, colours.

A *source* (ball, drum, ...) is generated on a *stage*: a horizontal band of the frame plus the
clip's clocks (frames at `fps`, audio at `sample_rate`). Sharp events are snapped to the frame
grid, so the frame at an event time shows the contact and the audio onset is at that instant.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from kf_core.data import sounds

__all__ = ["Event", "Stage", "Source", "COLOURS", "BACKGROUNDS", "pick_colour", "count_words"]


@dataclass(frozen=True)
class Event:
    """One sound event: when (s), what class, where on screen (x, y in [0,1] or None), how loud.

    `onset` says whether the event starts with a sharp audible attack at `time_s` (impacts,
    beeps, chirps): onset metrics score those. Textures (rain, a passing engine) have
    `onset=False`; their `duration` marks a span where detected onsets are not errors.
    """

    time_s: float
    kind: str
    x: float | None
    y: float | None
    strength: float
    duration: float
    onset: bool = True

    def shifted(self, dt: float) -> "Event":
        """-> the same event dt seconds later (for temporal concatenation)."""
        return Event(self.time_s + dt, self.kind, self.x, self.y, self.strength, self.duration, self.onset)


@dataclass(frozen=True)
class Stage:
    """Where and when a source plays: a band of rows [top, top+height) and the clip's clocks."""

    n_frames: int
    fps: float
    n_samples: int
    sample_rate: int
    width: int
    height: int
    top: int
    frame_height: int
    background: tuple[float, float, float]
    spread: float = 1.0  # > 1 widens where objects stand across the band (looks other than classic)
    # (x in [0,1] of the band, time s) -> x on screen, where the look's camera shows it: the pan
    # of every sound follows it. None: the band is the screen (classic).
    screen_x: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.n_frames < 1 or self.n_samples < 1 or self.width < 16 or self.height < 16:
            raise ValueError(
                f"Stage too small: {self.n_frames} frames, {self.n_samples} samples, band "
                f"{self.width}x{self.height} px (need >= 1 frame, >= 1 sample, >= 16x16 px)")
        if not 1.0 <= self.spread <= 3.0:
            raise ValueError(f"Stage.spread must be in [1, 3], got {self.spread}")

    def across(self, u: float, left: float, right: float) -> float:
        """A drawn position u (fraction of the band width) -> x in px. With spread > 1 the range
        is stretched about the centre, clamped so `left`/`right` px of the object stay inside:
        sounding objects then stand anywhere across a wide frame, not only near its middle."""
        if self.spread == 1.0:
            return u * self.width
        x = (0.5 + (u - 0.5) * self.spread) * self.width
        return float(np.clip(x, min(left, self.width / 2), max(self.width - right, self.width / 2)))

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    @property
    def times(self) -> np.ndarray:
        """Presentation time of every frame, [T] float64 seconds."""
        return np.arange(self.n_frames) / self.fps

    def snap(self, t: float) -> float:
        """A time -> the nearest frame time (events land exactly on a rendered frame)."""
        return round(t * self.fps) / self.fps

    def event(self, t: float, kind: str, px: float | None, py: float | None, strength: float,
              duration: float, onset: bool = True) -> Event:
        """Band pixel coordinates -> an Event in whole-frame normalised coordinates."""
        x = None if px is None else float(np.clip(px / self.width, 0.0, 1.0))
        y = None if py is None else float(np.clip((self.top + py) / self.frame_height, 0.0, 1.0))
        return Event(float(t), kind, x, y, float(strength), float(duration), onset)

    def silent_track(self) -> np.ndarray:
        return np.zeros(self.n_samples, np.float32)

    def place_panned(self, stereo: np.ndarray, sound: np.ndarray, t: float, x: float, gain: float) -> None:
        """Add a point-like sound at time t, panned from its x in [0,1] on the band, into [2, N]."""
        if self.screen_x is not None:
            x = float(self.screen_x(x, t))
        sounds.place(stereo, sounds.pan_stereo(sound, x), t, self.sample_rate, gain)

    def pan(self, mono: np.ndarray, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """A moving source: mono [N] with its band x [N] at sample times t [N] -> stereo [2, N]."""
        return sounds.pan_stereo(mono, x if self.screen_x is None else self.screen_x(x, t))


@dataclass
class Source:
    """What a scene generator returns: its events, stereo audio [2, N], a band painter, a phrase."""

    kind: str
    phrase: str
    events: list[Event]
    audio: np.ndarray
    draw: Callable[[np.ndarray], None]  # paints onto the band view, float [T, h, W, 3]
    details: dict = field(default_factory=dict)


COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.14, 0.14), "green": (0.18, 0.72, 0.25), "blue": (0.2, 0.35, 0.92),
    "yellow": (0.96, 0.86, 0.18), "orange": (0.97, 0.55, 0.1), "purple": (0.6, 0.25, 0.78),
    "white": (0.96, 0.96, 0.96), "pink": (0.96, 0.5, 0.72), "cyan": (0.2, 0.82, 0.86),
}

BACKGROUNDS: tuple[tuple[float, float, float], ...] = (
    (0.1, 0.1, 0.12), (0.08, 0.1, 0.26), (0.34, 0.34, 0.37), (0.8, 0.76, 0.63),
    (0.55, 0.7, 0.86), (0.1, 0.24, 0.12),
)


def pick_colour(rng: np.random.Generator, avoid: tuple[float, float, float],
                min_dist: float = 0.5) -> tuple[str, tuple[float, float, float]]:
    """-> (name, rgb) of a palette colour far enough from `avoid` to stay visible on it."""
    names = [n for n, c in COLOURS.items() if np.linalg.norm(np.subtract(c, avoid)) >= min_dist]
    name = names[int(rng.integers(len(names)))]
    return name, COLOURS[name]


_COUNTS = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times", 6: "six times"}


def count_words(n: int) -> str:
    """1 -> 'once', 2 -> 'twice', ..., > 6 -> 'many times'."""
    return _COUNTS.get(n, "many times")
