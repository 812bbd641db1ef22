"""Parity with MMAudio's reference flow networks (fixtures: network_small = v2, network_small_v1 = v1).

Loaded through load_dit (float16-stored weights -> float32). Tolerances from the fixture README §10.
The sampling loop is written out exactly as README §2.3 describes (Euler on linspace(0, 1, 5),
CFG as s*v_c + (1-s)*v_u, two separate forwards).
"""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from kf_core.config import SeqConfig
from kf_core.loading import detect_config, load_dit, read_state_dict

NETWORKS = ["network_small", "network_small_v1"]


@pytest.fixture(scope="module", params=NETWORKS)
def net(request, mmaudio_fixtures):
    name = request.param
    model, info = load_dit(mmaudio_fixtures / f"{name}.safetensors")
    vec = load_file(str(mmaudio_fixtures / f"{name}_vectors.safetensors"))
    return name, model, info, vec


def test_detect_config_identifies_both_fixtures(mmaudio_fixtures):
    v2 = detect_config(read_state_dict(mmaudio_fixtures / "network_small.safetensors"))
    v1 = detect_config(read_state_dict(mmaudio_fixtures / "network_small_v1.safetensors"))
    assert v2.layout == v1.layout == "mmaudio"
    assert "v2" in v2.variant and "v1" in v1.variant
    c2, c1 = v2.config, v1.config
    assert (c2.hidden_dim, c2.num_heads, c2.num_joint, c2.num_single, c2.mlp_hidden) == (128, 2, 2, 2, 512)
    assert (c1.hidden_dim, c1.num_heads, c1.num_joint, c1.num_single, c1.mlp_hidden) == (64, 1, 2, 2, 256)
    assert (c2.t_freq_dim, c2.t_max_period, c2.input_activation, c2.linear_proj_activation) == (128, 1.0, "silu", True)
    assert (c1.t_freq_dim, c1.t_max_period, c1.input_activation, c1.linear_proj_activation) == (256, 10000.0, "selu", False)
    for c in (c1, c2):
        assert (c.final_cond, c.text_pool, c.text_attention_mask, c.duration_embedding) == ("global", "mean", False, False)
        assert (c.latent_dim, c.visual_dim, c.sync_dim, c.text_dim, c.text_len) == (40, 1024, 768, 1024, 77)
        assert c.text_kernel == 1 and c.audio_kernel == 3 and c.final_kernel == 7 and c.pre_only_last_joint


def test_latent_statistics_are_handed_out_for_the_codec(net):
    name, model, info, vec = net
    assert info.latent_mean.shape == info.latent_std.shape == (40,)
    assert not any("latent_" in k for k in model.state_dict())


def test_debug_intermediates(net):
    name, model, info, vec = net
    seq = SeqConfig(2.0)
    if name == "network_small":
        assert torch.equal(model.t_embed.frequencies(torch.device("cpu")), vec["dbg.t_embed_freqs"])
    with torch.no_grad():
        p = model.prepare(seq=seq, visual=vec["clip_f"], sync=vec["sync_f"], text=vec["text_f"])
        e = model.prepare(seq=seq, batch_size=2)
        close = dict(atol=2e-5, rtol=1e-5)
        torch.testing.assert_close(p.rot_audio[None], vec["dbg.latent_rot"], **close)
        torch.testing.assert_close(p.rot_visual[None], vec["dbg.clip_rot"], **close)
        torch.testing.assert_close(model.t_embed.sinusoid(vec["t1"]), vec["dbg.t_freq"], **close)
        torch.testing.assert_close(model.t_embed(vec["t1"]), vec["dbg.t_embed"], **close)
        torch.testing.assert_close(p.global_cond, vec["dbg.global_cond_mlp"], **close)
        torch.testing.assert_close(model.audio_in(vec["x"]), vec["dbg.audio_input_proj"], **close)
        for prep, tag in ((p, "cond"), (e, "empty")):
            torch.testing.assert_close(prep.visual, vec[f"dbg.{tag}.clip_f"], **close)
            torch.testing.assert_close(prep.align, vec[f"dbg.{tag}.sync_f"], **close)
            torch.testing.assert_close(prep.text, vec[f"dbg.{tag}.text_f"], **close)


@pytest.mark.parametrize("step", ["t0", "t1", "t2"])
def test_velocities_match_the_reference(net, step):
    name, model, info, vec = net
    seq = SeqConfig(2.0)
    x, t = vec["x"], vec[step]
    with torch.no_grad():
        cond = model.prepare(seq=seq, visual=vec["clip_f"], sync=vec["sync_f"], text=vec["text_f"])
        uncond = model.prepare(seq=seq, batch_size=2)                   # empty clip/sync + empty_string_feat
        neg = model.prepare(seq=seq, text=vec["neg_text_f"])
        for prep, key in ((cond, "v_cond"), (uncond, "v_uncond"), (neg, "v_uncond_neg")):
            torch.testing.assert_close(model.velocity(x, t, prep), vec[f"{key}_{step}"], atol=2e-5, rtol=1e-5,
                                       msg=lambda m: f"{name} {key}_{step}: {m}")


@pytest.mark.parametrize("negative", [False, True])
def test_four_step_euler_cfg_sampling_matches(net, negative):
    name, model, info, vec = net
    seq, scale = SeqConfig(2.0), 4.5
    pre = "sample_neg_" if negative else "sample_"
    with torch.no_grad():
        cond = model.prepare(seq=seq, visual=vec["clip_f"], sync=vec["sync_f"], text=vec["text_f"])
        uncond = model.prepare(seq=seq, text=vec["neg_text_f"]) if negative else model.prepare(seq=seq, batch_size=2)
        ts = torch.linspace(0, 1, 5, dtype=torch.float32)
        torch.testing.assert_close(ts[:-1], vec[f"{pre}t_steps"], atol=0, rtol=0)
        x = vec[f"{pre}x0"].clone()
        for k in range(4):
            t = ts[k] * torch.ones(2)
            v = scale * model.velocity(x, t, cond) + (1 - scale) * model.velocity(x, t, uncond)
            x = x + (ts[k + 1] - ts[k]) * v
    torch.testing.assert_close(x, vec[f"{pre}latent_normalized"], atol=1e-4, rtol=1e-5)
    latent = x * info.latent_std + info.latent_mean                     # the codec's un-normalisation
    torch.testing.assert_close(latent, vec[f"{pre}latent"], atol=1e-4, rtol=1e-5)
