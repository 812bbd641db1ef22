"""The output level stage: the limiter never lets a peak pass the ceiling, leaves audio under it
untouched, keeps the stereo image, and dips smoothly only around loud peaks."""
from __future__ import annotations

import math

import pytest
import torch

from kf_core.codec.limiter import MODES, limiter_gain, normalize_peak, peak_limit, set_level

SR = 44100
CEIL = 10 ** (-1 / 20)


def _tone(amp: float, seconds: float = 0.5, hz: float = 220.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return amp * torch.sin(2 * math.pi * hz * t)


def test_audio_under_the_ceiling_is_returned_untouched():
    wave = torch.stack([_tone(0.5), _tone(0.3, hz=330)])[None]                    # 1 2 T
    assert torch.equal(peak_limit(wave, SR), wave)
    assert torch.equal(set_level(wave, SR, "clip"), wave)


def test_loud_audio_is_held_under_the_ceiling_with_a_smooth_linked_gain():
    left = _tone(2.0) * torch.linspace(0.2, 1.0, int(0.5 * SR))                   # a swelling, clipping tone
    wave = torch.stack([left, 0.5 * left])[None]                                   # 1 2 T, R = L / 2
    out = peak_limit(wave, SR)
    assert out.abs().max() <= CEIL + 1e-7
    ratio = out[0, 1] / out[0, 0].where(out[0, 0].abs() > 1e-4, torch.tensor(float("nan")))
    assert torch.nanmean((ratio - 0.5).abs()) < 1e-6                              # one gain for both channels
    gain = limiter_gain(wave.abs().amax(dim=1), SR, ceiling=CEIL)                  # 1 T
    assert (gain * wave.abs().amax(dim=1).double() <= CEIL * (1 + 1e-9)).all()    # the bound holds without a clamp
    assert gain.diff().abs().max() < 0.01                                          # no steps: ramps, not clicks


def test_one_spike_only_dips_the_gain_around_it():
    wave = torch.zeros(1, 2, SR)
    wave[0, :, SR // 2] = 3.0
    gain = limiter_gain(wave.abs().amax(dim=1), SR, ceiling=CEIL, attack_ms=2.0, release_ms=60.0)[0]
    at = SR // 2
    assert gain[at] * 3.0 <= CEIL * (1 + 1e-9)
    assert gain[at - round(0.002 * SR) - 1] == 1.0                                  # look-ahead: 2 ms before
    assert gain[at + round(0.002 * SR)] < 0.5                                       # still held just after
    assert gain[at + round(0.4 * SR)] > 0.998 and gain[:at - 200].eq(1.0).all()  # recovered after ~7 τ


def test_normalize_sets_each_takes_peak_and_silence_stays_silent():
    wave = torch.stack([torch.stack([_tone(0.1), _tone(0.05)]), torch.stack([_tone(3.0), _tone(1.0)]),
                        torch.zeros(2, int(0.5 * SR))])                            # 3 2 T
    out = normalize_peak(wave, ceiling_db=-3.0)
    peaks = out.abs().amax(dim=(1, 2))
    assert torch.allclose(peaks[:2], torch.full((2,), 10 ** (-3 / 20)), atol=1e-6) and peaks[2] == 0
    assert torch.allclose(out[0, 1] / 0.05, out[0, 0] / 0.1, atol=1e-5)           # one gain per take


def test_modes_and_bad_settings_say_what_is_allowed():
    assert MODES == ("limit", "normalize", "clip")
    wave = torch.stack([_tone(2.0), _tone(2.0)])[None]
    assert set_level(wave, SR, "clip").abs().max() == 1.0
    with pytest.raises(ValueError, match="limit, normalize, clip"):
        set_level(wave, SR, "loud")
    with pytest.raises(ValueError, match="ceiling_db must be between -60 and 0"):
        peak_limit(wave, SR, ceiling_db=3.0)
    with pytest.raises(ValueError, match="channels, samples"):
        peak_limit(_tone(1.0), SR)
