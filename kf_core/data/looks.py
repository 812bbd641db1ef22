"""The look of a synthetic clip, drawn from its own random stream, independent of its sounds.

A `Look` fixes how a clip is shown and nothing about what happens in it: frame size, aspect and
rate (and variable frame rate), and per scene (`SceneLook`, one per part of a concatenation) the
background, floor, object colours, camera, lighting, silent distractors and edge softness, plus
the "film" of the clip: sensor noise, blur and H.264 compression. It is sampled from
`numpy.random.default_rng([seed, LOOK_STREAM])`, so the content stream of a seed (what sounds,
when, where) is the same whatever the look; `sample_look` only describes, it renders nothing.

Look *families* per axis; the held-out ones (`HELDOUT`) never occur in `looks="train"`:

| axis       | training families                          | held out        |
|------------|--------------------------------------------|-----------------|
| background | solid, gradient, noise, stripes, bricks    | checker, radial |
| floor      | band, plane, none                          | line            |
| colours    | vivid, muted, light                        | dark            |
| camera     | static, pan, shake                         | zoom            |
| lighting   | steady, drift, flicker                     | (none)          |

`looks="heldout"` gives every scene at least one held-out family (each held-out axis with
p = 0.6); sizes, rates, VFR, noise, blur and compression are drawn alike in both sets.
`looks="classic"` is the plain world kf-tiny v1 was trained on (solid backgrounds, palette
colours, 64-160 px, fixed rates), bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Look", "SceneLook", "LOOK_SETS", "FAMILIES", "HELDOUT", "DISTRACTORS", "sample_look",
           "classic_look", "MAX_FRAME_BYTES", "RENDER_PIXELS"]

LOOK_STREAM = 0x100C  # the look's own SeedSequence branch: [seed, LOOK_STREAM]
LOOK_SETS = ("train", "heldout", "classic")
FAMILIES: dict[str, tuple[str, ...]] = {
    "background": ("solid", "gradient", "noise", "stripes", "bricks", "checker", "radial"),
    "floor": ("band", "plane", "none", "line"),
    "colours": ("vivid", "muted", "light", "dark"),
    "camera": ("static", "pan", "shake", "zoom"),
    "lighting": ("steady", "drift", "flicker"),
}
HELDOUT: dict[str, tuple[str, ...]] = {
    "background": ("checker", "radial"), "floor": ("line",), "colours": ("dark",), "camera": ("zoom",),
}
_WEIGHTS = {  # relative odds of the training families
    "background": {"solid": 2, "gradient": 2.5, "noise": 2, "stripes": 1.5, "bricks": 2},
    "floor": {"band": 4.5, "plane": 3.5, "none": 2}, "colours": {"vivid": 4.5, "muted": 3.5, "light": 2},
    "camera": {"static": 5, "pan": 2.5, "shake": 2.5}, "lighting": {"steady": 5, "drift": 3, "flicker": 2},
}
DISTRACTORS = ("drift", "pendulum", "bob", "roller", "spinner")
# Frame rates: common camera / codec rates, or any rate in [8, 60] (35 % of clips).
_RATES = {8.0: 3, 10.0: 3, 12.0: 6, 15.0: 8, 24000 / 1001: 8, 24.0: 14, 25.0: 14, 30000 / 1001: 10, 30.0: 14,
          50.0: 6, 60000 / 1001: 4, 60.0: 10}
_ASPECTS = {16 / 9: 30, 4 / 3: 15, 1.0: 15, 3 / 2: 5, 21 / 9: 10, 9 / 16: 15, 3 / 4: 10}  # width / height
_SHORT_SIDE = ((64, 160, 0.55), (160, 320, 0.27), (320, 540, 0.12), (540, 720, 0.045), (720, 1080, 0.015))
_CRFS = (18, 24, 30, 36, 42)
RENDER_PIXELS = 160 * 160  # scenes are drawn at most this large, then resampled to the frame size
MAX_FRAME_BYTES = 320 << 20  # uint8 frames of one clip; larger draws shrink (keeping the aspect)
MAX_CANVAS_BYTES = 192 << 20  # the float32 drawing canvas


@dataclass(frozen=True)
class SceneLook:
    """How one scene (a whole clip, or one part of a concatenation) is styled."""

    background: str
    bg_colours: tuple[tuple[float, float, float], tuple[float, float, float]]
    bg_scale: float  # texture period as a fraction of the frame height
    bg_angle: float  # radians
    bg_drift: tuple[float, float]  # texture drift, frame heights per second (x, y)
    floor: str
    floor_thickness: float  # x the scene's own floor thickness (band), px for a line
    colours: str
    camera: str
    zoom: tuple[float, float]  # camera scale at the start and the end (<= 1: the scene fits)
    pan: tuple[float, float, float, float]  # start x, y, end x, y in [-1, 1] of the free margin
    shake: float  # handheld amplitude, fraction of the free margin
    lighting: str
    light_depth: float  # relative brightness swing
    light_rate: float  # Hz
    distractors: tuple[str, ...]
    soft: float  # edge width of drawn shapes, px
    seed: int  # render-time randomness (texture, shake path, tints, distractor paths)

    def __post_init__(self) -> None:
        for axis in FAMILIES:
            if getattr(self, axis) not in FAMILIES[axis]:
                raise ValueError(f"SceneLook.{axis} must be one of {FAMILIES[axis]}, got {getattr(self, axis)!r}")
        if not all(0.3 <= z <= 1.0 for z in self.zoom):
            raise ValueError(f"SceneLook.zoom must be in [0.3, 1] (<= 1 keeps the scene in frame), got {self.zoom}")
        bad = [d for d in self.distractors if d not in DISTRACTORS]
        if bad:
            raise ValueError(f"unknown distractors {bad}; choose from {DISTRACTORS}")
        if not 0.5 <= self.soft <= 4.0:
            raise ValueError(f"SceneLook.soft must be in [0.5, 4] px, got {self.soft}")

    @property
    def mean_colour(self) -> tuple[float, float, float]:
        """The background's average colour (what objects must stand out from)."""
        return tuple(float(v) for v in np.mean(self.bg_colours, axis=0))

    def families(self) -> dict[str, str]:
        return {axis: getattr(self, axis) for axis in FAMILIES}


