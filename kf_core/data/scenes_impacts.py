"""Scenes whose sounds are sharp, visible contacts: ball, strike (drum/block), bell, light, bird.

Each `scene_<kind>(rng, stage) -> Source` picks its look and timing from `rng`, snaps event
times to the frame grid and builds the painter from the same timeline as the audio, so the
picture and the sound cannot drift apart.
"""
from __future__ import annotations

import numpy as np

from kf_core.data import render, sounds
from kf_core.data.world import Source, Stage, count_words, pick_colour

__all__ = ["scene_ball", "scene_strike", "scene_bell", "scene_light", "scene_bird", "v_strikes"]

_FLOORS = {"wooden": (0.55, 0.36, 0.2), "metal": (0.62, 0.64, 0.68), "stone": (0.45, 0.43, 0.4)}
_BALL_SIZES = {"small": (0.06, 1400.0, 2200.0), "medium": (0.09, 700.0, 1100.0), "large": (0.13, 300.0, 500.0)}


def _beats(rng: np.random.Generator, stage: Stage, min_gap: float, max_gap: float,
           start_max: float = 0.4) -> list[float]:
    """Strike times: a start, then gaps in [min_gap, max_gap] s, snapped, >= 3 frames apart."""
    times, t = [], stage.snap(rng.uniform(0.15, max(0.2, start_max * stage.duration)))
    while t < stage.duration - 0.05:
        if not times or t - times[-1] >= 3 / stage.fps - 1e-9:
            times.append(t)
        t = stage.snap(t + rng.uniform(min_gap, max_gap))
    return times


def v_strikes(times: np.ndarray, strikes: list[float], tau: float) -> np.ndarray:
    """Frame times [T] -> distance factor [T] in [0,1]: 0 exactly at a strike, 1 when tau away."""
    if not strikes:
        return np.ones_like(times)
    gap = np.abs(times[:, None] - np.asarray(strikes)[None, :]).min(axis=1)
    return np.minimum(1.0, gap / tau)


def scene_ball(rng: np.random.Generator, stage: Stage) -> Source:
    """A disc dropped onto a floor line; one impact sound per floor contact, pitch from size."""
    h, w = stage.height, stage.width
    size = ["small", "medium", "large"][int(rng.integers(3))]
    frac, f_lo, f_hi = _BALL_SIZES[size]
    radius = max(2.5, frac * min(h, w))
    material = list(_FLOORS)[int(rng.integers(len(_FLOORS)))]
    cname, colour = pick_colour(rng, stage.background)
    floor_y = h - max(2.0, 0.1 * h)
    f0 = rng.uniform(f_lo, f_hi)
    # Physics from the impact schedule: fall time d0 fixes gravity; rebounds shrink by e.
    t_start = stage.snap(rng.uniform(0.0, 0.3 * stage.duration))
    d0, e = rng.uniform(0.35, 0.7), rng.uniform(0.55, 0.85)
    g = 2 * floor_y / d0 ** 2
    min_gap = max(0.1, 2 / stage.fps)
    impacts, gap = [stage.snap(t_start + d0)], 2 * d0 * e
    while gap >= min_gap and impacts[-1] + gap < stage.duration:
        impacts.append(max(stage.snap(impacts[-1] + gap), impacts[-1] + 2 / stage.fps))
        gap *= e
    impacts = [t for t in impacts if t < stage.duration]
    x0, x1 = rng.uniform(radius + 1, w - radius - 1, 2)
    t_end = impacts[-1] if impacts else stage.duration

    def ball_x(t):
        return x0 + (x1 - x0) * np.clip((t - t_start) / max(1e-6, t_end - t_start), 0.0, 1.0)

    def ball_y(t):
        rest = floor_y - radius
        y = np.full_like(t, rest)
        y[t < t_start] = -4 * radius  # not dropped yet: above the frame
        if impacts:
            fall = (t >= t_start) & (t < impacts[0])
            y[fall] = -radius + floor_y * ((t[fall] - t_start) / (impacts[0] - t_start)) ** 2
        for a, b in zip(impacts[:-1], impacts[1:]):
            arc = (t >= a) & (t < b)
            apex = min(rest + radius, g * (b - a) ** 2 / 8)
            y[arc] = rest - 4 * apex * (t[arc] - a) * (b - t[arc]) / (b - a) ** 2
        return y

    audio = np.zeros((2, stage.n_samples), np.float32)
    events = []
    for i, t in enumerate(impacts):
        before = (impacts[0] - t_start) if i == 0 else (t - impacts[i - 1]) / 2
        strength = float(min(1.0, before / max(1e-6, impacts[0] - t_start)))
        x = float(ball_x(np.array([t]))[0])
        stage.place_panned(audio, sounds.impact(rng, f0, material, stage.sample_rate), t, x / w, strength)
        events.append(stage.event(t, "ball", x, floor_y, strength, 0.2))

    def draw(canvas: np.ndarray) -> None:
        times = stage.times
        render.floor(canvas, floor_y, floor_y + max(2.0, 0.05 * h), _FLOORS[material])
        render.fill_disc(canvas, ball_x(times), ball_y(times), radius, colour)

    verb = f"falling and bouncing {count_words(len(events))}" if events else "about to fall"
    return Source("ball", f"a {size} {cname} ball {verb} on a {material} floor", events, audio, draw,
                  {"floor_y": floor_y, "radius": radius, "colour": colour})


