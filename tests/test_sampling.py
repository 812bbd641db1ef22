"""Schedules and samplers: exactness, measured order of convergence, determinism, the stochastic
sampler's transport of noise to a known Gaussian, callbacks and input errors."""
from __future__ import annotations

import math

import pytest
import torch

from kf_core.sampling import (DEFAULT_SD3_SHIFT, EVALS_PER_STEP, SAMPLERS, SCHEDULES, get_sampler, get_schedule,
                              sample_dpmpp_2m, sample_euler, sample_euler_ancestral, shift_time)

ODE_SAMPLERS = [n for n in SAMPLERS if n != "euler_ancestral"]


# ---------------------------------------------------------------- schedules

@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("steps", [1, 2, 7, 20, 200])
def test_schedules_run_strictly_from_exact_0_to_exact_1(name, steps):
    ts = get_schedule(name, steps)
    assert ts.shape == (steps + 1,) and ts.dtype == torch.float32
    assert ts[0].item() == 0.0 and ts[-1].item() == 1.0
    assert bool((ts[1:] > ts[:-1]).all())


def test_uniform_20_steps_is_the_papers_dt_005_and_mmaudios_grid():
    ts = get_schedule("uniform", 20)
    assert torch.equal(ts, torch.linspace(0, 1, 21))
    torch.testing.assert_close(ts.diff(), torch.full((20,), 0.05), atol=1e-6, rtol=0)


def test_sd3_shift_spends_more_steps_near_noise():
    u = get_schedule("uniform", 10)
    s = get_schedule("sd3", 10, shift=3.0)
    assert bool((s[1:-1] < u[1:-1]).all())                  # every interior time moved towards t = 0
    assert s.diff()[0] < u.diff()[0] and s.diff()[-1] > u.diff()[-1]
    # it is SD3's sigma shift read in our t = 1 - sigma convention
    sigma = 1 - u.double()
    sd3_sigma = 3 * sigma / (1 + 2 * sigma)
    torch.testing.assert_close(s.double(), 1 - sd3_sigma, atol=1e-6, rtol=0)
    torch.testing.assert_close(get_schedule("sd3", 10, shift=1.0), u)
    torch.testing.assert_close(get_schedule("sd3", 10), get_schedule("sd3", 10, shift=DEFAULT_SD3_SHIFT))
    assert shift_time(torch.tensor(0.5), 3.0).item() == pytest.approx(0.25)


def test_cosine_takes_small_steps_at_both_ends():
    d = get_schedule("cosine", 20).diff()
    assert d[0] < d[10] and d[-1] < d[10]
    torch.testing.assert_close(d, d.flip(0), atol=1e-6, rtol=0)


def test_schedule_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"unknown schedule 'karras'.*cosine.*sd3.*uniform"):
        get_schedule("karras", 10)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="steps must be an integer >= 1"):
            get_schedule("uniform", bad)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite shift > 0"):
            get_schedule("sd3", 10, shift=bad)
    get_schedule("uniform", 10, shift=5.0)                  # other schedules ignore the shift widget


# ---------------------------------------------------------------- deterministic samplers

@pytest.mark.parametrize("schedule", ["uniform", "sd3", "cosine"])
@pytest.mark.parametrize("steps", [1, 3, 20])
def test_euler_integrates_a_constant_velocity_exactly(schedule, steps):
    x0 = torch.randn(3, 5, 2, dtype=torch.float64)
    c = torch.randn(5, 2, dtype=torch.float64)
    out = sample_euler(lambda x, t: c.expand_as(x), x0, get_schedule(schedule, steps))
    torch.testing.assert_close(out, x0 + c, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ODE_SAMPLERS)
def test_every_ode_sampler_is_exact_for_a_velocity_linear_in_time(name):
    # v = 2t + 1 integrates to x0 + 2 on [0, 1]; every method of order >= 2 is exact on it
    # (the multistep's first, Euler step is not, hence only order >= 2 single-step methods).
    x0 = torch.randn(4, 3, dtype=torch.float64)
    out = SAMPLERS[name](lambda x, t: (2 * t + 1)[:, None].expand_as(x), x0, get_schedule("uniform", 5))
    if name in ("euler", "dpmpp_2m"):
        assert not torch.allclose(out, x0 + 2, atol=1e-6)
    else:
        torch.testing.assert_close(out, x0 + 2, atol=1e-12, rtol=0)


