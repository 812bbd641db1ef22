"""The procedurally generated audio-visual world kf-tiny is trained on (DESIGN §6).

`make_clip(seed, ...) -> Clip`: rendered frames, stereo audio whose every sound is caused by
something visible at that instant, a templated caption, and the exact time and on-screen
position of every sound event. Everything is a pure function of the seed: the content (what
sounds, when, where) comes from `numpy.random.default_rng(seed)`, the look (size, rate,
background, floor, colours, camera, light, distractors, noise, compression: `looks.py`) from a
stream of its own, so a look never changes what sounds or when (see `make_clip`).

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

from kf_core.data import captions, film, render, sounds
from kf_core.data.compose import Backdrop
from kf_core.data.looks import LOOK_SETS, MAX_FRAME_BYTES, Look, classic_look, sample_look
from kf_core.data.scenes_impacts import scene_ball, scene_bell, scene_bird, scene_light, scene_strike
from kf_core.data.scenes_motion import scene_ambience, scene_footsteps, scene_rain, scene_vehicle
from kf_core.data.world import BACKGROUNDS, Event, Source, Stage

__all__ = ["Clip", "Event", "CLASSES", "FPS_CHOICES", "SIZE_CHOICES", "LAYOUTS", "make_clip", "clip_look",
           "concat_clips"]

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
SPREAD = 1.8  # outside the classic look, objects stand anywhere across the width (Stage.across)
MAX_CLASSIC_CANVAS_BYTES = 1 << 30  # the classic look draws at the frame size, in float32


@dataclass(frozen=True, eq=False)
class Clip:
    """One generated clip: frames uint8 [T, H, W, 3] at `fps`, audio float32 [2, N] at
    `sample_rate` with N = round(duration · sample_rate), caption, events sorted by time.

    Frame k is what is on screen at k/fps, always. A variable-frame-rate clip (`look.vfr`)
    also carries `timestamps`: the times of the frames it actually shows (the others repeat the
    last shown one); `shown` gives those frames with their times, for
    `frames_from_images(frames, fps, ..., timestamps=ts)` or `open_video(frames, fps,
    timestamps=ts)`, which sample exactly the same pictures as `frames` at `fps`."""

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
    look: Look | None = None
    timestamps: np.ndarray | None = None  # [K] s, the shown frames of a VFR clip

    @property
    def shown(self) -> tuple[np.ndarray, np.ndarray | None]:
        """-> (frames actually shown [K, H, W, 3], their times [K] s), or (frames, None) at a fixed rate."""
        if self.timestamps is None:
            return self.frames, None
        return self.frames[np.rint(self.timestamps * self.fps).astype(np.int64)], self.timestamps

    @property
    def onset_times(self) -> np.ndarray:
        """Times (s) of events with a sharp audible onset, sorted [K]."""
        return np.array(sorted(e.time_s for e in self.events if e.onset), np.float64)

    @property
    def texture_spans(self) -> list[tuple[float, float]]:
        """(start, end) spans of textural sources (rain, engines) where onsets are not errors."""
        return [(e.time_s, e.time_s + e.duration) for e in self.events if not e.onset]


def _stage_sources(rng: np.random.Generator, kinds: Sequence[str], n_frames: int, fps: float,
                   n_samples: int, sample_rate: int, height: int, width: int, look: Look, part: int):
    """Generate `kinds` side by side (one horizontal band each) -> canvas, audio, events, phrases."""
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]  # drawn in every look: same stream
    if look.classic:
        canvas, backdrop, spread, screen_x = render.new_canvas(n_frames, height, width, background), None, 1.0, None
    else:
        backdrop = Backdrop.open(look, part, n_frames, fps)
        canvas, background, spread, screen_x = backdrop.canvas, backdrop.scene.mean_colour, SPREAD, backdrop.screen_x
    audio = np.zeros((2, n_samples), np.float32)
    events: list[Event] = []
    phrases: list[str] = []
    edges = np.linspace(0, height, len(kinds) + 1).round().astype(int)
    for kind, top, bottom in zip(kinds, edges[:-1], edges[1:]):
        stage = Stage(n_frames, fps, n_samples, sample_rate, width, int(bottom - top), int(top), height, background,
                      spread, screen_x)
        source = SCENES[kind](rng, stage)
        gain = float(rng.uniform(0.4, 0.9))
        audio += gain * source.audio
        events += [dataclasses.replace(e, strength=e.strength * gain) for e in source.events]
        source.draw(canvas[:, top:bottom] if backdrop is None else backdrop.view(int(top), int(bottom)))
        phrases.append(source.phrase)
    if backdrop is not None:
        events = backdrop.close(events)
    # A faint room tone under everything, so "nothing happens" is never digital zero.
    bed = 10 ** (rng.uniform(-66, -50) / 20)
    audio += bed * np.stack([sounds.coloured_noise(rng, n_samples, 1.5) for _ in range(2)])
    return canvas, audio, events, phrases


def _resolve(rng: np.random.Generator, seed: int, duration, fps, size, looks) -> tuple[float, Look]:
    """Draw the clip's clocks from the content stream (the same draws in every look) -> (duration, Look)."""
    fps_drawn = FPS_CHOICES[int(rng.integers(len(FPS_CHOICES)))] if fps is None else fps
    size_drawn = SIZE_CHOICES[int(rng.integers(len(SIZE_CHOICES)))] if size is None else size
    u = rng.uniform(2.0, 12.0) if duration is None else None
    if size is not None:
        size = (size, size) if isinstance(size, int) else tuple(int(v) for v in size)
        if min(size) < 32 or max(size) > 1920:
            raise ValueError(f"size must be between 32 and 1920 px per side, got {size[0]}x{size[1]}")
    if fps is not None and not (1.0 <= float(fps) <= 240.0):
        raise ValueError(f"fps must be in [1, 240], got {fps}")
    if duration is not None and not (0.5 <= float(duration) <= 60.0):
        raise ValueError(f"duration must be in [0.5, 60] s, got {duration}")

    def clip_duration(rate: float) -> float:  # a whole number of frames: frames and samples span the same time
        return float(duration) if u is None else round(u * rate) / rate

    def frame_count(rate: float) -> int:
        return _frame_count(clip_duration(rate), rate, looks == "classic")

    if isinstance(looks, Look):
        look = looks
        if (fps is not None and float(fps) != look.fps) or (size is not None and size != (look.height, look.width)):
            raise ValueError(f"fps/size ({fps}, {size}) contradict the Look given ({look.fps}, "
                             f"{look.height}x{look.width}); pass one or the other")
        if frame_count(look.fps) * look.height * look.width * 3 > MAX_FRAME_BYTES:
            raise ValueError(f"{frame_count(look.fps)} frames of {look.height}x{look.width} exceed the "
                             f"{MAX_FRAME_BYTES >> 20} MiB a clip may take; use a smaller Look or duration")
    elif looks == "classic":
        height, width = (size_drawn, size_drawn) if isinstance(size_drawn, int) else size_drawn
        look = classic_look(int(height), int(width), float(fps_drawn))
        if frame_count(look.fps) * height * width * 12 > MAX_CLASSIC_CANVAS_BYTES:
            raise ValueError(f"{frame_count(look.fps)} frames of {height}x{width} are too large for the "
                             "classic look (drawn at full size); give a smaller size, rate or duration")
    elif looks in LOOK_SETS:
        look = sample_look(seed, looks, frame_count, fps=fps, size=size)
    else:
        raise ValueError(f"looks must be one of {LOOK_SETS} or a Look, got {looks!r}")
    return clip_duration(look.fps), look