def scene_strike(rng: np.random.Generator, stage: Stage) -> Source:
    """A drum or wooden block hit by a stick: the stick tip touches the top at every strike."""
    h, w = stage.height, stage.width
    is_drum = rng.random() < 0.6
    cname, colour = pick_colour(rng, stage.background)
    floor_y = h - max(2.0, 0.08 * h)
    half = (0.16 if is_drum else 0.1) * w
    cx = stage.across(rng.uniform(0.3, 0.7), half + 1, half + 1)
    top_y = floor_y - (0.35 if is_drum else 0.16) * h
    stick_w = max(1.5, 0.025 * h)
    strikes = _beats(rng, stage, 0.25, 0.8)
    tau = min(0.12, 0.45 * min(np.diff(strikes), default=1.0))
    f0 = rng.uniform(80, 220) if is_drum else rng.uniform(600, 1200)
    audio = np.zeros((2, stage.n_samples), np.float32)
    tip_x = cx + rng.uniform(-0.4, 0.4) * half
    events = []
    for t in strikes:
        strength = rng.uniform(0.6, 1.0)
        hit = sounds.membrane(rng, f0, stage.sample_rate) if is_drum else sounds.wood_block(rng, f0, stage.sample_rate)
        stage.place_panned(audio, hit, t, tip_x / w, strength)
        events.append(stage.event(t, "strike", tip_x, top_y, strength, 0.3))
    hand = (min(w - 2.0, tip_x + 0.3 * w), max(2.0, top_y - 0.45 * h))

    def draw(canvas: np.ndarray) -> None:
        render.floor(canvas, floor_y, h, (0.4, 0.3, 0.22))
        body = colour if is_drum else (0.6, 0.42, 0.22)
        render.fill_rect(canvas, cx - half, top_y, cx + half, floor_y, body)
        if is_drum:  # a pale drum head on top
            render.fill_rect(canvas, cx - half, top_y, cx + half, top_y + max(1.5, 0.03 * h), (0.92, 0.9, 0.85))
        lift = 0.3 * h * v_strikes(stage.times, strikes, tau)
        tip_y = top_y - stick_w / 2 - lift
        render.draw_line(canvas, hand[0], hand[1] - lift * 0.3, tip_x, tip_y, stick_w, (0.85, 0.75, 0.55))

    what = f"a {cname} drum struck" if is_drum else "a wooden block tapped"
    return Source("strike", f"{what} {count_words(len(events))} with a stick", events, audio, draw,
                  {"top_y": top_y, "tip_x": tip_x, "stick_w": stick_w})


