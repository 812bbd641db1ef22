"""Griffin-Lim: exact length, determinism, and onsets/spectra of impulses, a chirp and noise bursts."""
from __future__ import annotations

import math

import pytest
import torch

from kf_core.codec.griffinlim import GriffinLim, _Workspace
from kf_core.codec.mel import MelSpectrogram
from kf_core.config import CODEC_PRESETS

CFG = CODEC_PRESETS["44k"]
HOP = CFG.hop
FRAMES = 48
T = FRAMES * HOP
SR = CFG.sample_rate


def _signals() -> torch.Tensor:
    t = torch.arange(T) / SR
    impulses = torch.zeros(T)
    impulses[3000::SR // 8] = 0.9                                      # 8 Hz click train
    f0, f1, dur = 100.0, 10000.0, T / SR                               # log chirp 100 Hz -> 10 kHz
    chirp = 0.5 * torch.sin(2 * math.pi * f0 * dur / math.log(f1 / f0) * ((f1 / f0) ** (t / dur) - 1))
    g = torch.Generator().manual_seed(0)
    bursts = torch.zeros(T)
    for start in (0.08, 0.25, 0.42):                                   # three 45 ms noise bursts
        a = int(start * SR)
        bursts[a:a + 2000] = 0.3 * torch.randn(2000, generator=g)
    return torch.stack([impulses, chirp, bursts])


def _onsets(wave: torch.Tensor, block: int = HOP // 2, rise_db: float = -12.0) -> list[int]:
    """Sample index of each block where the energy first rises above (peak + rise_db)."""
    energy = wave.reshape(-1, block).square().mean(1)
    on = energy > energy.max() * 10 ** (rise_db / 10)
    starts = (on[1:] & ~on[:-1]).nonzero().flatten() + 1
    return [int(i) * block for i in starts]


@pytest.fixture(scope="module")
def result():
    front = MelSpectrogram(CFG)
    waves = _signals()
    mel = front(waves)
    out = GriffinLim(CFG)(mel)
    return waves, mel, out, front(out[:, 0])


def test_shape_is_frames_times_hop(result):
    waves, mel, out, _ = result
    assert out.shape == (3, 1, FRAMES * HOP)
    assert out.abs().max() <= 1.0


def test_mel_distance_is_small(result):
    """Mean |Δ log-mel| (ln) above a −7 floor (−61 dB re 1): measured ≈0.06 / 0.07 / 0.22."""
    _, mel, _, remel = result
    dist = (remel.clamp_min(-7) - mel.clamp_min(-7)).abs().mean(dim=(1, 2))
    assert dist[0] < 0.15 and dist[1] < 0.15 and dist[2] < 0.4, dist


def test_onsets_preserved_within_one_hop(result):
    waves, _, out, _ = result
    for i in (0, 2):
        ref, got = _onsets(waves[i]), _onsets(out[i, 0])
        assert len(ref) == len(got) and len(ref) >= 3, (ref, got)
        assert all(abs(a - b) <= HOP for a, b in zip(ref, got)), (ref, got)


def test_iterations_improve_consistency():
    front = MelSpectrogram(CFG)
    mel = front(_signals()[1:2])
    err = [(front(GriffinLim(CFG, n_iter=n)(mel)[:, 0]) - mel).clamp(-7).abs().mean() for n in (0, 16)]
    assert err[1] < 0.5 * err[0]


def test_deterministic_and_batch_independent():
    front = MelSpectrogram(CFG)
    mel = front(_signals()[:2, : 16 * HOP])
    gl = GriffinLim(CFG, n_iter=4)
    a, b = gl(mel), gl(mel)
    assert torch.equal(a, b)
    torch.testing.assert_close(a[1:2], gl(mel[1:2]), atol=1e-5, rtol=0)
    zero = GriffinLim(CFG, n_iter=4, init="zero")
    # batched and single FFTs round differently on some CPUs (3.5e-5 seen on AVX-512): still batch-independent
    torch.testing.assert_close(zero(mel)[1:2], zero(mel[1:2]), atol=1e-4, rtol=0)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="log-mel"):
        GriffinLim(CFG)(torch.zeros(1, 80, 10))
    with pytest.raises(ValueError, match="momentum"):
        GriffinLim(CFG, momentum=1.5)


@pytest.mark.parametrize("momentum", [0.99, 0.0])
def test_buffered_iteration_is_the_allocating_one(momentum):
    # the in-place workspace (hop dividing n_fft, full-length window) against the plain STFTFraming loop
    gl = GriffinLim(CFG, n_iter=5, momentum=momentum)
    mel = torch.randn(2, CFG.n_mels, 40) - 4.0
    mag = gl.front.mel_to_linear(mel)
    phase = gl._initial_phase(mag.shape, mag.device, 0)
    fast = _Workspace(gl.framing, mag).iterate(phase, gl.n_iter, momentum / (1 + momentum))
    torch.testing.assert_close(fast, gl._iterate_general(mag, phase), atol=1e-6, rtol=0)
    assert fast.shape == (2, 40 * HOP)
