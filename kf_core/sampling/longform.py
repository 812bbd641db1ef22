"""Long-form latents: a per-window sampler, total length, window, overlap -> latent [B, total, C] by crossfading.

A flow model is most reliable near the clip lengths it was trained on (MMAudio: 8 s). For longer
audio we sample overlapping windows, each a full generation over its own slice of the conditions,
and blend them in latent space:

    plan = window_plan(total, window, overlap)            # [(start_token, length), ...]
    z = sample_long(lambda start, n: sample_latents_for(start, n), total, window, overlap,
                    fade="cosine", check_cancel=raise_if_interrupted)

The plan uses the fewest windows of at most `window` tokens that cover the total with neighbours
sharing exactly `overlap` tokens; window lengths differ by at most one token, so no window is a
short leftover with little context. With `fixed=True` (networks trained at one length, MMAudio)
every window is exactly `window` tokens and the same number of windows is spread evenly, so
neighbours share at least `overlap` tokens. Inside a shared region the earlier window fades out while the
later fades in, with exactly complementary weights (f(u) + f(1 − u) = 1). The result is the
weighted overlap-add divided by the summed weights, so even when a very large overlap makes three
windows meet (possible only if overlap > 2/5 of a window) every token is a convex combination of
the windows covering it (a constant stays constant).

Why not an equal-power (cos/sin amplitude) fade: it keeps the power of two *uncorrelated* signals.
Neighbouring windows depict the same events in their shared region, so their latents are
correlated; amplitude weights must sum to 1 there or the overlap swells by up to √2. The "cosine"
fade is the raised-cosine (weights sin² and cos²), which sums to 1 and has zero slope at both ends.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..heap import release_free_memory

__all__ = ["FADES", "window_plan", "fade_in_weights", "window_weights", "sample_long"]

FADES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda u: u,
    "cosine": lambda u: torch.sin(0.5 * math.pi * u) ** 2,
}


def window_plan(total: int, window: int, overlap: int, *, fixed: bool = False) -> list[tuple[int, int]]:
    """Total tokens, window, overlap -> [(start, length)] covering [0, total) in order.

    total <= window is one window of length `total`. Otherwise n = 1 + ceil((total − window) /
    (window − overlap)) windows (the fewest that fit), lengths ≤ window differing by at most one,
    each starting `overlap` tokens before the previous one ends; with `fixed`, n windows of
    exactly `window` tokens starting at round(k·(total − window)/(n − 1)) (overlaps >= `overlap`,
    differing by at most one).
    """
    for name, v in (("total", total), ("window", window), ("overlap", overlap)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{name} must be an integer number of latent tokens, got {v!r}")
    if total < 1 or window < 1:
        raise ValueError(f"total ({total}) and window ({window}) must be at least 1 token")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, window) = [0, {window}), got {overlap}; "
                         f"a window must add at least one new token")
    if total <= window:
        return [(0, total)]
    n = 1 + math.ceil((total - window) / (window - overlap))
    if fixed:
        return [((k * (total - window) + (n - 1) // 2) // (n - 1), window) for k in range(n)]
    base, extra = divmod(total + (n - 1) * overlap, n)          # the lengths sum to total + shared tokens
    plan, start = [], 0
    for k in range(n):
        length = base + (1 if k < extra else 0)
        plan.append((start, length))
        start += length - overlap
    return plan


def _check_plan(plan: list[tuple[int, int]], total: int) -> None:
    """A plan must start at 0, end at total, move forward and leave no token uncovered."""
    ok = bool(plan) and plan[0][0] == 0 and plan[-1][0] + plan[-1][1] == total and all(
        n >= 1 for _, n in plan) and all(
        s0 < s1 <= s0 + n0 for (s0, n0), (s1, _) in zip(plan, plan[1:]))
    if not ok:
        raise ValueError(f"window plan {plan} does not cover [0, {total}) in order without gaps")


def fade_in_weights(n: int, fade: str = "cosine") -> torch.Tensor:
    """Overlap length n -> float32 [n] fade-in weights rising strictly inside (0, 1).

    Position j gets f((j + 1) / (n + 1)); the mirrored fade-out 1 − f(...) of the other window sums
    with it to exactly 1, and no weight is 0, so every token keeps a contribution from each window.
    """
    if fade not in FADES:
        raise ValueError(f"unknown fade {fade!r}; choose one of {sorted(FADES)}")
    u = torch.arange(1, n + 1, dtype=torch.float64) / (n + 1)
    return FADES[fade](u).to(torch.float32)


def window_weights(plan: list[tuple[int, int]], k: int, fade: str = "cosine") -> torch.Tensor:
    """Window plan and index k -> float32 [length_k] blending weights (1 outside shared regions)."""
    start, length = plan[k]
    w = torch.ones(length, dtype=torch.float32)
    if k > 0:                                                   # fade in over the overlap with k−1
        prev_start, prev_len = plan[k - 1]
        a = min(max(0, prev_start + prev_len - start), length)
        w[:a] = fade_in_weights(a, fade)
    if k + 1 < len(plan):                                       # fade out over the overlap with k+1
        b = min(max(0, start + length - plan[k + 1][0]), length)
        if b:
            w[length - b:] = w[length - b:] * (1.0 - fade_in_weights(b, fade))
    return w


def sample_long(sample_window: Callable[[int, int], torch.Tensor], total: int, window: int, overlap: int, *,
                fade: str = "cosine", check_cancel: Callable[[], None] | None = None,
                plan: list[tuple[int, int]] | None = None) -> torch.Tensor:
    """Per-window sampler, total/window/overlap in latent tokens -> latent [B, total, C] crossfaded.

    `sample_window(start_token, length)` returns the latent [B, length, C] of tokens
    [start, start + length); it is called once per window of `plan` (default `window_plan(total,
    window, overlap)`; a given plan must cover [0, total) in order), in order. `check_cancel()` runs before each window and may raise to
    stop (the exception propagates; nothing more is sampled). Device and dtype of the result
    follow the first window; blending accumulates in float32.
    """
    if plan is None:
        plan = window_plan(total, window, overlap)
    else:
        _check_plan(plan, total)
    if fade not in FADES:
        raise ValueError(f"unknown fade {fade!r}; choose one of {sorted(FADES)}")
    acc = wsum = None
    out_dtype = None
    for k, (start, length) in enumerate(plan):
        if check_cancel is not None:
            check_cancel()
        z = sample_window(start, length)
        if z.ndim != 3 or z.shape[1] != length:
            raise ValueError(f"sample_window({start}, {length}) returned shape {tuple(z.shape)}; "
                             f"expected [B, {length}, C]")
        if acc is None:
            out_dtype = z.dtype
            acc = torch.zeros(z.shape[0], total, z.shape[2], dtype=torch.float32, device=z.device)   # B T C
            wsum = torch.zeros(total, dtype=torch.float32, device=z.device)                        # T
        elif z.shape[0] != acc.shape[0] or z.shape[2] != acc.shape[2]:
            raise ValueError(f"window {k} has batch/channels {z.shape[0]}/{z.shape[2]} but window 0 had "
                             f"{acc.shape[0]}/{acc.shape[2]}")
        w = window_weights(plan, k, fade).to(acc.device)                                           # length
        acc[:, start:start + length] += w[None, :, None] * z.to(device=acc.device, dtype=torch.float32)
        wsum[start:start + length] += w
        del z
        release_free_memory()          # a window's scratch, so the heap does not creep with the clip
    return (acc / wsum[None, :, None]).to(out_dtype)
