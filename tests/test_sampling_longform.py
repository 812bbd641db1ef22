"""Long-form stitching of overlapping latent windows (kf_core.sampling.longform)."""
from __future__ import annotations

import pytest
import torch

from kf_core.sampling.longform import FADES, fade_in_weights, sample_long, window_plan, window_weights

CASES = [(100, 40, 8), (97, 32, 16), (41, 40, 8), (300, 64, 0), (1000, 345, 43), (50, 10, 5)]


@pytest.mark.parametrize("total,window,overlap", CASES)
def test_plan_covers_every_token_with_even_windows_sharing_exactly_the_overlap(total, window, overlap):
    plan = window_plan(total, window, overlap)
    assert plan[0][0] == 0 and plan[-1][0] + plan[-1][1] == total
    lengths = [length for _, length in plan]
    assert max(lengths) <= window and max(lengths) - min(lengths) <= 1
    if total > window:                                         # the fewest windows that can do it
        assert len(plan) - 1 < (total - overlap) / (window - overlap) <= len(plan)
    covered = torch.zeros(total, dtype=torch.bool)
    for start, length in plan:
        covered[start:start + length] = True
    assert bool(covered.all())
    for (s0, l0), (s1, _) in zip(plan, plan[1:]):
        assert s0 < s1 and s0 + l0 - s1 == overlap            # neighbours share exactly the overlap


@pytest.mark.parametrize("fade", sorted(FADES))
@pytest.mark.parametrize("total,window,overlap", CASES)
def test_stitching_constant_windows_gives_that_constant(fade, total, window, overlap):
    c = torch.tensor([0.25, -3.0, 7.5])
    out = sample_long(lambda s, n: c.expand(2, n, 3).clone(), total, window, overlap, fade=fade)
    assert out.shape == (2, total, 3)
    torch.testing.assert_close(out, c.expand(2, total, 3), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("total,window,overlap", CASES)
def test_windows_land_on_their_own_tokens(total, window, overlap):
    # each window returns its absolute token index: any misplacement or gap breaks the identity
    out = sample_long(lambda s, n: torch.arange(s, s + n, dtype=torch.float32)[None, :, None], total, window, overlap)
    torch.testing.assert_close(out[0, :, 0], torch.arange(total, dtype=torch.float32), atol=1e-4, rtol=0)


def test_overlap_regions_blend_the_two_neighbours():
    plan = window_plan(72, 40, 8)                                  # windows [0, 40) and [32, 72)
    assert plan == [(0, 40), (32, 40)] and window_plan(70, 40, 8) == [(0, 39), (31, 39)]
    values = iter([0.0, 1.0])
    out = sample_long(lambda s, n: torch.full((1, n, 1), next(values)), 72, 40, 8, fade="linear")[0, :, 0]
    assert bool((out[:32] == 0).all()) and bool((out[40:] == 1).all())
    torch.testing.assert_close(out[32:40], torch.arange(1, 9) / 9.0)   # a linear ramp strictly inside (0, 1)


def test_lengths_up_to_one_window_run_a_single_window():
    for total in (1, 17, 40):
        calls = []
        out = sample_long(lambda s, n: calls.append((s, n)) or torch.ones(1, n, 2), total, 40, 8)
        assert calls == [(0, total)] and out.shape == (1, total, 2)


@pytest.mark.parametrize("fade", sorted(FADES))
@pytest.mark.parametrize("n", [1, 2, 7, 32])
def test_crossfade_weights_sum_to_one(fade, n):
    w_in = fade_in_weights(n, fade)
    assert bool(((w_in > 0) & (w_in < 1)).all()) and bool((w_in.diff() > 0).all())
    torch.testing.assert_close(w_in + w_in.flip(0), torch.ones(n), atol=1e-6, rtol=0)  # fade-out = mirrored
    # across a whole plan with two windows per token, the placed weights add up to 1 everywhere
    plan = window_plan(200, 3 * n + 5, n)                          # overlap < 2/5 window: two windows per token
    assert len(plan) >= 3
    total = torch.zeros(200)
    for k, (s, length) in enumerate(plan):
        total[s:s + length] += window_weights(plan, k, fade)
    torch.testing.assert_close(total, torch.ones(200), atol=1e-6, rtol=0)


def test_check_cancel_runs_before_each_window_and_can_stop():
    events = []

    def window(s, n):
        events.append(("window", s))
        return torch.zeros(1, n, 1)

    sample_long(window, 100, 40, 8, check_cancel=lambda: events.append(("check", None)))
    assert [e for e, _ in events] == ["check", "window"] * len(window_plan(100, 40, 8))

    def cancel_second():
        if sum(e == "window" for e, _ in events) == 1:
            raise KeyboardInterrupt
    events.clear()
    with pytest.raises(KeyboardInterrupt):
        sample_long(window, 100, 40, 8, check_cancel=cancel_second)
    assert [e for e, _ in events] == ["window"]


def test_dtype_follows_the_windows():
    out = sample_long(lambda s, n: torch.ones(1, n, 4, dtype=torch.bfloat16), 90, 40, 8)
    assert out.dtype == torch.bfloat16 and bool((out == 1).all())


def test_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"overlap must be in \[0, window\)"):
        window_plan(100, 40, 40)
    with pytest.raises(ValueError, match="at least 1 token"):
        window_plan(0, 40, 8)
    with pytest.raises(ValueError, match="integer number of latent tokens"):
        window_plan(100.0, 40, 8)
    with pytest.raises(ValueError, match="unknown fade 'equal_power'"):
        sample_long(lambda s, n: torch.zeros(1, n, 1), 100, 40, 8, fade="equal_power")
    with pytest.raises(ValueError, match=r"returned shape \(1, 39, 1\); expected \[B, 40, C\]"):
        sample_long(lambda s, n: torch.zeros(1, n - 1, 1), 72, 40, 8)
    with pytest.raises(ValueError, match="batch/channels"):
        sample_long(lambda s, n: torch.zeros(1 + (s > 0), n, 1), 100, 40, 8)


@pytest.mark.parametrize("total,window,overlap", [(1292, 345, 43), (700, 345, 43), (346, 345, 10), (3000, 345, 100)])
def test_fixed_plan_windows_are_all_the_trained_length(total, window, overlap):
    plan = window_plan(total, window, overlap, fixed=True)
    assert len(plan) == len(window_plan(total, window, overlap))          # no more windows than needed
    assert all(n == window for _, n in plan) and plan[0][0] == 0 and plan[-1][0] + window == total
    shared = [a + window - b for (a, _), (b, _) in zip(plan, plan[1:])]
    assert min(shared) >= overlap and max(shared) - min(shared) <= 1      # spread evenly
    z = sample_long(lambda s, n: torch.ones(1, n, 2), total, window, 0, plan=plan)
    assert torch.allclose(z, torch.ones(1, total, 2))


def test_a_given_plan_must_cover_the_clip():
    with pytest.raises(ValueError, match="does not cover"):
        sample_long(lambda s, n: torch.ones(1, n, 2), 10, 6, 0, plan=[(0, 6), (7, 3)])
