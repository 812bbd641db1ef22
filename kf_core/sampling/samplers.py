"""Flow-matching ODE/SDE samplers: velocity_fn, x (noise at ts[0]), time grid ts -> x at ts[-1].

Every sampler has the signature

    sample_<name>(velocity_fn, x, ts, *, callback=None, generator=None) -> x

with `velocity_fn(x, t) -> v`, t a (B,) tensor (t_k repeated over the batch, dtype/device of x).
Device and dtype come from x; the returned x has x's dtype. `callback(step, total, x, t)` runs after
every step (step = 1..total, t = the time just reached, a float); whatever it raises propagates and
ends sampling. Samplers do not switch autograd off: wrap calls in torch.inference_mode() to sample.

Shared math: one loop (`_integrate`) and one explicit Runge–Kutta step over a Butcher tableau
(`_rk_step`) give euler, midpoint, heun and rk4. The multistep and stochastic samplers write their
own step from the two predictions of the linear path x_t = t·x1 + (1−t)·x0, which `predictions`
gives: x1_hat = x + (1−t)·v and x0_hat = x − t·v (no division, so t = 1 is harmless).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["SAMPLERS", "get_sampler", "sample_euler", "sample_heun", "sample_midpoint", "sample_rk4",
           "sample_dpmpp_2m", "sample_euler_ancestral", "predictions", "EVALS_PER_STEP", "VelocityFn", "Callback"]

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, int, torch.Tensor, float], None]


@dataclass(frozen=True)
class Tableau:
    """Explicit Runge–Kutta coefficients: stage i evaluates at t + c[i]·h, x + h·Σ a[i][j]·k_j; x' = x + h·Σ b·k."""

    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]

    def __post_init__(self):
        if not (len(self.a) == len(self.b) == len(self.c)) or any(len(r) != i for i, r in enumerate(self.a)):
            raise ValueError(f"tableau needs a strictly lower-triangular a (row i has i entries) and b, c of "
                             f"the same length; got a={self.a}, b={self.b}, c={self.c}")
        if not math.isclose(sum(self.b), 1.0):
            raise ValueError(f"tableau weights b must sum to 1 (consistency), got {sum(self.b)}")


EULER = Tableau(a=((),), b=(1.0,), c=(0.0,))
MIDPOINT = Tableau(a=((), (0.5,)), b=(0.0, 1.0), c=(0.0, 0.5))
HEUN = Tableau(a=((), (1.0,)), b=(0.5, 0.5), c=(0.0, 1.0))
RK4 = Tableau(a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), b=(1 / 6, 1 / 3, 1 / 3, 1 / 6), c=(0.0, 0.5, 0.5, 1.0))


def _times(ts, x: torch.Tensor) -> list[float]:
    """Grid (tensor or sequence) -> Python floats, after checking it is a usable increasing grid in [0, 1]."""
    if not torch.is_floating_point(x):
        raise TypeError(f"samplers need a floating-point x, got {x.dtype}")
    t = torch.as_tensor(ts).detach().to("cpu", torch.float64)
    if t.ndim != 1 or t.numel() < 2:
        raise ValueError(f"ts must be a 1-D grid of at least 2 times (steps+1), got shape {tuple(t.shape)}; "
                         f"build one with get_schedule(name, steps)")
    if not bool(torch.isfinite(t).all()) or t.min() < 0 or t.max() > 1 or not bool((t[1:] > t[:-1]).all()):
        raise ValueError(f"ts must increase strictly inside [0, 1] (0 = noise, 1 = data), got {t.tolist()}")
    return t.tolist()


def _t(t: float, x: torch.Tensor) -> torch.Tensor:
    """Scalar time -> (B,) tensor with x's dtype and device, as velocity_fn expects."""
    return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)


