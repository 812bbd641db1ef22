"""Our sampling stack (uniform schedule + Euler + batched CFG) reproduces MMAudio's reference sampling
on its small fixture network (README §2.3: 4 Euler steps on linspace(0, 1, 5), CFG 4.5, two passes)."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from kf_core.config import SeqConfig
from kf_core.loading import load_dit
from kf_core.sampling import cfg_velocity, get_schedule, sample_euler


@pytest.fixture(scope="module")
def net(mmaudio_fixtures):
    model, _ = load_dit(mmaudio_fixtures / "network_small.safetensors")
    return model, load_file(str(mmaudio_fixtures / "network_small_vectors.safetensors"))


@pytest.mark.parametrize("negative", [False, True])
def test_euler_with_batched_cfg_matches_mmaudio_fixture(net, negative):
    model, vec = net
    seq, pre = SeqConfig(2.0), ("sample_neg_" if negative else "sample_")
    ts = get_schedule("uniform", 4)
    assert torch.equal(ts[:-1], vec[f"{pre}t_steps"])
    steps = []
    with torch.inference_mode():
        cond = model.prepare(seq=seq, visual=vec["clip_f"], sync=vec["sync_f"], text=vec["text_f"])
        uncond = model.prepare(seq=seq, text=vec["neg_text_f"]) if negative else model.prepare(seq=seq, batch_size=2)
        out = sample_euler(cfg_velocity(model, cond, uncond, 4.5), vec[f"{pre}x0"].clone(), ts,
                           callback=lambda step, total, x, t: steps.append(step))
    assert steps == [1, 2, 3, 4]
    torch.testing.assert_close(out, vec[f"{pre}latent_normalized"], atol=1e-4, rtol=1e-5)
