"""Synchformer visual encoder: MMAudio parity, sizes, segmenting, loading."""
import pytest
import torch

from kf_core.encoders.synchformer import (SYNCHFORMER_PRESETS, Synchformer, SynchformerConfig,
                                          sync_frames_from_uint8)
from kf_core.loading.state import CheckpointError, read_state_dict, save_state_dict


@pytest.fixture(scope="module")
def fixture_model_and_vectors(mmaudio_fixtures):
    model = Synchformer.from_file(mmaudio_fixtures / "synchformer_small.safetensors", dtype=torch.float32)
    vectors = read_state_dict(mmaudio_fixtures / "synchformer_small_vectors.safetensors")
    return model, vectors


def test_parity_with_mmaudio_fixture(fixture_model_and_vectors):
    model, vec = fixture_model_and_vectors
    assert model.cfg == SYNCHFORMER_PRESETS["fixture-small"]
    x = (vec["frames_u8"].float() - 128) / 128  # the fixture's input mapping (README §6)
    with torch.no_grad():
        feats = model.encode_video(x, batch_size=1)
        segs = model.encode_segments(torch.stack([x[:, 0:16], x[:, 8:24]], dim=1))
    torch.testing.assert_close(feats, vec["features"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(segs, vec["segment_features"], atol=1e-5, rtol=1e-5)


def test_full_configuration_size_and_key_names():
    model = Synchformer.build("synchformer", device="meta")
    n = sum(p.numel() for p in model.parameters())
    # MMAudio's 122.44 M includes the unused 2D patch embed (768*3*16*16 + 768), which we do not build
    assert abs(n - 122.44e6) / 122.44e6 < 0.03
    assert n + 768 * 3 * 16 * 16 + 768 == pytest.approx(122.44e6, rel=1e-3)
    keys = set(model.state_dict())
    assert len(keys) == 238 - 2
    assert {"blocks.11.timeattn.qkv.weight", "spatial_attn_agg.self_attn.in_proj_weight",
            "temp_embed", "patch_embed_3d.proj.weight"} <= keys


def test_encode_video_segments_and_bounded_batches():
    model = Synchformer.tiny(seed=3)
    frames = torch.rand(2, 24, 3, 224, 224) * 2 - 1  # S = (24 - 16) // 8 + 1 = 2
    with torch.no_grad():
        out = model.encode_video(frames, batch_size=2)  # one segment of each video per call
        seg1 = model.encode_segments(frames[1:, None, 8:24])
    assert out.shape == (2, 2 * 8, 128)
    torch.testing.assert_close(out[1:, 8:16], seg1[:, 0], atol=1e-5, rtol=1e-5)  # segment 1 = frames 8..23
    assert not torch.allclose(out[0], out[1])


def test_tiny_is_deterministic_and_rejects_short_videos():
    a, b = Synchformer.tiny(seed=1), Synchformer.tiny(seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.pos_embed, Synchformer.tiny(seed=2).pos_embed)
    with pytest.raises(ValueError, match="at least 16 frames"):
        a.encode_video(torch.zeros(1, 15, 3, 224, 224))
    with pytest.raises(ValueError, match=r"\[B, S, 16, 3, 224, 224\]"):
        a.encode_segments(torch.zeros(1, 1, 16, 3, 112, 112))


def test_released_layout_extra_branches_ignored_and_strict_otherwise(mmaudio_fixtures, tmp_path):
    sd = read_state_dict(mmaudio_fixtures / "synchformer_small.safetensors")
    released = {**sd, "afeat_extractor.patch_embed.proj.weight": torch.zeros(4, 1, 16, 16),
                "transformer.pos_emb_cfg.pos_emb": torch.zeros(1, 3)}
    save_state_dict(released, tmp_path / "synchformer_state_dict.safetensors")
    model = Synchformer.from_file(tmp_path / "synchformer_state_dict.safetensors")
    ours = {k: v.float() for k, v in model.state_dict().items()}  # our own key names round-trip
    assert Synchformer.from_state_dict(ours).cfg == model.cfg
    broken = dict(sd)
    del broken["vfeat_extractor.blocks.1.norm3.weight"]
    broken["vfeat_extractor.blocks.0.attn.proj.bias"] = torch.zeros(7)
    with pytest.raises(CheckpointError, match=r"mis-shaped: blocks.0.attn.proj.bias.*missing: blocks.1.norm3"):
        Synchformer.from_state_dict(broken)


def test_wrong_kind_of_file_is_rejected(mmaudio_fixtures):
    with pytest.raises(CheckpointError, match="vae_small.safetensors holds an audio VAE.*not a Synchformer"):
        Synchformer.from_file(mmaudio_fixtures / "vae_small.safetensors")


def test_uint8_preprocessing_and_config_validation():
    u8 = torch.tensor([0, 255, 128], dtype=torch.uint8)
    torch.testing.assert_close(sync_frames_from_uint8(u8), torch.tensor([-1.0, 1.0, 128 / 255 * 2 - 1]))
    with pytest.raises(TypeError):
        sync_frames_from_uint8(u8.float())
    with pytest.raises(ValueError, match="multiple of heads"):
        SynchformerConfig(width=100, heads=3)
    assert SynchformerConfig().segments(200) == 24  # 8 s at 25 fps