def _integrate(x: torch.Tensor, ts, step: Callable[[int, torch.Tensor, float, float], torch.Tensor],
               callback: Callback | None) -> torch.Tensor:
    """The loop every sampler shares: x ← step(k, x, t_k, t_{k+1}), cast back to x's dtype, then callback."""
    times = _times(ts, x)
    dtype, total = x.dtype, len(times) - 1
    for k in range(total):
        x = step(k, x, times[k], times[k + 1]).to(dtype)
        if callback is not None:
            callback(k + 1, total, x, times[k + 1])
    return x


def _rk_step(velocity_fn: VelocityFn, x: torch.Tensor, t: float, h: float, tab: Tableau) -> torch.Tensor:
    """One explicit Runge–Kutta step of size h from (x, t) with tableau `tab`."""
    ks: list[torch.Tensor] = []
    for a_row, c in zip(tab.a, tab.c):
        xi = x
        for a, k in zip(a_row, ks):
            if a != 0.0:
                xi = xi + (h * a) * k
        ks.append(velocity_fn(xi, _t(t + c * h, x)))
    if len(ks) == 1:                    # Euler: exactly x + h·v, as MMAudio computes it
        return x + h * ks[0]
    return x + h * sum(b * k for b, k in zip(tab.b, ks) if b != 0.0)


def _rk(velocity_fn: VelocityFn, tab: Tableau) -> Callable[[int, torch.Tensor, float, float], torch.Tensor]:
    """velocity_fn and a tableau -> the `_integrate` step function for that Runge–Kutta method."""
    return lambda k, x, t, t_next: _rk_step(velocity_fn, x, t, t_next - t, tab)


