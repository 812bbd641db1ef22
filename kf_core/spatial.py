"""Stereo that follows the video, for any mono (or centred) audio, with no trained weights.

`stereo_from_video(waveform, sample_rate, video) -> [B, 2, T]`: find where on screen the
sound-making motion is, over time, and pan the sound there with level and time differences.

Where is the sound? (`track_source`)
  Frames are sampled at a low resolution (64 px, squashed, so a normalised x is kept) and at the
  video's own rate (capped at 30 fps by whole-number decimation, so no frame is shown twice:
  a held frame would fake a stop-start in the motion). Two per-pixel signals, each minus its
  per-frame median (camera noise, flicker) and summed over a grid of cells:
  - motion  |F[t] − F[t−1]|: something moves here now;
  - change  |F[t+1] − 2F[t] + F[t−1]|: its motion changes now (a ball reverses, a stick stops,
    a lamp switches on) — the visual counterpart of an audible onset.
  A cell's *relevance* is the local (Gaussian window, σ 1.5 s) normalised correlation of its
  change signal with the audio's onset envelope (`sync_metrics.onset_envelope`, pooled to the
  frame clock, widened by ±1 frame, both high-passed): the thing whose impacts match the sound
  scores high, a silent drifter (steady motion, no change at the sound's onsets) scores ~0 and so
  pulls little. Per frame the position is the centroid of motion + change weighted by
  (relevance² + a small floor): with no onsets in the audio (an engine, rain) every cell gets the
  floor and the plain motion centroid remains. Frames where most of the picture changes (a cut,
  a global flash) say nothing about where, and get no weight.
  Smoothing is a normalised convolution (σ 80 ms) in which frames at audio onsets count up to
  `onset_gain` times more, so the position around an impact is the position *at* the impact; where
  nothing moves for long, a wide (1 s) estimate and then the centre take over.

How is it panned? (`pan`)
  s = width·(2x − 1) ∈ [−1, 1]; left gain 1 − s, right gain 1 + s, so with no delay
  (L + R)/2 = mono **exactly** (up to float rounding): the mono mix is the input and a centred
  source stays the input in both ears — the waveform twin of Mono2Stereo's energy-preserving
  L = 2p·M, R = 2(1 − p)·M. The power sum L² + R² = 2(1 + s²)·mono² is the centred input's times
  1 + s² (up to +3 dB at the frame's edge; a constant-power law would keep it but lose the exact
  mono mix). The far ear is delayed by |s|·max_itd (≤ 0.6 ms, the human interaural maximum) with a
  windowed-sinc fractional delay (flat to ~0.9 Nyquist); delay and gains vary smoothly, sample by
  sample, so nothing clicks. With the delay, (L + R)/2 = ((1 ∓ s)·mono(t − d) + (1 ± s)·mono(t))/2:
  the input plus a copy at most 0.6 ms late, which differs from the input only above ~1 kHz.
  Only if the result would exceed full scale is the whole clip scaled down (once, logged).
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from .eval.sync_metrics import onset_envelope
from .io import frames_from_images, probe, sample_frames

__all__ = ["StereoConfig", "SourceTrack", "analysis_fps", "motion_cells", "onset_train", "track_source", "pan",
           "video_frames", "stereo_from_video"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StereoConfig:
    """Settings of the tracker and the pan law (module docstring: what each one does)."""

    width: float = 1.0  # pan spread: 1 = the frame's edges are hard left / right
    max_itd_ms: float = 0.6  # interaural delay of a hard-panned source
    size: int = 64  # analysis frames (square, squashed)
    max_fps: float = 30.0
    grid: tuple[int, int] = (8, 16)  # cells (rows, columns)
    relevance_s: float = 1.5  # σ of the local correlation window
    highpass_s: float = 0.3  # σ of the trend removed before correlating
    floor: float = 0.02  # relevance every cell keeps (the plain motion centroid without onsets)
    power: float = 2.0  # relevance weight = max(r, 0)**power + floor
    smooth_s: float = 0.08  # σ of the position smoothing
    hold_s: float = 1.0  # σ of the fallback where nothing moves
    onset_gain: float = 20.0  # how much more an onset frame counts in the smoothing
    cut_fraction: float = 0.5  # frames where more of the picture changes are cuts

    def __post_init__(self) -> None:
        if not 0.0 <= self.width <= 1.0:
            raise ValueError(f"width must be in [0, 1] (1 = edges hard left/right), got {self.width}")
        if not 0.0 <= self.max_itd_ms <= 1.0:
            raise ValueError(f"max_itd_ms must be in [0, 1] ms (people hear at most ~0.7 ms), got {self.max_itd_ms}")
        rows, cols = self.grid
        if self.size < 16 or self.size % rows or self.size % cols:
            raise ValueError(f"size {self.size} must be >= 16 and divisible by the grid {self.grid}")
        if min(self.relevance_s, self.highpass_s, self.smooth_s, self.hold_s, self.max_fps) <= 0:
            raise ValueError(f"StereoConfig needs positive times and max_fps, got {self}")
        if self.floor <= 0 or self.onset_gain < 0 or not 0 < self.cut_fraction <= 1:
            raise ValueError(f"StereoConfig needs floor > 0, onset_gain >= 0, cut_fraction in (0, 1], got {self}")


@dataclass(frozen=True)
class SourceTrack:
    """Where the sound is: x [T] in [0, 1] (0 left edge) at `times` [T] s, with the per-frame
    evidence `confidence` [T] (0 where nothing relevant moved)."""

    x: np.ndarray
    times: np.ndarray
    confidence: np.ndarray


def analysis_fps(fps: float, max_fps: float = 30.0) -> float:
    """Video fps -> the analysis rate: itself up to max_fps, else fps / ceil(fps / max_fps)
    (60 -> 30, 50 -> 25), so every analysed frame is a different source frame."""
    if not fps > 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    return fps if fps <= max_fps else fps / math.ceil(fps / max_fps - 1e-9)


def video_frames(video, fps: float | None = None, cfg: StereoConfig = StereoConfig()) -> tuple[torch.Tensor, float]:
    """A file path, an IMAGE batch [N,H,W,3] (+ fps) or a pipeline VideoClip -> (uint8 frames
    [T,3,S,S], their rate), sampled by presentation time (`kf_core.io`)."""
    path, images = getattr(video, "path", None), getattr(video, "images", None)
    if path is None and images is None:
        path, images = (None, video) if isinstance(video, torch.Tensor) else (video, None)
    fps = getattr(video, "fps", fps)
    if images is not None:
        if fps is None:
            raise ValueError("IMAGE frames need their frame rate (fps); it is never assumed")
        rate = analysis_fps(float(fps), cfg.max_fps)
        stamps = getattr(video, "timestamps", None)
        frames = frames_from_images(images, None if stamps else fps, rate, size=cfg.size, timestamps=stamps)
    else:
        rate = analysis_fps(probe(path).fps, cfg.max_fps)
        frames = sample_frames(path, rate, size=cfg.size)
    return frames, rate


def motion_cells(frames: torch.Tensor, cfg: StereoConfig = StereoConfig()) -> dict[str, np.ndarray]:
    """uint8 frames [T,3,S,S] -> per cell [T, R·C]: motion `m`, change `a`, their x-moments
    `mx`/`ax` (Σ energy·x), and the cell centres `x` [R·C]. Cut frames are zeroed."""
    f = frames.float().div(255.0)                                             # T 3 S S
    t = f.shape[0]
    motion = torch.zeros(t, cfg.size, cfg.size)
    change = torch.zeros(t, cfg.size, cfg.size)
    if t >= 2:
        motion[1:] = (f[1:] - f[:-1]).abs().mean(1)                           # T-1 S S
    if t >= 3:
        change[1:-1] = (f[2:] - 2 * f[1:-1] + f[:-2]).abs().mean(1)            # T-2 S S
    cut = (motion > 0.15).flatten(1).float().mean(1) > cfg.cut_fraction       # T
    motion[cut] = 0.0
    for shift in (-1, 0, 1):  # the change signal around a cut compares unrelated pictures
        change[torch.roll(cut, shift)] = 0.0
    rows, cols = cfg.grid
    xs = (torch.arange(cfg.size) + 0.5) / cfg.size                            # S
    out = {}
    for name, energy in (("m", motion), ("a", change)):
        energy = (energy - energy.flatten(1).median(1).values[:, None, None]).clamp_(min=0)  # T S S
        cells = energy.reshape(t, rows, cfg.size // rows, cols, cfg.size // cols)
        out[name] = cells.sum((2, 4)).reshape(t, -1).double().numpy()           # T R*C
        out[name + "x"] = (cells * xs.reshape(1, 1, 1, cols, -1)).sum((2, 4)).reshape(t, -1).double().numpy()
    out["x"] = np.tile((np.arange(cols) + 0.5) / cols, rows)
    return out


def onset_train(mono: np.ndarray, sample_rate: int, n_frames: int, fps: float) -> np.ndarray:
    """Mono [N] -> the audio onset envelope pooled (max) into frame bins t/fps ± 0.5/fps [T]."""
    env, rate = onset_envelope(mono, sample_rate)
    frame = np.clip(np.round(((np.arange(env.size) - 0.5) / rate) * fps).astype(int), 0, None)
    train = np.zeros(n_frames)
    keep = frame < n_frames
    np.maximum.at(train, frame[keep], env[keep])
    return train


def _highpass(x: np.ndarray, sigma: float) -> np.ndarray:
    return x - gaussian_filter1d(x, sigma, axis=0, mode="nearest")


def _normalised_smooth(values: np.ndarray, weights: np.ndarray, sigma: float, prior: np.ndarray | float,
                       prior_weight: float) -> np.ndarray:
    num = gaussian_filter1d(values * weights, sigma, mode="nearest")
    den = gaussian_filter1d(weights, sigma, mode="nearest")
    return (num + prior_weight * prior) / (den + prior_weight)


def track_source(cells: dict[str, np.ndarray], fps: float, mono: np.ndarray, sample_rate: int,
                 cfg: StereoConfig = StereoConfig()) -> SourceTrack:
    """`motion_cells` output at `fps` + the mono audio [N] -> SourceTrack (module docstring)."""
    m, a = cells["m"], cells["a"]
    n = m.shape[0]
    onsets = onset_train(mono, sample_rate, n, fps)                           # T
    wide = maximum_filter1d(onsets, 3, mode="nearest")                         # ±1 frame tolerance
    hp = cfg.highpass_s * fps
    o, ah = _highpass(wide, hp), _highpass(a, hp)                              # T, T RC
    win = cfg.relevance_s * fps
    num = gaussian_filter1d(o[:, None] * ah, win, axis=0, mode="nearest")
    den = np.sqrt(gaussian_filter1d(o[:, None] ** 2, win, axis=0, mode="nearest")
                  * gaussian_filter1d(ah ** 2, win, axis=0, mode="nearest"))
    relevance = np.where(den > 1e-12, num / np.maximum(den, 1e-12), 0.0)     # T RC, in [-1, 1]
    rho = np.clip(relevance, 0.0, None) ** cfg.power + cfg.floor
    energy = (rho * (m + a)).sum(1)                                            # T
    moment = (rho * (cells["mx"] + cells["ax"])).sum(1)                        # T
    x = np.where(energy > 0, moment / np.maximum(energy, 1e-12), 0.5)
    peak = wide.max()
    weight = energy * (1.0 + cfg.onset_gain * (wide / peak if peak > 0 else 0.0))
    scale = float(np.median(weight[weight > 0])) if np.any(weight > 0) else 1.0
    eps = 1e-3 * scale  # "nothing moved" relative to this clip's typical evidence
    held = _normalised_smooth(x, weight, cfg.hold_s * fps, 0.5, eps)
    track = _normalised_smooth(x, weight, cfg.smooth_s * fps, held, eps)
    return SourceTrack(np.clip(track, 0.0, 1.0), np.arange(n) / fps, weight)


@functools.cache
def _sinc_table(half: int = 16, phases: int = 256, beta: float = 8.0) -> np.ndarray:
    """Fractional-delay taps [phases + 1, 2·half] for offsets u = p / phases: Kaiser-windowed sinc,
    each row normalised to unit DC gain (flat to ~0.9 Nyquist, so the far ear keeps its treble)."""
    d = np.arange(-half + 1, half + 1)[None, :] - (np.arange(phases + 1) / phases)[:, None]
    taps = np.sinc(d) * np.i0(beta * np.sqrt(np.clip(1 - (d / half) ** 2, 0, None))) / np.i0(beta)
    return taps / taps.sum(1, keepdims=True)


def _fractional_read(signal: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """signal [N] read at fractional sample positions pos [N] (`_sinc_table`, 1/256-sample phases;
    before the start and after the end the edge sample is held)."""
    table = _sinc_table()
    phases, width = table.shape[0] - 1, table.shape[1]
    i = np.floor(pos).astype(np.int64)
    p = np.round((pos - i) * phases).astype(np.int64)
    out = np.zeros(pos.shape)
    for j in range(width):  # tap j reads sample i + j - (half - 1)
        out += table[p, j] * signal[np.clip(i + j - (width // 2 - 1), 0, signal.size - 1)]
    return out


def pan(mono: np.ndarray, sample_rate: int, track: SourceTrack, cfg: StereoConfig = StereoConfig()) -> np.ndarray:
    """Mono [N] + where the source is -> stereo float32 [2, N] (module docstring: the pan law)."""
    n = mono.shape[0]
    t = np.arange(n) / sample_rate
    s = cfg.width * (2.0 * np.interp(t, track.times, track.x) - 1.0)           # N, in [-1, 1]
    delay = cfg.max_itd_ms * 1e-3 * sample_rate * np.abs(s)                    # N samples, far ear
    idx = np.arange(n, dtype=np.float64)
    mono = mono.astype(np.float64)
    far = _fractional_read(mono, idx - delay) if delay.any() else mono
    left = (1.0 - s) * np.where(s > 0, far, mono)
    right = (1.0 + s) * np.where(s < 0, far, mono)
    return np.stack([left, right]).astype(np.float32)


def _as_mono(waveform: torch.Tensor) -> torch.Tensor:
    """[T], [C, T] or [B, C, T] -> [B, T] mono (mean of channels; a real stereo input is mixed down)."""
    w = waveform.detach().float().cpu()
    if w.ndim == 1:
        w = w[None, None]
    elif w.ndim == 2:
        w = w[None]
    if w.ndim != 3 or w.shape[-1] == 0 or w.shape[1] == 0:
        raise ValueError(f"expected audio [T], [C, T] or [B, C, T] with samples, got {tuple(waveform.shape)}")
    if w.shape[1] > 1:
        side = (w - w.mean(1, keepdim=True)).pow(2).mean()
        if side > 1e-4 * w.pow(2).mean():
            log.warning("the audio already has distinct channels; it is mixed to mono and panned again")
    return w.mean(1)


def stereo_from_video(waveform: torch.Tensor, sample_rate: int, video, *, fps: float | None = None,
                      cfg: StereoConfig = StereoConfig()) -> torch.Tensor:
    """Audio [T] / [C, T] / [B, C, T] + the video it belongs to (file, IMAGE [N,H,W,3] + fps, or a
    VideoClip) -> stereo float32 [B, 2, T] whose pan follows the sound-making motion."""
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    mono = _as_mono(waveform).numpy()                                         # B T
    frames, rate = video_frames(video, fps, cfg)
    cells = motion_cells(frames, cfg)
    out = np.stack([pan(take, sample_rate, track_source(cells, rate, take, sample_rate, cfg), cfg)
                    for take in mono])                                        # B 2 T
    peak = float(np.abs(out).max())
    if peak > 1.0:
        log.info("stereo_from_video: panned peak %.2f; scaled by %.3f to stay within full scale", peak, 1 / peak)
        out /= peak
    return torch.from_numpy(out)
