"""Preset sizes (paper §6.2) and ModelConfig validation."""
from __future__ import annotations

from pathlib import Path

import pytest

from kf_core.model import PRESETS, ModelConfig, build_model


def _params(cfg) -> int:
    return sum(p.numel() for p in build_model(cfg, device="meta").parameters())


@pytest.mark.parametrize("name,heads,depth,lo,hi", [
    ("kf-1.5b", 17, 23, 1.35e9, 1.65e9),
    ("kf-3b", 23, 27, 2.7e9, 3.3e9),
    ("kf-6b", 32, 27, 5.4e9, 6.6e9),
])
def test_paper_presets_match_the_paper(name, heads, depth, lo, hi):
    cfg = PRESETS[name]
    assert cfg.num_heads == heads and cfg.depth == depth
    assert cfg.hidden_dim == 64 * heads
    assert (cfg.latent_dim, cfg.text_dim, cfg.visual_dim, cfg.sync_dim, cfg.text_len) == (40, 768, 1280, 768, 77)
    n = _params(cfg)
    assert lo <= n <= hi, f"{name}: {n / 1e9:.3f} B parameters outside [{lo / 1e9}, {hi / 1e9}] B"


def test_tiny_interface_dims_are_fixed_and_small():
    cfg = PRESETS["kf-tiny"]
    assert (cfg.text_dim, cfg.visual_dim, cfg.sync_dim, cfg.latent_dim) == (128, 128, 128, 16)
    assert _params(cfg) == 3_293_328


def test_the_kf_tiny_preset_is_the_architecture_that_ships():
    # one name, one network: the bundled dit.safetensors records its config, and it is the preset
    import dataclasses
    from kf_core.loading.dit import load_dit
    model, info = load_dit(Path(__file__).resolve().parents[1] / "kf_core" / "assets" / "kf-tiny" / "dit.safetensors")
    assert info.config == PRESETS["kf-tiny"], {
        k: (v, getattr(PRESETS["kf-tiny"], k)) for k, v in dataclasses.asdict(info.config).items()
        if v != getattr(PRESETS["kf-tiny"], k)}
    assert sum(p.numel() for p in model.parameters()) == _params(PRESETS["kf-tiny"])


def test_build_model_accepts_names_and_configs():
    assert build_model("kf-tiny", device="meta").cfg is PRESETS["kf-tiny"]
    cfg = PRESETS["kf-tiny"].with_(num_single=0)
    assert len(build_model(cfg, device="meta").single_blocks) == 0
    with pytest.raises(ValueError, match="unknown model preset 'kf-huge'"):
        build_model("kf-huge")


@pytest.mark.parametrize("changes,message", [
    (dict(num_heads=0), "num_heads"),
    (dict(num_joint=0), "num_joint >= 1"),
    (dict(audio_kernel=4), "audio_kernel"),
    (dict(final_cond="sync"), "final_cond"),
    (dict(text_attention_mask=False), "masked_mean"),
    (dict(empty_text_len=100), "empty_text_len \\(100\\) exceeds text_len \\(77\\)"),
])
def test_config_validation_names_the_numbers(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**changes)
