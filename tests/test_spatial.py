"""Stereo from video (kf_core.spatial): the pan follows the sound-making motion, the mono mix is
kept, and nothing clicks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kf_core.data.example_video import write_frames_mp4
from kf_core.spatial import SourceTrack, StereoConfig, analysis_fps, pan, stereo_from_video

SR = 16000
FPS = 25.0


def _disc_frames(xs, ys, size: int = 64, radius: int = 5, distractor=None) -> np.ndarray:
    """One white disc per frame at (xs[t], ys[t]) (fractions of the frame) on grey -> uint8 [T,H,W,3];
    `distractor` = (xs, ys) of a second, silent disc."""
    yy, xx = np.mgrid[0:size, 0:size]
    frames = np.full((len(xs), size, size, 3), 60, np.uint8)
    for t, (x, y) in enumerate(zip(xs, ys)):
        frames[t][(xx - x * size) ** 2 + (yy - y * size) ** 2 <= radius ** 2] = 250
        if distractor is not None:
            dx, dy = distractor[0][t], distractor[1][t]
            frames[t][(xx - dx * size) ** 2 + (yy - dy * size) ** 2 <= radius ** 2] = (40, 200, 90)
    return frames


def _bouncing(n: int, x_of_t, period: int = 10):
    """A disc bouncing on a floor every `period` frames while x follows x_of_t(frame) ->
    (frames, impact frame indices)."""
    t = np.arange(n)
    phase = (t % period) / period
    ys = 0.8 - 0.55 * 4 * phase * (1 - phase)  # floor at y = 0.8, contact at phase 0
    return _disc_frames(x_of_t(t), ys), t[phase == 0]


def _clicks(impacts, n_frames: int, seed: int = 0) -> np.ndarray:
    """A decaying noise burst at each impact frame -> mono [N] lasting n_frames / FPS."""
    rng = np.random.default_rng(seed)
    audio = 1e-4 * rng.standard_normal(int(round(n_frames / FPS * SR)))
    burst = rng.standard_normal(int(0.08 * SR)) * np.exp(-np.arange(int(0.08 * SR)) / (0.015 * SR))
    for k in impacts:
        a = int(round(k / FPS * SR))
        seg = audio[a:a + burst.size]
        seg += 0.3 * burst[:seg.size]
    return audio.astype(np.float32)


def _ild_db(stereo: np.ndarray, t0: float, t1: float) -> float:
    seg = stereo[:, int(t0 * SR):int(t1 * SR)].astype(np.float64)
    e = (seg ** 2).sum(1)
    return float(10 * np.log10(e[1] / e[0]))


def test_left_to_right_source_pans_left_to_right():
    frames, impacts = _bouncing(100, lambda t: 0.1 + 0.8 * t / 99)
    mono = _clicks(impacts, 100)
    out = stereo_from_video(torch.from_numpy(mono), SR, torch.from_numpy(frames), fps=FPS)
    assert out.shape == (1, 2, mono.size) and out.dtype == torch.float32
    ild = [_ild_db(out[0].numpy(), k / FPS, k / FPS + 0.08) for k in impacts]
    assert ild[0] < -6 and ild[-1] > 6, ild
    assert np.all(np.diff(ild) > 0), ild  # every impact further right than the one before


def test_static_centred_source_stays_centred():
    frames, impacts = _bouncing(75, lambda t: np.full(t.shape, 0.5))
    mono = _clicks(impacts, 75, seed=1)
    out = stereo_from_video(torch.from_numpy(mono), SR, torch.from_numpy(frames), fps=FPS)[0].numpy()
    assert abs(_ild_db(out, 0, mono.size / SR)) < 0.5  # the disc's pixel centre is x = 0.508: 0.27 dB
    assert np.corrcoef(out[0], out[1])[0, 1] > 0.95  # no side image: both ears hear the same


def test_silent_drifting_distractor_pulls_less_than_the_sounding_source():
    n = 100
    t = np.arange(n)
    phase = (t % 10) / 10
    ys = 0.8 - 0.55 * 4 * phase * (1 - phase)
    drift = (0.5 + 0.35 * np.sin(2 * np.pi * t / 60), np.full(n, 0.3))  # a silent disc wandering about
    frames = _disc_frames(np.full(n, 0.85), ys, distractor=drift)
    mono = _clicks(t[phase == 0], n, seed=2)
    out = stereo_from_video(torch.from_numpy(mono), SR, torch.from_numpy(frames), fps=FPS)[0].numpy()
    assert _ild_db(out, 1.0, n / FPS) > 8  # the bouncing disc sits at x = 0.85: clearly right


def _track(x: float, seconds: float = 1.0) -> SourceTrack:
    times = np.arange(0, seconds, 1 / FPS)
    return SourceTrack(np.full(times.size, x), times, np.ones(times.size))


def test_mono_mix_is_the_input_exactly_without_delay_and_near_it_with():
    rng = np.random.default_rng(0)
    mono = (0.3 * rng.standard_normal(SR)).astype(np.float32)
    moving = SourceTrack(np.linspace(0.0, 1.0, 25), np.arange(25) / FPS, np.ones(25))
    out = pan(mono, SR, moving, StereoConfig(max_itd_ms=0.0))
    np.testing.assert_allclose(out.mean(0), mono, atol=1e-6)
    # with the delay the mix is the input plus a copy at most 0.6 ms late: equal at low frequencies
    tone = np.sin(2 * np.pi * 100 * np.arange(SR) / SR).astype(np.float32)
    mixed = pan(tone, SR, moving).mean(0)
    assert np.abs(mixed - tone).max() < 2 * np.pi * 100 * 0.6e-3 + 1e-3


def test_far_ear_is_delayed_by_the_interaural_time_difference():
    rng = np.random.default_rng(1)
    mono = rng.standard_normal(SR).astype(np.float32)
    out = pan(mono, SR, _track(0.8))  # s = 0.6: left is the far ear, 0.6 · 0.6 ms = 5.76 samples late
    lags = np.arange(-20, 21)
    corr = [np.dot(out[0, 20:-20], np.roll(out[1], lag)[20:-20]) for lag in lags]
    assert lags[int(np.argmax(corr))] in (5, 6)
    assert _ild_db(out, 0, 1) == pytest.approx(20 * np.log10(1.6 / 0.4), abs=0.2)  # gains 1 ± s


def test_no_nan_and_no_clicks_when_the_source_jumps_or_at_the_ends():
    tone = 0.4 * np.sin(2 * np.pi * 440 * np.arange(2 * SR) / SR).astype(np.float32)
    times = np.arange(50) / FPS
    jump = SourceTrack(np.where(times < 1.0, 0.05, 0.95), times, np.ones(50))  # teleports in one frame
    out = pan(tone, SR, jump)
    assert np.isfinite(out).all()
    step_in = np.abs(np.diff(tone)).max()
    assert np.abs(np.diff(out, axis=1)).max() < 2.1 * step_in  # gains ≤ 2, changing smoothly
    assert np.abs(out[:, :1]).max() <= 2 * abs(tone[0]) + 1e-3  # starts where the input starts
    frames = _disc_frames(np.linspace(0.2, 0.8, 50), np.full(50, 0.5))
    silent = stereo_from_video(torch.zeros(1, 2, 2 * SR), SR, torch.from_numpy(frames), fps=FPS)
    assert torch.isfinite(silent).all() and silent.abs().max() == 0


def test_video_file_and_frames_give_the_same_pan(tmp_path):
    frames, impacts = _bouncing(50, lambda t: 0.15 + 0.7 * t / 49)
    mono = torch.from_numpy(_clicks(impacts, 50, seed=3))
    path = write_frames_mp4(tmp_path / "v.mp4", frames, FPS)
    a = stereo_from_video(mono, SR, torch.from_numpy(frames), fps=FPS)
    b = stereo_from_video(mono[None], SR, path)
    assert a.shape == b.shape == (1, 2, mono.numel())
    ild_a = [_ild_db(a[0].numpy(), k / FPS, k / FPS + 0.08) for k in impacts]
    ild_b = [_ild_db(b[0].numpy(), k / FPS, k / FPS + 0.08) for k in impacts]
    np.testing.assert_allclose(ild_a, ild_b, atol=1.5)


def test_analysis_rate_never_repeats_frames_and_bad_input_is_refused():
    assert analysis_fps(16) == 16 and analysis_fps(60) == 30 and analysis_fps(50) == 25
    assert analysis_fps(120) == 30 and analysis_fps(29.97) == 29.97
    with pytest.raises(ValueError, match="fps"):
        stereo_from_video(torch.zeros(SR), SR, torch.zeros(10, 32, 32, 3))
    with pytest.raises(ValueError, match="audio"):
        stereo_from_video(torch.zeros(2, 2, 2, SR), SR, torch.zeros(10, 32, 32, 3), fps=FPS)
    with pytest.raises(ValueError, match="width"):
        StereoConfig(width=1.5)