def _frame_count(duration: float, fps: float, classic: bool) -> int:
    """Frames of a clip: they cover the whole duration (a fixed duration that is not a whole
    number of frames gets the frame that holds its end); classic rounds, as it always did."""
    if classic:
        return max(1, int(round(duration * fps)))
    return max(1, int(np.ceil(duration * fps - 1e-6)))


def clip_look(seed: int, *, duration: float | None = None, fps: float | None = None,
              size: int | tuple[int, int] | None = None, looks: str | Look = "train") -> Look:
    """-> the Look `make_clip` would use for these arguments, without rendering anything."""
    return _resolve(np.random.default_rng(seed), seed, duration, fps, size, looks)[1]


def make_clip(seed: int, *, duration: float | None = None, fps: float | None = None,
              size: int | tuple[int, int] | None = None, classes: Sequence[str] | None = None,
              sample_rate: int = 44100, layout: str | None = None, looks: str | Look = "train") -> Clip:
    """Seed (+ optional fixed duration s, fps, size (H, W) or int, classes, layout, looks) -> Clip.

    `classes` lists the sources of the clip, in order (e.g. ["ball"] or ["bird", "rain"]);
    None draws 1–3 distinct classes. `layout` is "single", "multi" or "concat"; None picks one
    that fits the classes. Unset options are drawn from the seed: durations 2–12 s, and the size
    and frame rate from the look.

    `looks`: "train" (default: the training look families), "heldout" (every scene has a family
    never seen in training), "classic" (the plain world of kf-tiny v1: `FPS_CHOICES`,
    `SIZE_CHOICES`, solid backgrounds, bit for bit as before looks existed), or a `Look`.

    What a look changes: the pixels; the frame rate (events sit on frames, so their times are
    snapped to its grid, and it decides how many parts a concatenation can hold); the camera
    moves where things are seen, so the events' x, y and the stereo pan of each sound (which
    follows the on-screen x). What it never changes, at a fixed fps: each source's mono signal
    and level, and the events' times, kinds and strengths; with a still, unzoomed camera
    (and the same fps and size) the audio is bit-identical. Classic and the other looks differ in
    one more way: outside the classic look, objects stand anywhere across the width (a wide frame
    is used edge to edge), not only near its middle.
    """
    rng = np.random.default_rng(seed)
    duration, look = _resolve(rng, seed, duration, fps, size, looks)
    fps, height, width = look.fps, look.render_height, look.render_width
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
    n_frames = _frame_count(duration, fps, look.classic)
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
        for part, (kind, (f0, f1)) in enumerate(zip(classes, parts)):
            s0, s1 = (int(round(f / fps * sample_rate)) for f in (f0, f1))
            s1 = n_samples if f1 == n_frames else s1
            canvas, audio, events, phrases = _stage_sources(rng, [kind], f1 - f0, fps, s1 - s0, sample_rate,
                                                            height, width, look, part)
            pieces.append((_to_uint8(canvas, look, part), audio, [e.shifted(f0 / fps) for e in events], phrases[0]))
        frames = np.concatenate([p[0] for p in pieces])
        audio = np.concatenate([p[1] for p in pieces], axis=1)
        events = [e for p in pieces for e in p[2]]
        caption = captions.in_sequence([p[3] for p in pieces])
    else:
        canvas, audio, events, phrases = _stage_sources(rng, classes, n_frames, fps, n_samples, sample_rate,
                                                        height, width, look, 0)
        frames, caption = _to_uint8(canvas, look, 0), captions.together(phrases)
        del canvas  # consumed: let the float canvas go before the frames are resized
    peak = float(np.abs(audio).max())
    if peak > 0.98:  # keep headroom without changing relative levels
        audio = audio * (0.98 / peak)
    events.sort(key=lambda e: e.time_s)
    timestamps = None
    if not look.classic:
        shown = film.shown_frames(look, frames.shape[0], np.array([round(e.time_s * fps) for e in events], np.int64))
        frames = film.finish(frames, look, shown)
        timestamps = None if shown is None else shown / fps
    return Clip(frames, np.ascontiguousarray(audio, np.float32), fps, sample_rate, duration, caption,
                tuple(events), tuple(classes), layout, int(seed), look, timestamps)


def _to_uint8(canvas: np.ndarray, look: Look, part: int) -> np.ndarray:
    """Float canvas of one part -> uint8 frames at the drawing size (with the look's blur and noise)."""
    return render.to_uint8(canvas) if look.classic else film.expose(canvas, look, part)


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
    timestamps = None
    if any(c.timestamps is not None for c in clips):  # VFR parts: the shown frames of every part
        timestamps = np.concatenate([(np.arange(c.frames.shape[0]) / fps if c.timestamps is None else c.timestamps)
                                     + start / fps for c, start in zip(clips, frame_starts)])
    return Clip(np.concatenate([c.frames for c in clips]), audio, fps, sr, float(duration),
                captions.in_sequence([c.caption for c in clips]), tuple(sorted(events, key=lambda e: e.time_s)),
                tuple(lbl for c in clips for lbl in c.labels), "concat", first.seed, None, timestamps)