def scene_bell(rng: np.random.Generator, stage: Stage) -> Source:
    """A hanging bell hit by a hammer; long-ringing partials; the bell sways after each strike."""
    h, w = stage.height, stage.width
    big = rng.random() < 0.5
    radius = (0.16 if big else 0.1) * min(h, w)
    cx, by = stage.across(rng.uniform(0.3, 0.6), 1.3 * radius, 3.5 * radius), 0.2 * h + radius
    metal, colour = ("brass", (0.85, 0.66, 0.2)) if rng.random() < 0.6 else ("silver", (0.78, 0.8, 0.84))
    strikes = _beats(rng, stage, 0.9, 2.2, start_max=0.3)
    f_nom = rng.uniform(300, 600) if big else rng.uniform(700, 1500)
    hammer_r = max(1.5, 0.3 * radius)
    hit_y = by + 0.9 * radius
    hit_x = cx + 1.2 * radius + hammer_r  # hammer centre when it touches the bell's lip
    audio = np.zeros((2, stage.n_samples), np.float32)
    events = []
    for t in strikes:
        strength = rng.uniform(0.6, 1.0)
        stage.place_panned(audio, sounds.bell(rng, f_nom, stage.sample_rate), t, cx / w, strength)
        events.append(stage.event(t, "bell", hit_x - hammer_r, hit_y, strength, 1.5))

    def sway(times):
        out = np.zeros_like(times)
        for t in strikes:
            after = np.clip(times - t, 0.0, None)
            out -= (times > t) * 0.12 * radius * np.exp(-after / 0.6) * np.sin(2 * np.pi * 2.5 * after)
        return out

    def draw(canvas: np.ndarray) -> None:
        times = stage.times
        dx = sway(times)
        render.draw_line(canvas, cx, 0, cx + dx, by - radius, max(1.0, 0.02 * h), (0.5, 0.5, 0.5))
        render.fill_disc(canvas, cx + dx, by, radius, colour)
        render.fill_rect(canvas, cx + dx - radius, by, cx + dx + radius, by + 0.8 * radius, colour)
        render.fill_rect(canvas, cx + dx - 1.2 * radius, by + 0.8 * radius, cx + dx + 1.2 * radius, by + radius, colour)
        away = hit_x + 0.6 * radius * v_strikes(times, strikes, 0.15)
        render.draw_line(canvas, away, hit_y, away + 1.5 * radius, hit_y - radius, max(1.0, 0.02 * h), (0.55, 0.4, 0.25))
        render.fill_disc(canvas, away, hit_y, hammer_r, (0.3, 0.3, 0.32))

    size = "large" if big else "small"
    return Source("bell", f"a {size} {metal} bell struck {count_words(len(events))}", events, audio, draw,
                  {"hit_x": hit_x, "hammer_r": hammer_r, "lip_x": cx + 1.2 * radius})


def scene_light(rng: np.random.Generator, stage: Stage) -> Source:
    """A lamp that flashes; a beep sounds for exactly each ON phase."""
    h, w = stage.height, stage.width
    cname, colour = pick_colour(rng, stage.background)
    off = tuple(0.2 * c + 0.05 for c in colour)
    radius = max(3.0, 0.12 * min(h, w))
    cx, cy = stage.across(rng.uniform(0.2, 0.8), 1.9 * radius, 1.9 * radius), rng.uniform(0.3, 0.5) * h
    period, duty = rng.uniform(0.3, 1.2), rng.uniform(0.3, 0.6)
    freq = rng.uniform(400, 2500)
    starts, lengths = [], []
    t = stage.snap(rng.uniform(0.1, 0.5 * stage.duration))
    while t < stage.duration - 2 / stage.fps:
        on = max(2 / stage.fps, stage.snap(duty * period))
        if rng.random() < 0.85:
            starts.append(t)
            lengths.append(min(on, stage.duration - t))
        t = stage.snap(t + max(period, on + 2 / stage.fps))
    audio = np.zeros((2, stage.n_samples), np.float32)
    events = []
    for t0, length in zip(starts, lengths):
        stage.place_panned(audio, sounds.beep(freq, length, stage.sample_rate), t0, cx / w, 0.8)
        events.append(stage.event(t0, "light", cx, cy, 0.8, length))
    eps = 1e-6  # frame k is ON iff start <= k/fps < start + length

    def draw(canvas: np.ndarray) -> None:
        times = stage.times
        lit = np.zeros(times.shape, bool)
        for t0, length in zip(starts, lengths):
            lit |= (times >= t0 - eps) & (times < t0 + length - eps)
        render.draw_line(canvas, cx, cy, cx, h, max(1.0, 0.03 * w), (0.4, 0.4, 0.42))
        render.fill_disc(canvas, cx, cy, radius, off)
        if lit.any():  # a glow and the bright lamp on the lit frames only (alpha 0 elsewhere)
            on = lit.astype(np.float32)
            render.fill_disc(canvas, cx, cy, 1.8 * radius, colour, alpha=0.3 * on)
            render.fill_disc(canvas, cx, cy, radius, tuple(min(1.0, 0.3 + c) for c in colour), alpha=on)

    return Source("light", f"a {cname} light flashing {count_words(len(events))} with beeps", events,
                  audio, draw, {"cx": cx, "cy": cy, "radius": radius})