A, B = -1.3, 0.7   # dx/dt = A·x + B·cos(2t): a linear ODE with a closed form


def _exact(x0: torch.Tensor) -> torch.Tensor:
    # particular solution p(t) = B·(−A·cos 2t + 2·sin 2t)/(A² + 4); x(t) = (x0 − p(0))·e^{At} + p(t)
    def p(t):
        return B * (-A * math.cos(2 * t) + 2 * math.sin(2 * t)) / (A * A + 4)
    return (x0 - p(0.0)) * math.exp(A) + p(1.0)


def _field(x, t):
    return A * x + B * torch.cos(2 * t)[:, None]


ORDER_BOUNDS = {"euler": (1.7, 2.4), "heun": (3.0, 5.0), "midpoint": (3.0, 5.0), "rk4": (12.0, 20.0),
                "dpmpp_2m": (3.0, 5.5)}


@pytest.mark.parametrize("schedule", ["uniform", "sd3"])
@pytest.mark.parametrize("name", ODE_SAMPLERS)
def test_error_falls_as_2_to_the_order_when_steps_double(name, schedule):
    x0 = torch.tensor([[0.5], [-1.0]], dtype=torch.float64)
    errs = [(SAMPLERS[name](_field, x0, get_schedule(schedule, n).double()) - _exact(x0)).abs().max().item()
            for n in (16, 32, 64)]
    lo, hi = ORDER_BOUNDS[name]
    ratios = [errs[0] / errs[1], errs[1] / errs[2]]
    assert all(lo <= r <= hi for r in ratios), f"{name} on {schedule}: errors {errs}, ratios {ratios}"


def test_heun_and_midpoint_are_different_methods():
    # on a field nonlinear in x they agree to O(h^3) but not exactly
    x0 = torch.tensor([[0.3]], dtype=torch.float64)
    ts = get_schedule("uniform", 4).double()
    h = SAMPLERS["heun"](lambda x, t: torch.sin(3 * x), x0, ts)
    m = SAMPLERS["midpoint"](lambda x, t: torch.sin(3 * x), x0, ts)
    assert 1e-8 < (h - m).abs().item() < 1e-1


