"""The whole Synchformer (kf_core.encoders.sync_av): the released key layout, strict loading, its
audio front end, and DeSync over the first and last 4.8 s."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from kf_core.encoders.synchformer import SYNCHFORMER_PRESETS, Synchformer
from kf_core.encoders.sync_av import SyncNet, SyncNetConfig, sync_mel_segments
from kf_core.loading.state import CheckpointError
from kf_core.takes import rank_takes

# the released architecture, narrow and shallow, on 64 px frames (the visual branch is tested in test_synchformer)
TINY = SyncNetConfig(width=128, ast_depth=1, ast_heads=2, ast_hidden=256, head_depth=1, head_heads=1,
                     visual=replace(SYNCHFORMER_PRESETS["kf-tiny"], image_size=64))


@pytest.fixture(scope="module")
def tiny_sd():
    torch.manual_seed(0)
    model = SyncNet(TINY)
    for p in model.parameters():  # zero-initialised tables would hide layout mistakes
        torch.nn.init.normal_(p, std=0.05)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_default_layout_is_the_released_files():
    with torch.device("meta"):
        model = SyncNet()
    keys = set(model.state_dict())
    # visual (238 released keys less the unused 2D patch embed), AST + frequency aggregation, projections, head
    assert len(keys) == 236 + 212 + 4 + 59
    for key in ("afeat_extractor.ast.embeddings.distillation_token",
                "afeat_extractor.ast.encoder.layer.11.attention.attention.query.weight",
                "afeat_extractor.ast.encoder.layer.0.attention.output.dense.bias",
                "afeat_extractor.freq_attn_agg.self_attn.in_proj_weight", "vproj.weight", "aproj.bias",
                "transformer.OFF_tok", "transformer.pos_emb_cfg.pos_emb", "transformer.blocks.2.mlp.2.weight",
                "transformer.off_head.weight", "vfeat_extractor.spatial_attn_agg.cls_token"):
        assert key in keys, key
    sd = model.state_dict()
    assert tuple(sd["afeat_extractor.ast.embeddings.position_embeddings"].shape) == (1, 74, 768)
    assert tuple(sd["transformer.pos_emb_cfg.pos_emb"].shape) == (1, 198, 768)
    assert SyncNetConfig().offsets.tolist()[::10] == pytest.approx([-2.0, 0.0, 2.0], abs=1e-9)


def test_strict_round_trip_and_a_visual_only_file_is_refused(tiny_sd, tmp_path):
    from kf_core.loading.state import save_state_dict
    released = {**tiny_sd, "vfeat_extractor.patch_embed.proj.weight": torch.zeros(128, 3, 16, 16),
                "vfeat_extractor.patch_embed.proj.bias": torch.zeros(128)}  # the unused 2D embed rides along
    model = SyncNet.from_state_dict(released)
    assert model.cfg == TINY
    bad = dict(tiny_sd)
    bad["transformer.off_head.weight"] = torch.zeros(20, 128)
    with pytest.raises(CheckpointError, match="off_head"):
        SyncNet.from_state_dict(bad)
    path = tmp_path / "visual.safetensors"
    save_state_dict({f"vfeat_extractor.{k}": v for k, v in Synchformer.tiny().state_dict().items()}, path)
    with pytest.raises(CheckpointError, match="audio branch"):
        SyncNet.from_file(path)


def test_mel_segments_follow_the_synchformer_front_end():
    audio = torch.randn(2, 32000) * 0.1  # 2 s at 16 kHz: segments at 0, 0.32, ... 1.28 s
    spec = sync_mel_segments(audio)
    assert spec.shape == (2, 5, 66, 128)
    # the 66th frame is padding: log-domain zero, normalised
    assert torch.allclose(spec[:, :, 65], torch.full_like(spec[:, :, 65], 4.2677393 / (2 * 4.5689974)))
    # a segment is computed from its own 0.64 s: shifting the audio by one step shifts the segments
    shifted = sync_mel_segments(audio[:, 5120:])
    assert torch.allclose(shifted[:, :4], spec[:, 1:], atol=1e-5)
    with pytest.raises(ValueError, match="16 kHz"):
        sync_mel_segments(torch.zeros(1, 100))


def test_desync_covers_first_and_last_window_and_needs_4_8_s(tiny_sd):
    model = SyncNet.from_state_dict(tiny_sd)
    frames = torch.randint(0, 256, (130, 3, 64, 64), dtype=torch.uint8)     # 5.2 s at 25 fps
    audio = torch.randn(3, 83200) * 0.1                                      # 5.2 s at 16 kHz
    d = model.desync(frames, audio)
    assert d.shape == (3,) and torch.isfinite(d).all()
    # each take is judged alone: the batch gives what one take alone gives
    assert torch.equal(model.desync(frames, audio[1:2]), d[1:2])
    assert all(abs(x * 5 - round(x * 5)) < 1e-5 and 0 <= x <= 2 for x in d.tolist())  # means of the 0.2 s grid
    short = model.desync(frames[:100], audio[:, :64000])                     # 4 s: no window fits
    assert all(math.isnan(x) for x in short.tolist())


def test_rank_takes_with_a_sync_model_reports_desync(tiny_sd):
    model = SyncNet.from_state_dict(tiny_sd)
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, (125, 48, 64, 3), dtype=np.uint8))  # 5 s at 25 fps
    waves = torch.from_numpy(rng.standard_normal((2, 1, 5 * 44100)).astype(np.float32)) * 0.1
    ranking = rank_takes(waves, 44100, frames, fps=25.0, sync_model=model)
    assert all(s.desync_s is not None for s in ranking.scores) and "DeSync" in ranking.report()
    assert ranking.scores[ranking.best].desync_s == min(s.desync_s for s in ranking.scores)
