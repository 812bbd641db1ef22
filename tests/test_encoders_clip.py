"""open_clip encoders: tiny frames path, MMAudio's 384->378 input, DFN5B layout, per-token text."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kf_core.encoders.clip import (CLIP_MODELS, ClipTextEncoder, ClipVisionEncoder, build_clip, clip_config,
                                   split_clip_state)
from kf_core.loading.state import CheckpointError, save_state_dict


@pytest.fixture(scope="module")
def tiny():
    return ClipVisionEncoder.tiny(seed=0)


def test_tiny_frames_shape_norm_and_batching(tiny):
    frames = torch.rand(5, 3, 90, 120)
    out = tiny.encode_frames(frames, batch_size=2)
    assert out.shape == (5, 128) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(5))
    torch.testing.assert_close(out, tiny.encode_frames(frames, batch_size=64), atol=1e-5, rtol=1e-5)
    u8 = tiny.encode_frames((frames * 255).round().to(torch.uint8))
    torch.testing.assert_close(u8, out, atol=5e-3, rtol=0)  # uint8 input is read as /255
    assert (out[0] - out[1]).abs().max() > 1e-3


def test_preprocess_squashes_and_normalises(tiny):
    white = tiny.preprocess(torch.ones(1, 3, 40, 100))
    assert white.shape == (1, 3, 64, 64)
    expected = (1 - torch.tensor(CLIP_MODELS["kf-tiny-clip"].mean)) / torch.tensor(CLIP_MODELS["kf-tiny-clip"].std)
    torch.testing.assert_close(white[0, :, 10, 10], expected)


def test_dfn5b_input_is_top_left_378_of_a_384_resize():
    enc = ClipVisionEncoder(nn.Identity(), CLIP_MODELS["ViT-H-14-378-quickgelu"])
    frames = torch.rand(2, 3, 200, 300)
    x = enc.preprocess(frames)
    assert x.shape == (2, 3, 378, 378)
    resized = F.interpolate(frames, size=(384, 384), mode="bicubic", antialias=True).clamp(0, 1)
    spec = enc.spec
    ref = (resized[..., :378, :378] - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, ref)


def test_dfn5b_layout_on_meta():
    model = build_clip("ViT-H-14-378-quickgelu", device="meta")
    sd = model.state_dict()
    assert len(sd) == 686
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(986.7e6, abs=0.05e6)
    assert sum(p.numel() for p in model.visual.parameters()) == pytest.approx(632.7e6, abs=0.05e6)
    shapes = {"visual.positional_embedding": (730, 1280), "visual.conv1.weight": (1280, 3, 14, 14),
              "visual.proj": (1280, 1024), "visual.transformer.resblocks.31.attn.in_proj_weight": (3840, 1280),
              "token_embedding.weight": (49408, 1024), "transformer.resblocks.23.mlp.c_fc.weight": (4096, 1024),
              "text_projection": (1024, 1024)}
    assert {k: tuple(sd[k].shape) for k in shapes} == shapes
    enc = ClipVisionEncoder.build("ViT-H-14-378-quickgelu", device="meta")
    assert enc.dim == 1024 and enc.spec.image_size == 378


@pytest.mark.parametrize("scale_shape", [(), (1,)])
def test_full_checkpoint_feeds_both_towers_any_logit_scale_shape(tiny, tmp_path, scale_shape):
    full = build_clip("kf-tiny-clip")
    sd = {**full.state_dict(), **{"visual." + k: v for k, v in tiny.visual.state_dict().items()}}
    sd["logit_scale"] = torch.full(scale_shape, 4.6)
    path = save_state_dict(sd, tmp_path / "clip.safetensors")
    vision = ClipVisionEncoder.from_file(path)  # model name detected from the shapes
    assert vision.name == "kf-tiny-clip"
    frames = torch.rand(3, 3, 64, 64)
    torch.testing.assert_close(vision.encode_frames(frames), tiny.encode_frames(frames))
    text = ClipTextEncoder.from_file(path, "kf-tiny-clip")
    assert text.encode(["a dog"]).shape == (1, 77, 128)
    vision_only, text_only = split_clip_state(sd)
    assert "logit_scale" not in text_only and "conv1.weight" in vision_only


def test_per_token_text_features_width_1024():
    cfg = clip_config("ViT-H-14-378-quickgelu")
    cfg["text_cfg"]["layers"], cfg["vision_cfg"]["layers"] = 1, 1
    enc = ClipTextEncoder(cfg, device="cpu").eval()  # torch init: faster than the seeded one at 50 M params
    with torch.no_grad():
        for p in enc.parameters():
            nn.init.normal_(p, mean=1.0 if p.ndim == 1 else 0.0, std=0.02 if p.ndim > 1 else 0.1)
    assert enc.tokenizer(["a dog barking"])[0, :6].tolist() == [49406, 320, 1929, 32676, 49407, 0]
    out = enc.encode(["a dog barking", "a dog"])
    assert out.shape == (2, 77, 1024)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2, 77))
    # causal mask: SOT, "a", "dog" see only earlier tokens, so they agree across the two prompts
    torch.testing.assert_close(out[0, :3], out[1, :3], atol=1e-5, rtol=1e-5)
    assert (out[0, 3] - out[1, 3]).abs().max() > 1e-3


def test_wrong_kind_and_unknown_names_are_rejected(mmaudio_fixtures):
    with pytest.raises(CheckpointError, match="holds a flow network.*not an open_clip CLIP model"):
        ClipVisionEncoder.from_file(mmaudio_fixtures / "network_small.safetensors")
    with pytest.raises(ValueError, match="unknown CLIP model 'ViT-nope'"):
        clip_config("ViT-nope")
