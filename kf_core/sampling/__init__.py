"""Flow-matching sampling: time grids, ODE/SDE samplers and classifier-free guidance.

Time convention (stated here once for the whole engine; DESIGN.md §2, paper eq. 1):

    t = 0 is Gaussian noise x0, t = 1 is data x1,
    x_t = t·x1 + (1 − t)·x0,   and the network predicts the velocity v = x1 − x0 = dx_t/dt.

Sampling integrates dx/dt = v(x, t) from t = 0 to t = 1. This matches MMAudio (σ_min = 0) and is
the opposite of the SD3 / k-diffusion sigma convention, where sigma = 1 is noise (t = 1 − sigma).

    ts = get_schedule("uniform", 20)                       # Tensor[21]: 0, 0.05, ..., 1 (the paper)
    v = cfg_velocity(model, cond, uncond, scale=4.5)       # one batched forward per step
    x1 = get_sampler("euler")(v, noise, ts, callback=cb)   # any SAMPLERS entry, same signature

Longer audio than a model's comfortable window: `sample_long` (longform.py) crossfades windows.
"""
from .guidance import cfg_combine, cfg_velocity
from .longform import sample_long, window_plan
from .samplers import (EVALS_PER_STEP, SAMPLERS, get_sampler, predictions, sample_dpmpp_2m, sample_euler,
                       sample_euler_ancestral, sample_heun, sample_midpoint, sample_rk4)
from .schedules import DEFAULT_SD3_SHIFT, SCHEDULES, get_schedule, shift_time

__all__ = ["SAMPLERS", "SCHEDULES", "EVALS_PER_STEP", "DEFAULT_SD3_SHIFT", "get_sampler", "get_schedule",
           "shift_time", "predictions", "cfg_combine", "cfg_velocity", "sample_euler", "sample_heun",
           "sample_midpoint", "sample_rk4", "sample_dpmpp_2m", "sample_euler_ancestral", "sample_long",
           "window_plan"]