def predictions(x: torch.Tensor, v: torch.Tensor, t: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """State x at time t and velocity v -> (x1_hat data prediction, x0_hat noise prediction).

    From x = t·x1 + (1−t)·x0 and v = x1 − x0: x1 = x + (1−t)·v, x0 = x − t·v.
    """
    return x + (1.0 - t) * v, x - t * v


def sample_euler(velocity_fn: VelocityFn, x: torch.Tensor, ts, *, callback: Callback | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise x [B,...] at ts[0] -> sample at ts[-1] by Euler (1st order, 1 evaluation per step; the paper's)."""
    return _integrate(x, ts, _rk(velocity_fn, EULER), callback)


def sample_midpoint(velocity_fn: VelocityFn, x: torch.Tensor, ts, *, callback: Callback | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise x at ts[0] -> sample at ts[-1] by the explicit midpoint rule (2nd order, 2 evaluations per step)."""
    return _integrate(x, ts, _rk(velocity_fn, MIDPOINT), callback)


def sample_heun(velocity_fn: VelocityFn, x: torch.Tensor, ts, *, callback: Callback | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise x at ts[0] -> sample at ts[-1] by Heun's trapezoidal predictor–corrector (2nd order, 2 evals/step).

    The corrector evaluates v at t_{k+1}, including t = 1 on the last step; a flow network is trained
    on the closed interval [0, 1], so that evaluation is as valid as any other.
    """
    return _integrate(x, ts, _rk(velocity_fn, HEUN), callback)


def sample_rk4(velocity_fn: VelocityFn, x: torch.Tensor, ts, *, callback: Callback | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise x at ts[0] -> sample at ts[-1] by classical Runge–Kutta (4th order, 4 evaluations per step)."""
    return _integrate(x, ts, _rk(velocity_fn, RK4), callback)


def sample_dpmpp_2m(velocity_fn: VelocityFn, x: torch.Tensor, ts, *, callback: Callback | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise x at ts[0] -> sample at ts[-1] by a DPM-Solver++(2M)-style multistep on the data prediction.

    1 evaluation per step, 2nd order. Derivation, with s = 1 − t and D = x1_hat = x + s·v:
    v = (D − x)/s, so the ODE is linear in x with the network only in D:
        d/dt (x/s) = (dx/dt)/s + x/s² = D/s²   ⇒   x' = (s'/s)·x + s'·∫_t^t' D(τ)/(1−τ)² dτ.
    The exponential-integrator idea of DPM-Solver++ is to integrate the linear part exactly and
    approximate only D. Holding D constant gives ∫ = D·(1/s' − 1/s), i.e. x' = x + (t'−t)·v: Euler.
    Taking D linear in t through the previous step, D(τ) ≈ D_k + (τ − t_k)·δ with
    δ = (D_k − D_{k−1}) / (t_k − t_{k−1}), adds the exact integral of the slope term:
        s'·∫ (τ − t)/(1−τ)² dτ = s − s' − s'·ln(s/s'),
        x' = x + (t'−t)·v_k + δ·(s − s' − s'·ln(s/s')).
    The interpolation error of D is O(h²) and its weight over one step is 1 − s'/s = h/s, so
    the local error is O(h³) and the global error O(h²) (second order; the tests measure it). At
    t' = 1 (s' = 0) the log term is 0·ln ∞ → 0 and the step returns D_k + δ·s: D extrapolated
    linearly to t = 1, no division by zero. The first step has no history and is Euler.
    """
    prev: list[tuple[float, torch.Tensor]] = []     # (t_{k-1}, D_{k-1})

    def step(k, x, t, t_next):
        v = velocity_fn(x, _t(t, x))
        d, _ = predictions(x, v, t)
        x_next = x + (t_next - t) * v
        if prev:
            t_prev, d_prev = prev[0]
            s, s_next = 1.0 - t, 1.0 - t_next
            log_term = s_next * math.log(s / s_next) if s_next > 0.0 else 0.0
            x_next = x_next + ((s - s_next - log_term) / (t - t_prev)) * (d - d_prev)
        prev[:] = [(t, d)]
        return x_next

    return _integrate(x, ts, step, callback)


def sample_euler_ancestral(velocity_fn: VelocityFn, x: torch.Tensor, ts, *, callback: Callback | None = None,
                           generator: torch.Generator | None = None, eta: float = 1.0) -> torch.Tensor:
    """Noise x at ts[0] -> sample at ts[-1] by ancestral (DDPM-like) steps that re-noise along the flow path.

    Each step predicts x1_hat, x0_hat and lands on the path at t' with part of the noise fresh:
        x' = t'·x1_hat + sqrt(s'² − c²)·x0_hat + c·z,   z ~ N(0, I) from `generator`, s' = 1 − t',
        c = eta · s' · sqrt(1 − (t·s' / (t'·s))²).
    c is the std of the posterior q(x_t' | x_t, x1) of the Markov chain whose marginals are the
    linear path (eta = 1: DDPM; eta = 0: no noise, which is exactly Euler). Nothing divides by s'
    or by t (t' > t ≥ 0, s = 1 − t > 0 on every step that starts), and the step to t' = 1 is
    noise-free (c = 0). Noise is drawn in float32 on the generator's device (the CPU default
    generator when None) and then moved to x, so a seed gives the same noise on every device.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1] (0 = deterministic Euler, 1 = full ancestral), got {eta}")
    noise_device = generator.device if generator is not None else torch.device("cpu")

    def step(k, x, t, t_next):
        v = velocity_fn(x, _t(t, x))
        x1, x0 = predictions(x, v, t)
        s, s_next = 1.0 - t, 1.0 - t_next
        keep = (t * s_next) / (t_next * s)
        c = eta * s_next * math.sqrt(max(0.0, 1.0 - keep * keep))
        x_next = t_next * x1 + math.sqrt(max(0.0, s_next * s_next - c * c)) * x0
        if c > 0.0:
            z = torch.randn(x.shape, generator=generator, device=noise_device, dtype=torch.float32)
            x_next = x_next + c * z.to(x.device, x.dtype)
        return x_next

    return _integrate(x, ts, step, callback)


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "midpoint": sample_midpoint,
    "rk4": sample_rk4,
    "dpmpp_2m": sample_dpmpp_2m,
    "euler_ancestral": sample_euler_ancestral,
}

EVALS_PER_STEP = {"euler": 1, "heun": 2, "midpoint": 2, "rk4": 4, "dpmpp_2m": 1, "euler_ancestral": 1}


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """Sampler name -> the sampler function (see SAMPLERS)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name]
