"""KlingFoleyDiT behaviour: aligned RoPE, joint attention, text masking, prepare/velocity, empties."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from kf_core.config import SeqConfig
from kf_core.model import PRESETS, build_model
from kf_core.model.rope import apply_rope, rope_rotations


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every tensor O(1)-active (a fresh model is adaLN-Zero and outputs exactly zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("q_norm.weight", "k_norm.weight")):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            elif p.ndim >= 2 and not name.startswith(("empty_", "sync_pos_emb")) and "table" not in name:
                p.copy_(torch.randn(p.shape, generator=g) / (p[0].numel() ** 0.5))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (0.1 if p.ndim == 1 else 1.0))
    return model.eval()


@pytest.fixture(scope="module")
def tiny():
    return randomise(build_model("kf-tiny"))


def conditions(seq: SeqConfig, b: int = 2, lt: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    cfg = PRESETS["kf-tiny"]
    return dict(visual=torch.randn(b, seq.visual_len, cfg.visual_dim, generator=g),
                sync=torch.randn(b, seq.sync_len, cfg.sync_dim, generator=g),
                text=torch.randn(b, lt, cfg.text_dim, generator=g))


def test_fresh_model_predicts_zero_velocity():
    m = build_model("kf-tiny")
    seq = SeqConfig(1.0)
    v = m.velocity(torch.randn(1, seq.latent_len, 16), torch.tensor([0.3]), m.prepare(seq=seq))
    assert torch.count_nonzero(v) == 0


def test_rope_frame_and_audio_at_same_instant_share_an_angle(tiny):
    seq = SeqConfig(1.0)                       # La = 44, Lv = 8: frame j is at audio position 5.5 j
    p = tiny.prepare(seq=seq)
    assert (seq.latent_len, seq.visual_len) == (44, 8)
    for j in (2, 4, 6):                        # t = 0.25, 0.5, 0.75 s
        i = int(j * seq.latent_len / seq.visual_len)
        torch.testing.assert_close(p.rot_visual[j], p.rot_audio[i], atol=2e-5, rtol=0)
    assert not torch.allclose(p.rot_visual[2], p.rot_audio[2])   # unscaled positions would differ


def test_rope_is_relative_and_norm_preserving():
    rot = rope_rotations(16, 64)
    q, k = torch.randn(1, 1, 1, 64).expand(1, 1, 16, 64), torch.randn(1, 1, 1, 64).expand(1, 1, 16, 64)
    rq, rk = apply_rope(q, rot), apply_rope(k, rot)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))
    dots = (rq[0, 0, 3:] * rk[0, 0, :-3]).sum(-1)          # offset 3 everywhere -> the same score
    torch.testing.assert_close(dots, dots[:1].expand_as(dots), atol=1e-4, rtol=0)


def test_joint_attention_carries_visual_tokens_into_audio(tiny):
    seq = SeqConfig(2.0)
    p = tiny.prepare(seq=seq, **conditions(seq))
    x, t = torch.randn(2, seq.latent_len, 16), torch.tensor([0.2, 0.7])
    # same pooled/global condition and same align feature; only the visual tokens differ
    q = dataclasses.replace(p, visual=p.visual + torch.randn_like(p.visual))
    with torch.no_grad():
        diff = (tiny.velocity(x, t, p) - tiny.velocity(x, t, q)).abs().max()
    assert diff > 1e-2


def test_padded_text_positions_do_not_change_the_output(tiny):
    seq = SeqConfig(1.5)
    c = conditions(seq, lt=7)
    mask = torch.tensor([[True] * 4 + [False] * 3, [True] * 7])
    garbage = c["text"].clone()
    garbage[0, 4:] = 100 * torch.randn(3, 128)
    x, t = torch.randn(2, seq.latent_len, 16), torch.tensor([0.4, 0.9])
    with torch.no_grad():
        v1 = tiny.velocity(x, t, tiny.prepare(seq=seq, **c, text_mask=mask))
        v2 = tiny.velocity(x, t, tiny.prepare(seq=seq, **{**c, "text": garbage}, text_mask=mask))
        # and the same as giving only the 4 real tokens
        short = {k: v[:1] for k, v in c.items()}
        short["text"] = short["text"][:, :4]
        v3 = tiny.velocity(x[:1], t[:1], tiny.prepare(seq=seq, **short))
    torch.testing.assert_close(v1, v2, atol=1e-6, rtol=0)
    torch.testing.assert_close(v1[:1], v3, atol=2e-5, rtol=0)


def test_prepare_velocity_equals_forward_and_batched_cfg(tiny):
    seq = SeqConfig(1.37)
    c = conditions(seq, lt=5)
    x, t = torch.randn(2, seq.latent_len, 16), torch.tensor([0.1, 0.6])
    with torch.no_grad():
        cond = tiny.prepare(seq=seq, **c, seconds_total=1.37)
        uncond = tiny.prepare(seq=seq, batch_size=2)           # 1 empty text token vs 5 real ones
        full = tiny(x, t, seq=seq, **c)
        assert torch.equal(full, tiny.velocity(x, t, cond))
        both = tiny.velocity(torch.cat([x, x]), torch.cat([t, t]), type(cond).cat([cond, uncond]))
    torch.testing.assert_close(both[:2], full, atol=2e-5, rtol=0)
    torch.testing.assert_close(both[2:], tiny.velocity(x, t, uncond), atol=2e-5, rtol=0)


@pytest.mark.parametrize("duration", [1.0, 2.37, 8.0, 9.99, 30.0])
def test_durations_give_the_right_shapes(tiny, duration):
    seq = SeqConfig(duration)
    p = tiny.prepare(seq=seq, **conditions(seq, b=1), seconds_total=duration)
    assert p.align.shape == (1, seq.latent_len, 128) and p.visual.shape == (1, seq.visual_len, 128)
    with torch.no_grad():
        v = tiny.velocity(torch.randn(1, seq.latent_len, 16), 0.5, p)
    assert v.shape == (1, seq.latent_len, 16) and torch.isfinite(v).all()


def test_missing_modalities_use_the_learned_empties(tiny):
    seq = SeqConfig(1.0)
    c = conditions(seq, b=1)
    x, t = torch.randn(1, seq.latent_len, 16), torch.tensor([0.5])
    e_v = tiny.empty_visual.expand(1, seq.visual_len, -1)
    e_s = tiny.empty_sync.expand(1, seq.sync_len, -1)
    e_t = tiny.empty_text.expand(1, -1, -1)
    with torch.no_grad():
        t2a = tiny.velocity(x, t, tiny.prepare(seq=seq, text=c["text"]))
        v2a = tiny.velocity(x, t, tiny.prepare(seq=seq, visual=c["visual"], sync=c["sync"]))
        none = tiny.velocity(x, t, tiny.prepare(seq=seq))
        tv2a = tiny.velocity(x, t, tiny.prepare(seq=seq, **c))
        torch.testing.assert_close(t2a, tiny.velocity(x, t, tiny.prepare(seq=seq, visual=e_v, sync=e_s,
                                                                         text=c["text"])), atol=1e-6, rtol=0)
        torch.testing.assert_close(v2a, tiny.velocity(x, t, tiny.prepare(seq=seq, visual=c["visual"],
                                                                         sync=c["sync"], text=e_t)), atol=1e-6, rtol=0)
    outs = [t2a, v2a, none, tv2a]
    for i in range(4):
        for j in range(i + 1, 4):
            assert (outs[i] - outs[j]).abs().max() > 1e-3


def test_duration_embeddings_interpolate_fractional_seconds(tiny):
    emb = tiny.seconds_total
    e = emb(torch.tensor([2.0, 3.0, 2.5, 99.0]))
    torch.testing.assert_close(e[2], (e[0] + e[1]) / 2)
    torch.testing.assert_close(e[3], emb.table.weight[-1])       # clamped to max_seconds
    seq = SeqConfig(4.0)
    with torch.no_grad():
        a = tiny.prepare(seq=seq, seconds_total=4.0).global_cond
        b = tiny.prepare(seq=seq, seconds_total=torch.tensor([12.0])).global_cond
    assert (a - b).abs().max() > 1e-3


def test_wrong_condition_shapes_are_explained(tiny):
    seq = SeqConfig(2.0)
    with pytest.raises(ValueError, match=r"visual must be \[B, 16, 128\]"):
        tiny.prepare(seq=seq, visual=torch.randn(1, 15, 128))
    p = tiny.prepare(seq=seq)
    with pytest.raises(ValueError, match="prepared conditions expect"):
        tiny.velocity(torch.randn(1, 80, 16), 0.5, p)


def test_half_precision_runs_close_to_float32(tiny):
    half = randomise(build_model("kf-tiny", dtype=torch.bfloat16))
    seq = SeqConfig(0.7)
    c = conditions(seq, b=1)
    x = torch.randn(1, seq.latent_len, 16)
    with torch.no_grad():
        v16 = half.velocity(x, 0.5, half.prepare(seq=seq, **c)).float()
        v32 = tiny.velocity(x, 0.5, tiny.prepare(seq=seq, **c))
    assert v16.dtype == torch.float32 and torch.isfinite(v16).all()
    assert (v16 - v32).abs().max() / v32.abs().max() < 0.1


@pytest.mark.parametrize("duration", [2.0, 3.37, 8.0])
def test_segment_aligned_sync_lands_at_the_frames_time(duration):
    # a feature seen only in frames 40-41 at 25 fps (1.60-1.68 s), in every segment that reads them
    from kf_core.config import SeqConfig
    from kf_core.model.dit import segment_aligned
    seq = SeqConfig(duration)
    s = torch.zeros(1, seq.sync_len, 3)
    for k in range(seq.sync_len):
        seg, t = divmod(k, seq.sync_tokens)
        if seg * seq.sync_stride + 2 * t == 40:
            s[0, k] = torch.tensor([1.0, 2.0, 3.0])
    a = segment_aligned(s, seq)
    assert a.shape == (1, seq.latent_len, 3)
    times = (torch.nonzero(a[0, :, 0]).flatten().double() + 0.5) * seq.hop * seq.latent_downsample / seq.sample_rate
    assert times.numel() > 0 and times.min() >= 1.60 and times.max() <= 1.68
    assert torch.allclose(a[0, a[0, :, 0] > 0], torch.tensor([1.0, 2.0, 3.0]))
    # MMAudio's even spreading puts the same tokens more than 0.1 s away from their frames
    spread = torch.nn.functional.interpolate(s.transpose(1, 2), size=seq.latent_len, mode="nearest-exact")[0, 0]
    spread_t = (torch.nonzero(spread).flatten().double() + 0.5) * seq.hop * seq.latent_downsample / seq.sample_rate
    assert ((spread_t - 1.64).abs() > 0.1).any()


def test_kf_presets_align_sync_by_frame_time():
    # MMAudio's networks keep their even spreading: the parity tests (test_mmaudio_*) guard that
    assert all(PRESETS[k].sync_upsample == "segments" for k in ("kf-1.5b", "kf-3b", "kf-6b", "kf-tiny"))