def test_evals_per_step_are_what_the_samplers_spend():
    for name, sampler in SAMPLERS.items():
        calls = []
        sampler(lambda x, t: calls.append(1) or torch.zeros_like(x), torch.zeros(1, 2), get_schedule("uniform", 6),
                generator=torch.Generator().manual_seed(0))
        assert len(calls) == 6 * EVALS_PER_STEP[name], name


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_velocity_fn_gets_a_batch_of_times_with_xs_dtype_and_the_last_step_is_finite(name):
    seen = []

    def v(x, t):
        assert t.shape == (x.shape[0],) and t.dtype == x.dtype and t.device == x.device
        assert bool((t == t[0]).all())
        seen.append(t[0].item())
        return -x / (1.0 + t[:, None, None]) + 1.0

    x = torch.randn(3, 4, 2).to(torch.bfloat16)
    out = SAMPLERS[name](v, x, get_schedule("uniform", 5), generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.bfloat16 and out.shape == x.shape and bool(torch.isfinite(out).all())
    assert min(seen) == 0.0 and max(seen) <= 1.0


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_same_seed_gives_identical_output(name):
    def run(seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(2, 6, 3, generator=g)
        return SAMPLERS[name](lambda x, t: torch.tanh(x) - t[:, None, None], x, get_schedule("cosine", 8), generator=g)
    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_dpmpp_2m_final_step_to_t1_extrapolates_the_data_prediction():
    # With one step of history, the step landing on t = 1 returns D_k + slope·(1 - t_k), no log(0).
    ts = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    x0 = torch.tensor([[1.0]], dtype=torch.float64)
    out = sample_dpmpp_2m(lambda x, t: torch.full_like(x, 2.0) * t[:, None], x0, ts)
    # step 1 (Euler, v = 0): x = 1; D(0) = 1 + 1·0 = 1.  step 2: v = 1 at t = .5, D = 1 + .5 = 1.5,
    # slope = (1.5 - 1)/.5 = 1, result D + slope·.5 = 2; the exact flow gives x0 + ∫2t dt = 2.
    torch.testing.assert_close(out, torch.tensor([[2.0]], dtype=torch.float64))


# ---------------------------------------------------------------- stochastic sampler

MU, SD = 1.5, 0.5   # data x1 ~ N(MU, SD²) per element; with x0 ~ N(0, 1) the velocity E[x1 − x0 | x_t] is analytic


def _gaussian_velocity(x, t):
    t = t.view(-1, *([1] * (x.ndim - 1)))
    var = t ** 2 * SD ** 2 + (1 - t) ** 2
    return MU + (t * SD ** 2 - (1 - t)) / var * (x - t * MU)


def test_ancestral_sampler_transports_noise_to_the_data_distribution():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 4, generator=g)
    out = sample_euler_ancestral(_gaussian_velocity, x, get_schedule("uniform", 200), generator=g)
    assert abs(out.mean().item() - MU) < 0.02
    assert abs(out.std().item() - SD) < 0.025
    # it really re-noises: the result is not the deterministic Euler flow of the same start
    euler = sample_euler(_gaussian_velocity, x, get_schedule("uniform", 200))
    assert (out - euler).abs().mean() > 0.1


def test_ancestral_with_eta_0_is_euler_and_the_seed_controls_the_noise():
    x = torch.randn(8, 3)
    ts = get_schedule("sd3", 10)
    torch.testing.assert_close(sample_euler_ancestral(_gaussian_velocity, x, ts, eta=0.0),
                               sample_euler(_gaussian_velocity, x, ts), atol=1e-5, rtol=1e-5)
    a = sample_euler_ancestral(_gaussian_velocity, x, ts, generator=torch.Generator().manual_seed(1))
    b = sample_euler_ancestral(_gaussian_velocity, x, ts, generator=torch.Generator().manual_seed(1))
    c = sample_euler_ancestral(_gaussian_velocity, x, ts, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    with pytest.raises(ValueError, match="eta must be in"):
        sample_euler_ancestral(_gaussian_velocity, x, ts, eta=1.5)


# ---------------------------------------------------------------- callbacks, registry, errors

@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_callback_runs_after_every_step_with_the_time_reached(name):
    ts = get_schedule("uniform", 7)
    log = []
    SAMPLERS[name](lambda x, t: torch.ones_like(x), torch.zeros(2, 3), ts,
                   callback=lambda step, total, x, t: log.append((step, total, t, x.shape)))
    assert [s for s, *_ in log] == list(range(1, 8)) and {tot for _, tot, *_ in log} == {7}
    assert [t for _, _, t, _ in log] == pytest.approx(ts[1:].tolist())


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_an_exception_in_the_callback_stops_sampling(name):
    calls = []

    class Cancelled(Exception):
        pass

    def cancel_at_3(step, total, x, t):
        if step == 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        SAMPLERS[name](lambda x, t: calls.append(1) or torch.ones_like(x), torch.zeros(1, 2),
                       get_schedule("uniform", 10), callback=cancel_at_3)
    assert len(calls) == 3 * EVALS_PER_STEP[name]


def test_get_sampler_and_grid_errors():
    assert get_sampler("heun") is SAMPLERS["heun"]
    with pytest.raises(ValueError, match=r"unknown sampler 'ddim'.*dpmpp_2m.*euler"):
        get_sampler("ddim")
    v = lambda x, t: x  # noqa: E731
    with pytest.raises(ValueError, match="at least 2 times"):
        sample_euler(v, torch.zeros(1, 2), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="increase strictly"):
        sample_euler(v, torch.zeros(1, 2), torch.tensor([0.0, 0.6, 0.5, 1.0]))
    with pytest.raises(ValueError, match="inside \\[0, 1\\]"):
        sample_euler(v, torch.zeros(1, 2), torch.tensor([0.0, 1.5]))
    with pytest.raises(TypeError, match="floating-point x"):
        sample_euler(v, torch.zeros(1, 2, dtype=torch.long), get_schedule("uniform", 2))


def test_a_partial_grid_starts_from_an_intermediate_time():
    # e.g. audio-to-audio: start at t = 0.4 from a noised latent
    out = sample_euler(lambda x, t: torch.ones_like(x), torch.zeros(1, 1), [0.4, 0.7, 1.0])
    torch.testing.assert_close(out, torch.full((1, 1), 0.6))
