"""Classifier-free guidance wrapper against a small fake model that follows the model contract
(`model.velocity(x, t, prepared)`, `type(prepared).cat(list)`)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from kf_core.sampling import SAMPLERS, cfg_combine, cfg_velocity, get_schedule, sample_euler


@dataclass
class FakePrepared:
    """Per-sample conditioning: a bias vector [B, C] and a gain [B]."""

    bias: torch.Tensor
    gain: torch.Tensor

    @classmethod
    def cat(cls, items: list["FakePrepared"]) -> "FakePrepared":
        return cls(torch.cat([p.bias for p in items]), torch.cat([p.gain for p in items]))


class FakeModel(torch.nn.Module):
    """A nonlinear velocity mixing x, t and the condition; counts forwards and the batch sizes seen."""

    def __init__(self, c: int = 4):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(c, c, generator=g) / c ** 0.5)
        self.calls: list[int] = []

    def velocity(self, x, t, prepared: FakePrepared):
        if x.shape[0] != prepared.bias.shape[0] or t.shape != (x.shape[0],):
            raise ValueError(f"batch mismatch: x {tuple(x.shape)}, t {tuple(t.shape)}, cond {tuple(prepared.bias.shape)}")
        self.calls.append(x.shape[0])
        h = torch.tanh(x @ self.w + prepared.bias[:, None, :])                     # B L C
        return prepared.gain[:, None, None] * h * (1 + t[:, None, None]) - x       # B L C


def _conds(b: int = 3, c: int = 4):
    g = torch.Generator().manual_seed(1)
    cond = FakePrepared(torch.randn(b, c, generator=g), 1 + torch.rand(b, generator=g))
    uncond = FakePrepared(torch.zeros(b, c), torch.ones(b))
    return cond, uncond


def test_cfg_combine_is_mmaudios_form():
    vc, vu = torch.randn(2, 5), torch.randn(2, 5)
    torch.testing.assert_close(cfg_combine(vc, vu, 4.5), 4.5 * vc + (1 - 4.5) * vu)
    torch.testing.assert_close(cfg_combine(vc, vu, 4.5), vu + 4.5 * (vc - vu))
    assert torch.equal(cfg_combine(vc, vu, 1.0), vc)


def test_scale_1_is_the_conditional_velocity_with_one_call_of_batch_b():
    model, (cond, uncond) = FakeModel(), _conds()
    x, t = torch.randn(3, 6, 4), torch.full((3,), 0.3)
    v = cfg_velocity(model, cond, uncond, 1.0)(x, t)
    assert model.calls == [3]
    assert torch.equal(v, model.velocity(x, t, cond))


def test_scale_0_is_the_unconditional_velocity_with_one_call():
    model, (cond, uncond) = FakeModel(), _conds()
    x, t = torch.randn(3, 6, 4), torch.full((3,), 0.7)
    v = cfg_velocity(model, cond, uncond, 0.0)(x, t)
    assert model.calls == [3] and torch.equal(v, model.velocity(x, t, uncond))


@pytest.mark.parametrize("scale", [4.5, 0.5, -1.0, 7.0])
def test_batched_cfg_equals_two_separate_passes(scale):
    model, (cond, uncond) = FakeModel(), _conds()
    x, t = torch.randn(3, 6, 4), torch.rand(3)
    v = cfg_velocity(model, cond, uncond, scale)(x, t)
    assert model.calls == [6]                                  # ONE forward over [cond; uncond]
    ref = scale * model.velocity(x, t, cond) + (1 - scale) * model.velocity(x, t, uncond)
    torch.testing.assert_close(v, ref, atol=1e-6, rtol=1e-6)


def test_cfg_sampling_makes_one_forward_per_step_and_matches_a_hand_loop():
    model, (cond, uncond) = FakeModel(), _conds()
    x0 = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(5))
    ts = get_schedule("uniform", 20)
    steps_seen = []
    out = sample_euler(cfg_velocity(model, cond, uncond, 4.5), x0, ts,
                       callback=lambda step, total, x, t: steps_seen.append(step))
    assert model.calls == [6] * 20 and steps_seen == list(range(1, 21))
    x = x0.clone()
    for k in range(20):                                        # MMAudio's loop: two passes, Euler
        t = ts[k] * torch.ones(3)
        v = 4.5 * model.velocity(x, t, cond) + (1 - 4.5) * model.velocity(x, t, uncond)
        x = x + (ts[k + 1] - ts[k]) * v
    torch.testing.assert_close(out, x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_cancelling_from_the_callback_stops_cfg_sampling(name):
    model, (cond, uncond) = FakeModel(), _conds()

    def cancel(step, total, x, t):
        if step == 2:
            raise InterruptedError("user cancelled")

    with pytest.raises(InterruptedError, match="user cancelled"):
        SAMPLERS[name](cfg_velocity(model, cond, uncond, 3.0), torch.randn(3, 6, 4), get_schedule("uniform", 10),
                       callback=cancel, generator=torch.Generator().manual_seed(0))
    assert 2 <= len(model.calls) <= 8                          # 2 steps' worth, nothing after the raise


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "4.5", None, True])
def test_bad_scale_is_refused(bad):
    model, (cond, uncond) = FakeModel(), _conds()
    with pytest.raises(ValueError, match="cfg scale must be a finite number"):
        cfg_velocity(model, cond, uncond, bad)
