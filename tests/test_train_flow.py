"""Flow trainer: schedules, dropout to the empties, masked loss, learning, exact resume.

`StandInDiT` is a test double with the DiT's prepare/velocity contract (docs/ENGINE.md),
small enough to train a few hundred steps in seconds; it is never shipped.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kf_core.train.checkpoint import load_checkpoint, save_checkpoint
from kf_core.train.data import LengthBucketedOrder, collate
from kf_core.train.features import FeatureRecord
from kf_core.train.flow import FlowObjective, FlowTrainConfig, FlowTrainer
from kf_core.train.schedules import InverseLR, InverseLRConfig, VAEStages, inverse_lr, vae_loss_weights

CODEC = {"sample_rate": 1024, "hop": 16, "latent_downsample": 2}  # 32 latent tokens per second
C, DV, DS, DT = 4, 6, 5, 7


class StandInPrepared:
    def __init__(self, cond: torch.Tensor) -> None:
        self.cond = cond  # B D

    @staticmethod
    def cat(items):
        return StandInPrepared(torch.cat([p.cond for p in items]))


class StandInDiT(nn.Module):
    """prepare() pools the conditions (learned empties for None), velocity() is a small MLP."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.empty_video = nn.Parameter(torch.zeros(DV))
        self.empty_text = nn.Parameter(torch.zeros(DT))
        self.cond = nn.Linear(DV + DS + DT + 2, width)
        self.net = nn.Sequential(nn.Linear(C + 1 + width, width), nn.SiLU(), nn.Linear(width, C))
        self.calls: list[dict] = []

    def prepare(self, *, seq, visual=None, sync=None, text=None, text_mask=None, visual_mask=None,
                sync_mask=None, audio_mask=None, seconds_start=0.0, seconds_total=None, batch_size=None):
        self.calls.append({"visual": visual, "text": text, "batch_size": batch_size})
        b = batch_size
        v = visual.mean(1) if visual is not None else self.empty_video.expand(b, DV)
        s = sync.mean(1) if sync is not None else self.empty_video[:DS].expand(b, DS)
        t = text.mean(1) if text is not None else self.empty_text.expand(b, DT)
        secs = torch.stack([torch.as_tensor(seconds_start).float().expand(b),
                            torch.as_tensor(seconds_total).float().expand(b)], -1)
        return StandInPrepared(self.cond(torch.cat([v, s, t, secs], -1)))

    def velocity(self, x, t, prepared):
        c = prepared.cond[:, None].expand(-1, x.shape[1], -1)
        return self.net(torch.cat([x, t[:, None, None].expand(-1, x.shape[1], 1), c], -1))


