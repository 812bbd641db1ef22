"""The procedurally generated audio-visual world kf-tiny is trained on (DESIGN §6).

`make_clip(seed, ...) -> Clip`: rendered frames, stereo audio whose every sound is caused by
something visible at that instant, a templated caption, and the exact time and on-screen
position of every sound event. Everything is a pure function of the seed (one
`numpy.random.Generator`, no global state).

Layouts: "single" (one source), "multi" (2–3 sources at once, each in its own horizontal band
of the frame) and "concat" (2–3 single-source clips played back to back with merged captions:
the temporal concatenation augmentation of paper §5.2).

Classes (look / sound): see `CLASSES` and the scene modules.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from kf_core.data import captions, render, sounds
from kf_core.data.scenes_impacts import scene_ball, scene_bell, scene_bird, scene_light, scene_strike
from kf_core.data.scenes_motion import scene_ambience, scene_footsteps, scene_rain, scene_vehicle
from kf_core.data.world import BACKGROUNDS, Event, Source, Stage

__all__ = ["Clip", "Event", "CLASSES", "FPS_CHOICES", "SIZE_CHOICES", "LAYOUTS", "make_clip", "concat_clips"]

SCENES: dict[str, Callable[[np.random.Generator, Stage], Source]] = {
    "ball": scene_ball,  # disc bouncing on a floor line / modal impact per contact, pitch from size
    "strike": scene_strike,  # stick hitting a drum or wooden block / membrane or block modes
    "bell": scene_bell,  # hammer hitting a hanging bell / long-decaying bell partials
    "footsteps": scene_footsteps,  # walking stick figure / filtered noise burst per foot plant
    "vehicle": scene_vehicle,  # car/truck/motorbike crossing / engine harmonics, Doppler, pan
    "rain": scene_rain,  # falling streaks / one click per drop + density-following hiss
    "bird": scene_bird,  # bird opening its beak / FM chirps
    "light": scene_light,  # flashing lamp / beep for exactly each ON phase
    "ambience": scene_ambience,  # drifting clouds / coloured noise or near silence
}
CLASSES: tuple[str, ...] = tuple(SCENES)
FPS_CHOICES: tuple[float, ...] = (12.0, 15.0, 24.0, 25.0, 30.0, 50.0, 60.0)
SIZE_CHOICES: tuple[tuple[int, int], ...] = ((64, 64), (96, 96), (128, 128), (96, 128), (120, 160), (160, 160))
LAYOUTS = ("single", "multi", "concat")
MIN_SEGMENT_S = 1.5  # shortest single-event clip inside a temporal concatenation


@dataclass(frozen=True, eq=False)
class Clip:
    """One generated clip: frames uint8 [T, H, W, 3] at `fps`, audio float32 [2, N] at
    `sample_rate` with N = round(duration · sample_rate), caption, events sorted by time."""

    frames: np.ndarray
    audio: np.ndarray
    fps: float
    sample_rate: int
    duration: float
    caption: str
    events: tuple[Event, ...]
    labels: tuple[str, ...]  # the source classes in the clip, in order of appearance
    layout: str
    seed: int

    @property
    def onset_times(self) -> np.ndarray:
        """Times (s) of events with a sharp audible onset, sorted [K]."""
        return np.array(sorted(e.time_s for e in self.events if e.onset), np.float64)

    @property
    def texture_spans(self) -> list[tuple[float, float]]:
        """(start, end) spans of textural sources (rain, engines) where onsets are not errors."""
        return [(e.time_s, e.time_s + e.duration) for e in self.events if not e.onset]


def _stage_sources(rng: np.random.Generator, kinds: Sequence[str], n_frames: int, fps: float,
                   n_samples: int, sample_rate: int, height: int, width: int):
    """Generate `kinds` side by side (one horizontal band each) -> canvas, audio, events, phrases."""
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    canvas = render.new_canvas(n_frames, height, width, background)
    audio = np.zeros((2, n_samples), np.float32)
    events: list[Event] = []
    phrases: list[str] = []
    edges = np.linspace(0, height, len(kinds) + 1).round().astype(int)
    for kind, top, bottom in zip(kinds, edges[:-1], edges[1:]):
        stage = Stage(n_frames, fps, n_samples, sample_rate, width, int(bottom - top), int(top), height, background)
        source = SCENES[kind](rng, stage)
        gain = float(rng.uniform(0.4, 0.9))
        audio += gain * source.audio
        events += [dataclasses.replace(e, strength=e.strength * gain) for e in source.events]
        source.draw(canvas[:, top:bottom])
        phrases.append(source.phrase)
    # A faint room tone under everything, so "nothing happens" is never digital zero.
    bed = 10 ** (rng.uniform(-66, -50) / 20)
    audio += bed * np.stack([sounds.coloured_noise(rng, n_samples, 1.5) for _ in range(2)])
    return canvas, audio, events, phrases


def _resolve(rng: np.random.Generator, duration, fps, size) -> tuple[float, float, int, int]:
    fps = float(FPS_CHOICES[int(rng.integers(len(FPS_CHOICES)))] if fps is None else fps)
    if size is None:
        height, width = SIZE_CHOICES[int(rng.integers(len(SIZE_CHOICES)))]
    else:
        height, width = (size, size) if isinstance(size, int) else size
    if duration is None:  # a whole number of frames, so frames and samples span the same time
        duration = round(rng.uniform(2.0, 12.0) * fps) / fps
    if not (1.0 <= fps <= 240.0):
        raise ValueError(f"fps must be in [1, 240], got {fps}")
    if not (0.5 <= float(duration) <= 60.0):
        raise ValueError(f"duration must be in [0.5, 60] s, got {duration}")
    if min(height, width) < 32 or max(height, width) > 1024:
        raise ValueError(f"size must be between 32 and 1024 px per side, got {height}x{width}")
    return float(duration), fps, int(height), int(width)


def make_clip(seed: int, *, duration: float | None = None, fps: float | None = None,
              size: int | tuple[int, int] | None = None, classes: Sequence[str] | None = None,
              sample_rate: int = 44100, layout: str | None = None) -> Clip:
    """Seed (+ optional fixed duration s, fps, size (H, W) or int, classes, layout) -> Clip.

    `classes` lists the sources of the clip, in order (e.g. ["ball"] or ["bird", "rain"]);
    None draws 1–3 distinct classes. `layout` is "single", "multi" or "concat"; None picks one
    that fits the classes. Unset options are drawn from the seed: durations 2–12 s, fps from
    `FPS_CHOICES`, sizes from `SIZE_CHOICES`.
    """
    rng = np.random.default_rng(seed)
    duration, fps, height, width = _resolve(rng, duration, fps, size)
    if classes is not None:
        unknown = [c for c in classes if c not in SCENES]
        if unknown or not classes:
            raise ValueError(f"unknown or empty classes {list(classes)}; choose from {list(CLASSES)}")
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout is None:
        if classes is not None and len(classes) == 1:
            layout = "single"
        else:
            layout = ("multi", "concat")[int(rng.integers(2))] if classes else LAYOUTS[int(rng.choice(3, p=[0.5, 0.25, 0.25]))]
    n_frames = max(1, int(round(duration * fps)))
    n_samples = int(round(duration * sample_rate))
    n_sources = 1 if layout == "single" else int(rng.integers(2, 4))
    # whole frames per part: at 15 fps a 1.5 s part takes 23 frames, so 3.0 s (45 frames) holds one
    min_part = int(np.ceil(MIN_SEGMENT_S * fps))
    if layout == "concat" and classes is None:  # as many parts as the duration allows
        n_sources = min(n_sources, n_frames // min_part)
        layout = "concat" if n_sources >= 2 else "single"
        n_sources = max(1, n_sources)
    if classes is None:
        classes = list(rng.choice(CLASSES, size=n_sources, replace=False))
    classes = [str(c) for c in classes]
    if layout == "single" and len(classes) != 1:
        raise ValueError(f"layout 'single' takes exactly one class, got {classes}")

    if layout == "concat":
        max_parts = n_frames // min_part
        if max_parts < len(classes):
            raise ValueError(
                f"a concatenation of {len(classes)} clips needs >= {len(classes) * min_part / fps:.2f} s "
                f"({len(classes)} x {min_part} frames at {fps:g} fps), got {duration} s: give a longer "
                "duration or fewer classes")
        parts = _split_frames(rng, n_frames, len(classes), min_part)
        pieces = []
        for kind, (f0, f1) in zip(classes, parts):
            s0, s1 = (int(round(f / fps * sample_rate)) for f in (f0, f1))
            s1 = n_samples if f1 == n_frames else s1
            canvas, audio, events, phrases = _stage_sources(rng, [kind], f1 - f0, fps, s1 - s0, sample_rate,
                                                            height, width)
            pieces.append((render.to_uint8(canvas), audio, [e.shifted(f0 / fps) for e in events], phrases[0]))
        frames = np.concatenate([p[0] for p in pieces])
        audio = np.concatenate([p[1] for p in pieces], axis=1)
        events = [e for p in pieces for e in p[2]]
        caption = captions.in_sequence([p[3] for p in pieces])
    else:
        canvas, audio, events, phrases = _stage_sources(rng, classes, n_frames, fps, n_samples, sample_rate,
                                                        height, width)
        frames, caption = render.to_uint8(canvas), captions.together(phrases)
    peak = float(np.abs(audio).max())
    if peak > 0.98:  # keep headroom without changing relative levels
        audio = audio * (0.98 / peak)
    events.sort(key=lambda e: e.time_s)
    return Clip(frames, np.ascontiguousarray(audio, np.float32), fps, sample_rate, duration, caption,
                tuple(events), tuple(classes), layout, int(seed))


def _split_frames(rng: np.random.Generator, n_frames: int, parts: int, min_len: int) -> list[tuple[int, int]]:
    """n_frames -> `parts` consecutive (start, stop) ranges, each at least min_len frames."""
    spare = n_frames - parts * min_len
    cuts = np.sort(rng.integers(0, spare + 1, parts - 1))
    lengths = np.diff(np.concatenate([[0], cuts, [spare]])) + min_len
    stops = np.cumsum(lengths)
    return [(int(a), int(b)) for a, b in zip(np.concatenate([[0], stops[:-1]]), stops)]


def concat_clips(clips: Sequence[Clip]) -> Clip:
    """Clips with equal fps, sample rate and size -> one clip played back to back (paper §5.2).

    Events are shifted by the start of their clip (each part starts at its first frame), the
    captions are merged with "then", and the audio of each part is cut or padded to its frames.
    """
    if not clips:
        raise ValueError("concat_clips needs at least one clip")
    first = clips[0]
    for c in clips[1:]:
        if c.fps != first.fps or c.sample_rate != first.sample_rate or c.frames.shape[1:] != first.frames.shape[1:]:
            raise ValueError(
                f"concat_clips needs equal fps/sample_rate/size; got {c.fps}/{c.sample_rate}/{c.frames.shape[1:3]} "
                f"after {first.fps}/{first.sample_rate}/{first.frames.shape[1:3]}")
    fps, sr = first.fps, first.sample_rate
    frame_starts = np.concatenate([[0], np.cumsum([c.frames.shape[0] for c in clips])])
    duration = frame_starts[-1] / fps
    bounds = [int(round(f / fps * sr)) for f in frame_starts]
    audio = np.zeros((2, int(round(duration * sr))), np.float32)
    events = []
    for c, start, a, b in zip(clips, frame_starts, bounds[:-1], bounds[1:]):
        part = c.audio[:, : b - a]
        audio[:, a: a + part.shape[1]] = part
        events += [e.shifted(start / fps) for e in c.events if e.time_s < c.frames.shape[0] / fps]
    return Clip(np.concatenate([c.frames for c in clips]), audio, fps, sr, float(duration),
                captions.in_sequence([c.caption for c in clips]), tuple(sorted(events, key=lambda e: e.time_s)),
                tuple(lbl for c in clips for lbl in c.labels), "concat", first.seed)
