"""Codec metrics on known values: identity, scaling, a known SNR, sign conventions, PESQ errors."""
from __future__ import annotations

import math

import pytest
import torch

from kf_core.config import CODEC_PRESETS
from kf_core.eval.metrics import codec_metrics, lsd, mcd, mel_loss, pesq_wb, sdr, si_sdr, stft_loss

SR = 16000


def _signal(seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    tone = 0.3 * torch.sin(2 * math.pi * 440 * t) * (1 + 0.5 * torch.sin(2 * math.pi * 3 * t))
    return tone + 0.05 * torch.randn(t.shape, generator=g)


def test_identical_signals():
    s = _signal()
    assert si_sdr(s, s) > 90 and sdr(s, s) > 90
    assert lsd(s, s) == pytest.approx(0.0, abs=1e-9)
    assert mcd(s, s, SR) == pytest.approx(0.0, abs=1e-9)
    assert stft_loss(s, s) == pytest.approx(0.0, abs=1e-9)
    assert mel_loss(s, s, CODEC_PRESETS["16k"]) == pytest.approx(0.0, abs=1e-9)


def test_scaling_changes_sdr_not_si_sdr():
    s = _signal()
    half = 0.5 * s
    assert si_sdr(s, half) > 90
    # ‖s‖² / ‖0.5 s‖² = 4 -> 10·log10(4) = 6.02 dB
    assert sdr(s, half).item() == pytest.approx(10 * math.log10(4), abs=1e-6)
    # A gain shifts every log-power bin by 2·log10(0.5): LSD = |2·log10 0.5| = 0.602 (up to the 1e-10 floor).
    assert lsd(s, half).item() == pytest.approx(2 * math.log10(2), abs=1e-3)
    # c0 carries the gain, c1.. do not: MCD ignores a pure gain.
    assert mcd(s, half, SR).item() < 1e-6


def test_known_snr():
    s = _signal()
    g = torch.Generator().manual_seed(7)
    noise = torch.randn(s.shape, generator=g, dtype=torch.float64)
    noise = noise - noise.mean()
    for snr_db in (0.0, 10.0, 25.0):
        scaled = noise * (s.double().norm() / noise.norm()) * 10 ** (-snr_db / 20)
        est = s.double() + scaled
        assert sdr(s, est).item() == pytest.approx(snr_db, abs=1e-6)
        assert si_sdr(s, est).item() == pytest.approx(snr_db, abs=0.2)  # α ≈ 1 for independent noise


def test_sign_conventions_worse_estimate_scores_worse():
    s = _signal()
    g = torch.Generator().manual_seed(1)
    mild = s + 0.01 * torch.randn(s.shape, generator=g)
    bad = s + 0.2 * torch.randn(s.shape, generator=g)
    assert si_sdr(s, mild) > si_sdr(s, bad) and sdr(s, mild) > sdr(s, bad)          # higher is better
    assert lsd(s, mild) < lsd(s, bad) and mcd(s, mild, SR) < mcd(s, bad, SR)        # lower is better
    assert stft_loss(s, mild) < stft_loss(s, bad)
    cfg = CODEC_PRESETS["16k"]
    assert mel_loss(s, mild, cfg) < mel_loss(s, bad, cfg)


def test_batched_inputs_give_one_value_per_item():
    s = torch.stack([_signal(seed=0), _signal(seed=1)])
    e = s.clone()
    e[1] += 0.1
    v = sdr(s, e)
    assert v.shape == (2,) and v[0] > 90 and v[1] < 90
    assert si_sdr(s, e).shape == lsd(s, e).shape == mcd(s, e, SR).shape == stft_loss(s, e).shape == (2,)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="same shape"):
        sdr(torch.zeros(100), torch.zeros(99))


def test_pesq_identical_is_near_max_and_noise_lowers_it():
    s = _signal(2.0)
    best = pesq_wb(s, s, SR)
    g = torch.Generator().manual_seed(2)
    noisy = pesq_wb(s, s + 0.1 * torch.randn(s.shape, generator=g), SR)
    assert best > 4.0 and noisy < best
    # 44.1 kHz input is resampled to 16 kHz first
    s44 = torch.nn.functional.interpolate(s[None, None], scale_factor=44100 / SR, mode="linear")[0, 0]
    assert pesq_wb(s44, s44, 44100) > 4.0


def test_pesq_too_short_says_why():
    s = _signal(0.1)
    with pytest.raises(ValueError, match="PESQ"):
        pesq_wb(s, s, SR)
    row = codec_metrics(s, s, CODEC_PRESETS["16k"])
    assert row["pesq"] is None and row["sdr"] > 90