def make_records(n: int, *, seed: int = 0, durations=(1.0,), video=True, text=True):
    """Clips whose latent is a constant set by their (video, text) features: learnable from conditions."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        dur = durations[i % len(durations)]
        la = math.ceil(dur * 32)
        code = torch.randn(C, generator=g)
        vis = code[:, None].repeat(1, 3)[:DV].T.reshape(-1)[:DV] if video else None
        rec = FeatureRecord(
            latent_mean=code.expand(la, C).clone(), latent_std=torch.full((la, C), 0.05), duration=dur,
            visual=vis.expand(int(dur * 8), DV).clone() if video else None,
            sync=torch.zeros(24, DS) if video else None,
            text=torch.cat([code, code])[:DT].expand(3, DT).clone() if text else None)
        out.append(rec)
    return out


def test_inverse_lr_matches_eq8_at_chosen_steps():
    cfg = InverseLRConfig(gamma_inv=100.0, power=0.5, warmup=0.9, lr_final=2e-5)
    for step in (0, 1, 10, 1000, 10**6):
        expect = max(2e-5, 1e-3 * (1 + step / 100.0) ** -0.5) * (1 - 0.9 ** (step + 1))
        assert inverse_lr(step, 1e-3, cfg) == pytest.approx(expect, rel=1e-12)
    assert inverse_lr(10**6, 1e-3, cfg) == pytest.approx(2e-5 * (1 - 0.9 ** (10**6 + 1)))
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = InverseLR(opt, cfg)
    seen = []
    for _ in range(30):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([inverse_lr(s, 1e-3, cfg) for s in range(30)], rel=1e-12)
    assert seen[0] == pytest.approx(1e-3 * 0.1, rel=1e-9)  # w = 0.9: the first step runs at 10 %
    with pytest.raises(ValueError, match="w must be in"):
        InverseLRConfig(warmup=1.0)


def test_vae_stage_weights_follow_alg2():
    s = VAEStages(stage1_end=10, stage2_end=20, stage3_end=40, kl_upper=0.5, gan_upper=0.2)
    w = vae_loss_weights(10, s)
    assert (w.stage, w.kl, w.gan, w.freeze_encoder) == (1, 0.0, 0.0, False)
    assert vae_loss_weights(15, s).kl == pytest.approx(0.25) and vae_loss_weights(15, s).gan == 0
    assert vae_loss_weights(20, s).kl == pytest.approx(0.5) and vae_loss_weights(20, s).stage == 2
    w = vae_loss_weights(30, s)
    assert (w.stage, w.kl, w.freeze_encoder) == (3, 0.5, False) and w.gan == pytest.approx(0.1)
    w = vae_loss_weights(41, s)
    assert (w.stage, w.kl, w.gan, w.freeze_encoder) == (4, 0.5, 0.2, True)
    with pytest.raises(ValueError, match="stage1_end < stage2_end"):
        VAEStages(stage1_end=5, stage2_end=5, stage3_end=9)


def test_bucketed_order_covers_every_clip_once_per_epoch_with_similar_lengths():
    lengths = list(torch.randint(80, 520, (96,), generator=torch.Generator().manual_seed(0)).tolist())
    order = LengthBucketedOrder(lengths, 8, seed=3, pool=4)
    epoch = [order.next_indices() for _ in range(order.per_epoch)]
    assert sorted(i for b in epoch for i in b) == list(range(96))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in epoch) / len(epoch)
    random_spread = 0.8 * (520 - 80)  # the expected range of 8 uniform draws is 7/9 of the interval
    assert spread < 0.5 * random_spread
    assert order.next_indices() != epoch[0] or order.epoch == 1  # a new epoch reshuffles


def test_bucketed_order_resumes_exactly():
    lengths = list(range(40, 140))
    a = LengthBucketedOrder(lengths, 6, seed=1)
    for _ in range(23):
        a.next_indices()
    b = LengthBucketedOrder(lengths, 6, seed=1)
    b.load_state_dict(a.state_dict())
    assert [a.next_indices() for _ in range(30)] == [b.next_indices() for _ in range(30)]
    with pytest.raises(ValueError, match="same features"):
        LengthBucketedOrder(lengths[:50], 6).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="one global batch needs"):
        LengthBucketedOrder([10, 20], 6)


def test_bucketed_global_batches_split_over_ranks_like_one_rank():
    lengths = [float(x) for x in torch.rand(64, generator=torch.Generator().manual_seed(2)) * 10 + 2]
    one = LengthBucketedOrder(lengths, 8, seed=4, pool=2)
    ranks = [LengthBucketedOrder(lengths, 4, seed=4, pool=2, rank=r, world=2) for r in (0, 1)]
    for _ in range(10):  # across an epoch boundary (8 batches per epoch)
        assert one.next_indices() == ranks[0].next_indices() + ranks[1].next_indices()


def test_collate_pads_variable_durations_with_masks():
    recs = make_records(2, durations=(1.0,)) + make_records(1, durations=(0.7,), video=False, text=False)
    b = collate(recs, CODEC)
    assert b.latent_mean.shape == (3, 32, C) and b.seq.latent_len == 32
    assert b.audio_mask.sum(1).tolist() == [32, 32, 23]
    assert b.has_video.tolist() == [True, True, False] and b.has_text.tolist() == [True, True, False]
    assert b.visual.shape == (3, 8, DV) and torch.all(b.visual[2] == 0)
    assert b.seconds_total.tolist() == pytest.approx([1.0, 1.0, 0.7])


def test_loss_ignores_padded_audio_tokens():
    model = StandInDiT()
    obj = FlowObjective(model)
    recs = make_records(2, durations=(1.0, 0.75))
    b = collate(recs, CODEC)
    x0 = torch.randn_like(b.latent_mean)
    t = torch.rand(2)
    keep = torch.ones(2, dtype=torch.bool)
    loss = obj(b, x0, b.latent_mean, t, keep, keep)
    x1 = b.latent_mean.clone()
    x1[1, 24:] = 100.0  # garbage in the padding of the short clip
    x0b = x0.clone()
    x0b[1, 24:] = -50.0
    assert obj(b, x0b, x1, t, keep, keep).item() == pytest.approx(loss.item(), rel=1e-6)


def test_modality_dropout_substitutes_empties_at_the_configured_rate():
    recs = make_records(8) + make_records(8, video=False)
    model = StandInDiT()
    cfg = FlowTrainConfig(batch_size=16, p_drop_video=0.3, p_drop_text=0.0, ema_decay=0.9)
    trainer = FlowTrainer(model, cfg, recs, codec=CODEC)
    used_v, n_with_video = 0, 0
    for _ in range(40):
        model.calls.clear()
        b = trainer.next_batch()
        r = trainer.draw(b)
        trainer.step += 1
        assert not r["use_video"][~b.has_video].any()  # clips without video always use the empty
        assert r["use_text"].all()                      # p_drop_text = 0: text never dropped
        FlowObjective(model).prepare(b, r["use_video"], r["use_text"])
        # the model saw video for exactly the clips that keep it, None (its empties) for the rest
        with_v = [c for c in model.calls if c["visual"] is not None]
        assert sum(c["batch_size"] for c in with_v) == int(r["use_video"].sum())
        assert sum(c["batch_size"] for c in model.calls) == 16
        used_v += int(r["use_video"].sum())
        n_with_video += int(b.has_video.sum())
    kept = used_v / n_with_video  # 320 draws of Bernoulli(0.7): sd ≈ 0.026
    assert abs(kept - 0.7) < 0.08


def test_training_reduces_flow_loss():
    torch.manual_seed(0)
    recs = make_records(32, durations=(1.0, 0.75))
    cfg = FlowTrainConfig(batch_size=8, lr=3e-3, schedule=InverseLRConfig(warmup=0.9, gamma_inv=1e4),
                          p_drop_video=0.1, p_drop_text=0.1, seed=1)
    trainer = FlowTrainer(StandInDiT(), cfg, recs, codec=CODEC)
    losses = [trainer.train_step()["loss"] for _ in range(300)]
    first, last = sum(losses[:30]) / 30, sum(losses[-30:]) / 30
    assert all(math.isfinite(x) for x in losses)
    assert last < 0.6 * first, (first, last)


def test_interrupt_and_resume_reproduces_the_trajectory(tmp_path):
    recs = make_records(24, durations=(1.0, 0.75))
    cfg = FlowTrainConfig(batch_size=8, lr=1e-3, schedule=InverseLRConfig(warmup=0.5), seed=3)

    torch.manual_seed(0)
    full = FlowTrainer(StandInDiT(), cfg, recs, codec=CODEC)
    reference = [full.train_step()["loss"] for _ in range(8)]

    torch.manual_seed(0)
    first = FlowTrainer(StandInDiT(), cfg, recs, codec=CODEC)
    got = [first.train_step()["loss"] for _ in range(5)]  # crosses an epoch boundary (3 batches/epoch)
    path = save_checkpoint(tmp_path / "step_5.pt", step=first.step, config={"train": cfg.to_dict()},
                           **first.state_dict())
    del first
    torch.manual_seed(123)  # a different process state must not matter
    payload = load_checkpoint(path)
    resumed = FlowTrainer(StandInDiT(), FlowTrainConfig.from_dict(payload["config"]["train"]), recs, codec=CODEC)
    resumed.load_state_dict(payload)
    got += [resumed.train_step()["loss"] for _ in range(3)]
    assert got == reference  # bit-exact
    ema_full = full.ema.state_dict()["shadow"]
    ema_res = resumed.ema.state_dict()["shadow"]
    assert all(torch.equal(ema_full[k], ema_res[k]) for k in ema_full)


def test_activation_checkpointing_gives_the_same_gradients():
    from kf_core.model import build_model
    from test_model_dit import randomise
    torch.manual_seed(0)
    model = randomise(build_model("kf-tiny")).train()
    tiny_codec = {"sample_rate": 44100, "hop": 512, "latent_downsample": 2}
    from kf_core.config import SeqConfig
    g = torch.Generator().manual_seed(1)
    recs = []
    for dur in (0.8, 1.2):
        seq = SeqConfig(dur)
        recs.append(FeatureRecord(latent_mean=torch.randn(seq.latent_len, 16, generator=g),
                                  latent_std=torch.zeros(seq.latent_len, 16), duration=dur,
                                  visual=torch.randn(seq.visual_len, 128, generator=g),
                                  sync=torch.randn(seq.sync_len, 128, generator=g), text=torch.randn(4, 128, generator=g)))
    b = collate(recs, tiny_codec)
    keep = torch.ones(2, dtype=torch.bool)
    x0, t = torch.randn(b.latent_mean.shape, generator=g), torch.tensor([0.3, 0.8])
    grads, calls = [], []
    block = model.single_blocks[0]
    inner = block.forward

    def counted(*args):
        calls.append(1)
        return inner(*args)
    block.forward = counted
    for flag in (False, True):
        model.activation_checkpointing = flag
        model.zero_grad()
        calls.clear()
        FlowObjective(model)(b, x0, b.latent_mean, t, keep, keep).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
        assert len(calls) == (2 if flag else 1)  # checkpointed blocks run again in backward
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 50
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], atol=1e-6, rtol=1e-5)
