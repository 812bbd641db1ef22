"""Scenes with moving or textural sources: footsteps, vehicle, rain, ambience.

Same contract as `scenes_impacts`: `scene_<kind>(rng, stage) -> Source`. Moving sources are
panned per sample from their on-screen x, so the stereo image follows the picture.
"""
from __future__ import annotations

import numpy as np

from kf_core.data import render, sounds
from kf_core.data.world import Source, Stage, pick_colour

__all__ = ["scene_footsteps", "scene_vehicle", "scene_rain", "scene_ambience"]

_SURFACES = {"gravel": 5000.0, "a wooden floor": 2500.0, "grass": 900.0}
_GROUND = {"gravel": (0.5, 0.48, 0.45), "a wooden floor": (0.55, 0.36, 0.2), "grass": (0.2, 0.5, 0.2)}


def _foot_track(times: np.ndarray, plants_t: np.ndarray, plants_x: np.ndarray,
                swing_from: np.ndarray, init_x: float, lift: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame [T] -> (foot x, foot height above ground) for one foot.

    The foot stands where it was last planted; during [swing_from[i], plants_t[i]) it swings
    from its previous spot to plant i along a half-sine, touching down exactly at plants_t[i].
    """
    if len(plants_t) == 0:
        return np.full(times.shape, init_x), np.zeros(times.shape)
    idx = np.searchsorted(plants_t, times, side="right") - 1  # last plant <= t
    here = np.where(idx >= 0, plants_x[np.maximum(idx, 0)], init_x)
    nxt = np.minimum(idx + 1, len(plants_t) - 1)
    swinging = (idx + 1 < len(plants_t)) & (times >= swing_from[nxt])
    u = np.clip((times - swing_from[nxt]) / np.maximum(1e-6, plants_t[nxt] - swing_from[nxt]), 0, 1)
    x = np.where(swinging, here + (plants_x[nxt] - here) * u, here)
    y = np.where(swinging, lift * np.sin(np.pi * u), 0.0)
    return x, y


def scene_footsteps(rng: np.random.Generator, stage: Stage) -> Source:
    """A stick figure walking along the ground; a footstep at every foot plant."""
    h, w = stage.height, stage.width
    _, colour = pick_colour(rng, stage.background)
    surface = list(_SURFACES)[int(rng.integers(len(_SURFACES)))]
    floor_y = h - max(2.0, 0.08 * h)
    leg, torso = 0.28 * h, 0.25 * h
    direction = 1.0 if rng.random() < 0.5 else -1.0
    x_a, x_b = (0.12 * w, 0.88 * w) if direction > 0 else (0.88 * w, 0.12 * w)
    period = rng.uniform(0.35, 0.6)
    t_a = stage.snap(rng.uniform(0.1, 0.3 * stage.duration))
    steps = []
    t = stage.snap(t_a + period)
    while t < stage.duration - 0.05:
        steps.append(t)
        t = stage.snap(t + period * rng.uniform(0.95, 1.05))
    walk_end = steps[-1] if steps else stage.duration
    speed = (x_b - x_a) / max(stage.duration - t_a, 1e-6)  # px/s, reaches x_b at the clip end

    def body_x(t):
        return x_a + speed * (np.clip(t, t_a, walk_end) - t_a)

    stride_ahead = 0.35 * abs(speed) * period * direction
    steps_arr = np.asarray(steps)
    plants_x = body_x(steps_arr) + stride_ahead
    swing_from = np.concatenate([[t_a], steps_arr[:-1]]) if steps else np.zeros(0)
    audio = np.zeros((2, stage.n_samples), np.float32)
    events = []
    for t, x in zip(steps, plants_x):
        strength = rng.uniform(0.6, 1.0)
        snd = sounds.footstep(rng, _SURFACES[surface], stage.sample_rate)
        stage.place_panned(audio, snd, t, x / w, strength)
        events.append(stage.event(t, "footsteps", x, floor_y, strength, 0.12))
    limb = max(1.5, 0.03 * h)

    def draw(canvas: np.ndarray) -> None:
        times = stage.times
        render.floor(canvas, floor_y, h, _GROUND[surface])
        bx = body_x(times)
        hip_y = floor_y - leg
        for foot in (0, 1):  # feet alternate: plants 0, 2, 4 ... and 1, 3, 5 ...
            sel = slice(foot, None, 2)
            fx, lift = _foot_track(times, steps_arr[sel], plants_x[sel], swing_from[sel],
                                   x_a + (0.05 * w if foot else -0.05 * w) * direction, 0.12 * h)
            render.draw_line(canvas, bx, hip_y, fx, floor_y - limb / 2 - lift, limb, colour)
        render.draw_line(canvas, bx, hip_y, bx, hip_y - torso, limb, colour)
        render.fill_disc(canvas, bx, hip_y - torso - 0.07 * h, 0.07 * h, colour)

    way = "from left to right" if direction > 0 else "from right to left"
    return Source("footsteps", f"a person walking {way} on {surface}", events, audio, draw,
                  {"floor_y": floor_y, "limb": limb})


def scene_vehicle(rng: np.random.Generator, stage: Stage) -> Source:
    """A vehicle crossing the frame: engine harmonics with Doppler, level 1/distance, panned by x."""
    h, w = stage.height, stage.width
    cname, colour = pick_colour(rng, stage.background)
    kind, f_fire = [("car", (35, 60)), ("truck", (20, 35)), ("motorbike", (70, 120))][int(rng.integers(3))]
    length = {"car": 0.3, "truck": 0.45, "motorbike": 0.16}[kind] * w
    body_h = {"car": 0.14, "truck": 0.24, "motorbike": 0.1}[kind] * h
    road_y = h - max(2.0, 0.1 * h)
    direction = 1.0 if rng.random() < 0.5 else -1.0
    cross = rng.uniform(1.5, 4.0)  # s for the centre to travel one frame width
    t_in = stage.snap(rng.uniform(0.0, max(0.0, stage.duration - 0.8 * cross)))
    speed = direction * w / cross

    def centre(t):  # the front enters the frame at t_in
        start = -length / 2 if direction > 0 else w + length / 2
        return start + speed * (t - t_in)

    ts = np.arange(stage.n_samples) / stage.sample_rate
    cx = centre(ts)
    mono = sounds.engine(rng, rng.uniform(*f_fire), cx / w - 0.5, 0.35, 40.0, stage.sample_rate)
    audio = stage.pan(mono, cx / w, ts)
    span = (w + length) / abs(speed)
    events = [stage.event(t_in, "vehicle", 0.0 if direction > 0 else float(w), road_y, 1.0, span, onset=False)]
    wheel = max(1.5, 0.05 * h)

    def draw(canvas: np.ndarray) -> None:
        c = centre(stage.times)
        render.floor(canvas, road_y, h, (0.25, 0.25, 0.27))
        y0 = road_y - wheel - body_h
        render.fill_rect(canvas, c - length / 2, y0, c + length / 2, road_y - wheel, colour)
        front = c + direction * length * 0.3
        render.fill_rect(canvas, np.minimum(c, front), y0 + 0.15 * body_h, np.maximum(c, front),
                         y0 + 0.5 * body_h, (0.75, 0.88, 0.95))
        for off in (-0.32, 0.32):
            render.fill_disc(canvas, c + off * length, road_y - wheel, wheel, (0.05, 0.05, 0.05))

    way = "from left to right" if direction > 0 else "from right to left"
    return Source("vehicle", f"a {cname} {kind} driving past {way}", events, audio, draw, {})


def scene_rain(rng: np.random.Generator, stage: Stage) -> Source:
    """Falling drops; a click per drop reaching the ground and a hiss following the rain density."""
    h, w = stage.height, stage.width
    heavy = rng.random() < 0.5
    rate = rng.uniform(60, 150) if heavy else rng.uniform(15, 40)  # drops per second
    t0 = stage.snap(rng.uniform(0.0, 0.3 * stage.duration))
    t1 = stage.duration if rng.random() < 0.6 else stage.snap(rng.uniform(0.7, 1.0) * stage.duration)
    ground = h - max(2.0, 0.06 * h)
    n = rng.poisson(rate * (t1 - t0))
    hit_t = np.sort(rng.uniform(t0, t1, n))
    ramp = np.clip((hit_t - t0) / 0.5, 0.0, 1.0)  # density eases in over 0.5 s (thinning)
    hit_t = hit_t[rng.random(n) < ramp]
    hit_x = rng.uniform(0, w, hit_t.size)
    fall_speed = rng.uniform(1.5, 2.5) * h  # px/s
    audio = np.zeros((2, stage.n_samples), np.float32)
    for t, x in zip(hit_t, hit_x):
        drop = sounds.click(rng, stage.sample_rate, rng.uniform(0.002, 0.006), 0.6)
        stage.place_panned(audio, drop, t, x / w, rng.uniform(0.15, 0.6))
    # Hiss whose level follows the number of drops per 50 ms.
    counts = np.histogram(hit_t, bins=np.arange(0, stage.duration + 0.05, 0.05))[0]
    density = np.interp(np.arange(stage.n_samples) / stage.sample_rate,
                        np.arange(counts.size) * 0.05 + 0.025, counts / max(1.0, rate * 0.05))
    for ch in range(2):
        audio[ch] += 0.08 * density.astype(np.float32) * sounds.coloured_noise(rng, stage.n_samples, 0.5)
    events = [stage.event(t0, "rain", None, None, rate / 150.0, t1 - t0, onset=False)]
    streak = max(2, int(0.05 * h))
    colour = (0.7, 0.78, 0.9)

    def draw(canvas: np.ndarray) -> None:
        render.floor(canvas, ground, h, (0.3, 0.32, 0.35))
        fall = ground / fall_speed
        k0 = np.ceil((hit_t - fall) * stage.fps).astype(np.int64)
        k1 = np.floor(hit_t * stage.fps).astype(np.int64)
        counts_k = np.maximum(0, k1 - k0 + 1)
        drop = np.repeat(np.arange(hit_t.size), counts_k)
        frame = np.repeat(k0, counts_k) + (np.arange(drop.size) - np.repeat(np.cumsum(counts_k) - counts_k, counts_k))
        ok = (frame >= 0) & (frame < stage.n_frames)
        drop, frame = drop[ok], frame[ok]
        y = ground - fall_speed * (hit_t[drop] - frame / stage.fps)
        render.fill_points(canvas, frame, hit_x[drop], y, streak, colour, 0.85)

    return Source("rain", "heavy rain pouring down" if heavy else "light rain falling", events, audio, draw,
                  {"drops": hit_t.size})


def scene_ambience(rng: np.random.Generator, stage: Stage) -> Source:
    """An empty scene with slowly drifting clouds and soft coloured noise (or near silence)."""
    h, w = stage.height, stage.width
    silent = rng.random() < 0.3
    level = 10 ** (rng.uniform(-75, -65) / 20) if silent else 10 ** (rng.uniform(-34, -22) / 20)
    exponent = rng.uniform(1.0, 2.0)
    audio = np.stack([sounds.coloured_noise(rng, stage.n_samples, exponent) for _ in range(2)]) * level
    clouds = [(rng.uniform(0, w), rng.uniform(0.1, 0.5) * h, rng.uniform(0.08, 0.18) * min(h, w),
               rng.uniform(-0.05, 0.05) * w) for _ in range(int(rng.integers(1, 4)))]

    def draw(canvas: np.ndarray) -> None:
        times = stage.times
        render.floor(canvas, 0.75 * h, h, (0.3, 0.4, 0.3))
        for x, y, r, v in clouds:
            render.fill_disc(canvas, (x + v * times) % (w + 2 * r) - r, y, r, (0.85, 0.87, 0.9), alpha=0.6)

    phrase = "silence in an empty scene" if silent else "a quiet empty scene with soft wind noise"
    return Source("ambience", phrase, [], audio.astype(np.float32), draw, {})