@dataclass(frozen=True)
class Look:
    """How a clip is shown: frames [T, height, width, 3] at `fps`, scenes drawn at the render size."""

    family: str  # "train" | "heldout" | "classic"
    height: int
    width: int
    render_height: int
    render_width: int
    fps: float
    vfr: bool  # some frames are held (shown for 2-3 ticks): the clip carries timestamps
    noise: float  # sensor noise sigma, 8-bit levels
    blur: float  # Gaussian blur sigma, render px
    crf: int | None  # H.264 round trip at this CRF, or None
    scenes: tuple[SceneLook, ...]  # one per part (empty for classic)
    seed: int

    def __post_init__(self) -> None:
        if self.family not in LOOK_SETS:
            raise ValueError(f"Look.family must be one of {LOOK_SETS}, got {self.family!r}")
        if min(self.height, self.width) < 32 or max(self.height, self.width) > 2560:
            raise ValueError(f"Look size must be 32..2560 px per side, got {self.height}x{self.width}")
        if not (self.render_height <= self.height and self.render_width <= self.width):
            raise ValueError("Look render size must not exceed the frame size")
        if not 1.0 <= self.fps <= 240.0:
            raise ValueError(f"Look.fps must be in [1, 240], got {self.fps}")
        if self.crf is not None and (self.height % 2 or self.width % 2):
            raise ValueError(f"H.264 (crf) needs even frame sizes, got {self.height}x{self.width}")

    @property
    def classic(self) -> bool:
        return self.family == "classic"

    def families(self) -> list[dict[str, str]]:
        """Per scene: {axis: family} (what the held-out split is defined on)."""
        return [s.families() for s in self.scenes]


def classic_look(height: int, width: int, fps: float) -> Look:
    """The plain look of kf-tiny v1's world: nothing but the scenes (their own solid backgrounds)."""
    return Look("classic", height, width, height, width, float(fps), False, 0.0, 0.0, None, (), 0)


def _pick(rng: np.random.Generator, odds: dict):
    keys = list(odds)
    p = np.asarray([odds[k] for k in keys], np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _colour(rng: np.random.Generator, value: tuple[float, float], sat: tuple[float, float]) -> np.ndarray:
    """A random rgb with HSV value and saturation in the given ranges."""
    h, s, v = rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*value)
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)


def _scene_look(rng: np.random.Generator, family: str) -> SceneLook:
    axes = {axis: _pick(rng, _WEIGHTS[axis]) for axis in FAMILIES}
    if family == "heldout":
        held = [axis for axis in HELDOUT if rng.random() < 0.6]
        if not held:
            held = [list(HELDOUT)[int(rng.integers(len(HELDOUT)))]]
        for axis in held:
            axes[axis] = HELDOUT[axis][int(rng.integers(len(HELDOUT[axis])))]
    dark = rng.random() < 0.5  # dark or light backgrounds, rarely mid-grey (objects need contrast)
    base = _colour(rng, (0.04, 0.32) if dark else (0.6, 0.95), (0.0, 0.6))
    other = np.clip(base + rng.uniform(0.08, 0.28) * (1 if dark else -1) * rng.uniform(0.6, 1.0, 3), 0, 1)
    camera = axes["camera"]
    zoom0 = 1.0 if camera == "static" and rng.random() < 0.4 else float(rng.uniform(0.7, 0.95))
    zoom = (zoom0, zoom0) if camera != "zoom" else tuple(float(z) for z in rng.permutation([1.0, rng.uniform(0.65, 0.8)]))
    pan = tuple(float(v) for v in rng.uniform(-1, 1, 4))
    if camera != "pan":
        pan = (pan[0], pan[1], pan[0], pan[1])
    lighting = axes["lighting"]
    n_distract = int(rng.choice(3, p=[0.35, 0.4, 0.25]))
    return SceneLook(
        background=axes["background"], bg_colours=(tuple(float(c) for c in base), tuple(float(c) for c in other)),
        bg_scale=float(np.exp(rng.uniform(np.log(0.04), np.log(0.6)))), bg_angle=float(rng.uniform(0, np.pi)),
        bg_drift=(float(rng.normal(0, 0.03)), float(rng.normal(0, 0.01))) if rng.random() < 0.5 else (0.0, 0.0),
        floor=axes["floor"], floor_thickness=float(rng.uniform(0.5, 2.0)), colours=axes["colours"],
        camera=camera, zoom=zoom, pan=pan, shake=float(rng.uniform(0.2, 0.8)) if camera == "shake" else 0.0,
        lighting=lighting, light_depth=0.0 if lighting == "steady" else float(rng.uniform(0.05, 0.3)),
        light_rate=float(rng.uniform(0.1, 0.5) if lighting == "drift" else rng.uniform(2.0, 12.0)),
        distractors=tuple(str(d) for d in rng.choice(DISTRACTORS, size=n_distract, replace=False)),
        soft=float(rng.uniform(1.0, 2.5)) if rng.random() < 0.4 else 1.0, seed=int(rng.integers(2 ** 31)))