def scene_bird(rng: np.random.Generator, stage: Stage) -> Source:
    """A bird on a branch; its beak is open and its head raised exactly while it chirps."""
    h, w = stage.height, stage.width
    cname, colour = pick_colour(rng, stage.background)
    body_r = max(3.0, 0.09 * min(h, w))
    cx, cy = stage.across(rng.uniform(0.25, 0.75), 2.2 * body_r, 2.2 * body_r), rng.uniform(0.45, 0.65) * h
    face = 1.0 if rng.random() < 0.5 else -1.0
    f_a = rng.uniform(2000, 4500)
    f_b = f_a * rng.uniform(0.5, 1.6)
    chirps: list[tuple[float, float]] = []
    t = stage.snap(rng.uniform(0.1, 0.4 * stage.duration))
    while t < stage.duration - 0.1:
        for _ in range(int(rng.integers(1, 5))):
            length = rng.uniform(0.06, 0.2)
            if t >= stage.duration - 0.05:
                break
            chirps.append((t, length))
            t = stage.snap(t + length + rng.uniform(0.12, 0.3))
            t = max(t, chirps[-1][0] + 3 / stage.fps)
        t = stage.snap(t + rng.uniform(0.6, 2.0))
    head = (cx + face * 0.8 * body_r, cy - 0.8 * body_r)
    audio = np.zeros((2, stage.n_samples), np.float32)
    events = []
    for t0, length in chirps:
        strength = rng.uniform(0.6, 1.0)
        snd = sounds.chirp(rng, f_a, f_b, length, stage.sample_rate)
        stage.place_panned(audio, snd, t0, head[0] / w, strength)
        events.append(stage.event(t0, "bird", head[0], head[1], strength, length))

    def draw(canvas: np.ndarray) -> None:
        times = stage.times
        singing = np.zeros(times.shape)
        for t0, length in chirps:  # open for at least the onset frame
            singing = np.maximum(singing, (times >= t0 - 1e-6) & (times < t0 + max(length, 0.5 / stage.fps)))
        hy = head[1] - 0.25 * body_r * singing
        render.draw_line(canvas, 0, cy + body_r, w, cy + body_r + 0.05 * h, max(1.5, 0.03 * h), (0.4, 0.27, 0.15))
        render.draw_line(canvas, cx, cy, cx - face * 1.6 * body_r, cy + 0.3 * body_r, max(1.0, 0.4 * body_r), colour)
        render.fill_disc(canvas, cx, cy, body_r, colour)
        render.fill_disc(canvas, head[0], hy, 0.6 * body_r, colour)
        tip_x = head[0] + face * 1.2 * body_r
        beak = (1.0, 0.65, 0.1)
        gape = 0.35 * body_r * singing
        render.draw_line(canvas, head[0] + face * 0.5 * body_r, hy, tip_x, hy - gape, max(1.0, 0.2 * body_r), beak)
        render.draw_line(canvas, head[0] + face * 0.5 * body_r, hy, tip_x, hy + gape, max(1.0, 0.2 * body_r), beak)

    return Source("bird", f"a {cname} bird chirping {count_words(len(events))}", events, audio, draw,
                  {"head": head})
