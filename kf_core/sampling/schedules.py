"""Time grids for flow sampling: name, steps -> Tensor[steps+1] rising strictly from 0 (noise) to 1 (data).

Time runs the way this package states once (`kf_core.sampling`): t = 0 is Gaussian noise, t = 1 is data.
A grid fixes where the velocity network is evaluated; the samplers take any strictly increasing grid.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["SCHEDULES", "DEFAULT_SD3_SHIFT", "get_schedule", "uniform_schedule", "sd3_schedule",
           "cosine_schedule", "shift_time"]

DEFAULT_SD3_SHIFT = 3.0   # SD3's shift for its 1024² model; a reasonable start for long latent sequences


def uniform_schedule(steps: int) -> torch.Tensor:
    """steps -> [steps+1] float32 equally spaced times, exactly `torch.linspace(0, 1, steps+1)`.

    This is MMAudio's grid and the paper's (Euler, dt = 0.05 at 20 steps); building it with the
    same float32 linspace keeps sampling bit-for-bit comparable with the reference.
    """
    return torch.linspace(0, 1, steps + 1, dtype=torch.float32)


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Times t in [0, 1] -> t / (s − (s−1)·t): with s > 1 the grid crowds towards t = 0 (noise).

    SD3 writes its shift on sigma (sigma = 1 is noise): sigma' = s·sigma / (1 + (s−1)·sigma).
    Our t is 1 − sigma, so the same map reads t' = t / (s − (s−1)·t); it equals the formula
    s·t / (1 + (s−1)·t) with s replaced by 1/s. Spending more steps near noise is the point: the
    coarse structure of a long, redundant sequence (many audio tokens carry the same event) is
    decided while the signal is still buried, so that is where the ODE needs fine steps.
    s = 1 is the identity; endpoints 0 and 1 are fixed points.
    """
    return t / (shift - (shift - 1.0) * t)


def sd3_schedule(steps: int, shift: float = DEFAULT_SD3_SHIFT) -> torch.Tensor:
    """steps, shift -> [steps+1] float32 uniform grid bent by `shift_time` (more steps near noise)."""
    u = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    return shift_time(u, float(shift)).to(torch.float32)


def cosine_schedule(steps: int) -> torch.Tensor:
    """steps -> [steps+1] float32 times t = (1 − cos(π·u)) / 2 for uniform u.

    Small steps at both ends: near t = 0, where the coarse layout is chosen, and near t = 1, where
    fine detail is added; large steps through the middle.
    """
    u = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    return ((1.0 - torch.cos(math.pi * u)) / 2.0).to(torch.float32)


SCHEDULES: dict[str, Callable[..., torch.Tensor]] = {
    "uniform": uniform_schedule,
    "sd3": sd3_schedule,
    "cosine": cosine_schedule,
}


def get_schedule(name: str, steps: int, *, shift: float | None = None,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """name, steps (, shift for "sd3") -> float32 Tensor[steps+1] strictly increasing from exactly 0 to 1.

    `shift` only bends the "sd3" schedule (None there means DEFAULT_SD3_SHIFT); the other schedules
    ignore it, so a UI can keep one shift widget for every schedule.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if name == "sd3":
        s = DEFAULT_SD3_SHIFT if shift is None else shift
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
            raise ValueError(f"the sd3 schedule needs a finite shift > 0 (1 = uniform, >1 = more steps "
                             f"near noise), got {s!r}")
        ts = sd3_schedule(steps, float(s))
    else:
        ts = SCHEDULES[name](steps)
    ts[0], ts[-1] = 0.0, 1.0   # exact endpoints whatever the float rounding inside
    if not bool((ts[1:] > ts[:-1]).all()):
        raise ValueError(f"the {name} schedule with {steps} steps (shift {shift}) has repeated times in "
                         f"float32; use fewer steps or a milder shift")
    return ts if device is None else ts.to(device)