def _frame_size(rng: np.random.Generator) -> tuple[int, int]:
    """-> (height, width), even, shorter side 64-1080, aspect 9:16 .. 21:9, at most 1920 long."""
    aspect = _pick(rng, _ASPECTS) if rng.random() < 0.85 else float(np.exp(rng.uniform(np.log(9 / 16), np.log(21 / 9))))
    tier = int(rng.choice(len(_SHORT_SIDE), p=[t[2] for t in _SHORT_SIDE]))
    short = rng.uniform(_SHORT_SIDE[tier][0], _SHORT_SIDE[tier][1])
    h, w = (short, short * aspect) if aspect >= 1 else (short / aspect, short)
    shrink = min(1.0, 1920 / max(h, w))
    return _even(h * shrink), _even(w * shrink)


def _even(v: float) -> int:
    return max(32, 2 * int(round(v / 2)))


def fit_budget(height: int, width: int, n_frames: int) -> tuple[int, int, int, int]:
    """Frame size + frame count -> (height, width, render height, render width) within the memory
    budgets: the uint8 frames <= MAX_FRAME_BYTES, the float canvas <= MAX_CANVAS_BYTES."""
    over = n_frames * height * width * 3 / MAX_FRAME_BYTES
    if over > 1:  # round down to even sides: the result stays within the budget
        height, width = (max(32, 2 * int(v / np.sqrt(over) / 2)) for v in (height, width))
    pixels = min(RENDER_PIXELS, MAX_CANVAS_BYTES // (12 * max(1, n_frames)))
    scale = min(1.0, np.sqrt(pixels / (height * width)))
    return height, width, max(48, int(round(height * scale))), max(48, int(round(width * scale)))


def sample_look(seed: int, family: str, n_frames_at, *, fps: float | None = None,
                size: tuple[int, int] | None = None) -> Look:
    """(seed, "train" | "heldout", fps -> frame count, optional fixed fps / (H, W)) -> Look.

    `n_frames_at(fps)` gives the clip's frame count at a rate (the duration is content, drawn
    from the seed's own stream), so the memory budgets can shrink a large draw."""
    if family not in ("train", "heldout"):
        raise ValueError(f"looks must be one of {LOOK_SETS} (or a Look), got {family!r}")
    rng = np.random.default_rng([int(seed), LOOK_STREAM])
    rate = _pick(rng, _RATES) if rng.random() < 0.65 else round(float(rng.uniform(8.0, 60.0)), 3)
    fps = float(rate if fps is None else fps)
    drawn = _frame_size(rng)  # drawn even when fixed, so the rest of the look does not depend on it
    height, width = drawn if size is None else size
    vfr = bool(rng.random() < 0.15 and fps >= 20.0)
    noise = float(rng.uniform(1.0, 8.0)) if rng.random() < 0.5 else 0.0
    blur = float(rng.uniform(0.4, 1.5)) if rng.random() < 0.3 else 0.0
    crf = int(_CRFS[int(rng.integers(len(_CRFS)))]) if rng.random() < 0.2 else None
    scenes = tuple(_scene_look(rng, family) for _ in range(3))
    n_frames = n_frames_at(fps)
    if size is None:
        height, width, rh, rw = fit_budget(height, width, n_frames)
    else:
        _, _, rh, rw = fit_budget(height, width, n_frames)
        if n_frames * height * width * 3 > MAX_FRAME_BYTES:
            raise ValueError(f"{n_frames} frames of {height}x{width} need "
                             f"{n_frames * height * width * 3 / 2 ** 20:.0f} MiB, over the "
                             f"{MAX_FRAME_BYTES >> 20} MiB a clip may take: give a smaller size or duration")
    if height % 2 or width % 2:
        crf = None  # H.264 4:2:0 needs even sizes; a fixed odd size is shown uncompressed
    return Look(family, int(height), int(width), min(rh, height), min(rw, width), fps, vfr, noise, blur, crf,
                scenes, int(rng.integers(2 ** 31)))
