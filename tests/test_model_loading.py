"""DiT checkpoints: detection of every MMAudio variant, strict rejection, foreign files, round trips."""
from __future__ import annotations

import json

import pytest
import torch

from kf_core.config import SeqConfig
from kf_core.loading import CheckpointError, detect_config, load_dit, load_strict, read_state_dict, save_dit
from kf_core.loading.remap import deinterleave_qkv, remap_mmaudio
from kf_core.model import build_model
from kf_core.model.config import swiglu_hidden

from test_model_dit import randomise


def mmaudio_shapes(c: int, d: int, joint: int, fused: int, v2: bool) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an MMAudio flow network, written from MMAUDIO.md §1.4/§1.6."""
    h, s = swiglu_hidden(d, 4.0, 256), {}

    def mlp(prefix, k=None):
        shp = (lambda o, i: (o, i)) if k is None else (lambda o, i: (o, i, k))
        s.update({prefix + "w1.weight": shp(h, d), prefix + "w2.weight": shp(d, h), prefix + "w3.weight": shp(h, d)})

    def lin(prefix, o, i, k=None):
        s.update({prefix + "weight": (o, i) if k is None else (o, i, k), prefix + "bias": (o,)})

    def block(prefix, k, pre_only=False):
        lin(prefix + "attn.qkv.", 3 * d, d)
        s.update({prefix + "attn.q_norm.weight": (64,), prefix + "attn.k_norm.weight": (64,)})
        lin(prefix + "adaLN_modulation.1.", (2 if pre_only else 6) * d, d)
        if not pre_only:
            lin(prefix + "linear1.", d, d, None if k == 1 else k)
            mlp(prefix + "ffn.", None if k == 1 else k)

    s.update({"sync_pos_emb": (1, 1, 8, 768), "latent_mean": (1, 1, c), "latent_std": (1, 1, c),
              "empty_string_feat": (77, 1024), "empty_clip_feat": (1, 1024), "empty_sync_feat": (1, 768)})
    lin("audio_input_proj.0.", d, c, 7), mlp("audio_input_proj.2.", 7)
    lin("clip_input_proj.0.", d, 1024), mlp(f"clip_input_proj.{2 if v2 else 1}.", 3)
    lin("sync_input_proj.0.", d, 768, 7), mlp("sync_input_proj.2.", 3)
    lin("text_input_proj.0.", d, 1024), mlp(f"text_input_proj.{2 if v2 else 1}.")
    lin("clip_cond_proj.", d, d), lin("text_cond_proj.", d, d), mlp("global_cond_mlp.")
    lin("t_embed.mlp.0.", d, d if v2 else 256), lin("t_embed.mlp.2.", d, d)
    lin("final_layer.adaLN_modulation.1.", 2 * d, d), lin("final_layer.conv.", c, d, 7)
    for i in range(joint):
        block(f"joint_blocks.{i}.latent_block.", 3)
        block(f"joint_blocks.{i}.clip_block.", 3, pre_only=i == joint - 1)
        block(f"joint_blocks.{i}.text_block.", 1, pre_only=i == joint - 1)
    for i in range(fused):
        block(f"fused_blocks.{i}.", 3)
    return s


def meta_sd(shapes):
    return {k: torch.empty(v, device="meta") for k, v in shapes.items()}


def test_shape_table_matches_the_fixture_layout(mmaudio_fixtures):
    side = json.loads((mmaudio_fixtures / "network_small.json").read_text())["state_dict"]
    assert mmaudio_shapes(40, 128, 2, 2, True) == {k: tuple(v[0]) for k, v in side.items()}


@pytest.mark.parametrize("variant,c,d,joint,fused,v2,millions", [
    ("small_16k", 20, 448, 4, 8, False, 157.28), ("small_44k", 40, 448, 4, 8, False, 157.41),
    ("medium_44k", 40, 896, 4, 8, False, 621.81), ("large_44k", 40, 896, 7, 14, False, 1030.00),
    ("large_44k_v2", 40, 896, 7, 14, True, 1030.58)])
def test_every_released_mmaudio_network_is_detected_and_fits(variant, c, d, joint, fused, v2, millions):
    sd = meta_sd(mmaudio_shapes(c, d, joint, fused, v2))
    det = detect_config(sd)
    assert det.layout == "mmaudio" and det.variant == variant
    assert det.config.codec == ("16k" if c == 20 else "44k")
    ours, extras = remap_mmaudio({**sd, "t_embed.freqs": torch.empty(d // 2, device="meta"),
                                  "latent_rot": torch.empty(1), "clip_rot": torch.empty(1)})
    model = load_strict(build_model(det.config, device="meta"), ours, assign=True)
    total = sum(p.numel() for p in model.parameters()) + sum(t.numel() for t in extras.values())
    assert abs(total / 1e6 - millions) < 0.006, f"{variant}: {total / 1e6:.2f} M"


def test_deinterleave_qkv_puts_q_k_v_in_blocks():
    heads, dim = 2, 64
    rows = torch.arange(3 * heads * dim)                   # MMAudio row (h*64 + d)*3 + j
    out = deinterleave_qkv(rows)
    j, h, d = 1, 1, 5                                      # our row j*D + h*64 + d
    assert out[j * heads * dim + h * dim + d] == (h * dim + d) * 3 + j


@pytest.fixture()
def tiny_file(tmp_path):
    model = randomise(build_model("kf-tiny"), seed=3)
    path = save_dit(model, tmp_path / "tiny.safetensors", latent_mean=torch.arange(16.0),
                    latent_std=torch.full((16,), 2.0))
    return model, path


def test_save_load_round_trips_exactly(tiny_file):
    model, path = tiny_file
    loaded, info = load_dit(path)
    assert info.layout == "kling-foley" and info.variant == "kf-tiny" and info.config == model.cfg
    assert torch.equal(info.latent_mean, torch.arange(16.0)) and torch.equal(info.latent_std, torch.full((16,), 2.0))
    ref = model.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in loaded.state_dict().items()) and ref.keys() == loaded.state_dict().keys()
    seq = SeqConfig(1.0)
    x = torch.randn(1, seq.latent_len, 16)
    with torch.no_grad():
        assert torch.equal(model.velocity(x, 0.3, model.prepare(seq=seq)), loaded.velocity(x, 0.3, loaded.prepare(seq=seq)))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_load(tiny_file, dtype):
    _, path = tiny_file
    model, _ = load_dit(path, dtype=dtype)
    assert {p.dtype for p in model.parameters()} == {dtype}


def test_wrong_shaped_and_incomplete_checkpoints_name_the_keys(tiny_file, tmp_path):
    _, path = tiny_file
    sd = read_state_dict(path)
    bad = dict(sd)
    bad["joint_blocks.0.audio.qkv.weight"] = torch.zeros(384, 64)
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"mis-shaped: joint_blocks\.0\.audio\.qkv\.weight \(384, 64\) vs expected \(384, 128\)"):
        load_dit(tmp_path / "bad.pt")
    partial = {k: v for k, v in sd.items() if k != "single_blocks.1.mlp.w2.weight"}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"missing: single_blocks\.1\.mlp\.w2\.weight"):
        load_dit(tmp_path / "partial.pt")


@pytest.mark.parametrize("fixture,what", [("vae_small", "VAE"), ("bigvgan_small", "BigVGAN"),
                                          ("synchformer_small", "Synchformer")])
def test_foreign_files_are_rejected_with_advice(mmaudio_fixtures, fixture, what):
    with pytest.raises(CheckpointError, match=f"{fixture}.safetensors: this file is not a flow DiT: .*{what}.*loader"):
        load_dit(mmaudio_fixtures / f"{fixture}.safetensors")


def test_mmaudio_pth_with_stale_buffers_loads(mmaudio_fixtures, tmp_path):
    sd = read_state_dict(mmaudio_fixtures / "network_small_v1.safetensors")
    sd.update({"t_embed.freqs": torch.zeros(128), "latent_rot": torch.zeros(1, 87, 32, 2, 2),
               "clip_rot": torch.zeros(1, 16, 32, 2, 2)})
    torch.save(sd, tmp_path / "mmaudio_v1.pth")
    model, info = load_dit(tmp_path / "mmaudio_v1.pth")
    assert info.layout == "mmaudio" and model.cfg.input_activation == "selu"
