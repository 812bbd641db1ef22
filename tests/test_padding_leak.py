"""Padded batches see the same model as clips alone (issue 17): on the shipped kf-tiny DiT, on the
kf-tiny architecture with random weights, and on a variant whose every stream has time convs
(kernel > 1: the convs are where padding leaked), a short clip's velocity inside a batch padded to
a longer neighbour equals its velocity alone, and changing only padded positions changes nothing.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kf_core.config import SeqConfig
from kf_core.loading.dit import load_dit
from kf_core.model import PRESETS, build_model
from kf_core.train.data import collate
from kf_core.train.features import FeatureRecord
from kf_core.train.flow import FlowObjective
from test_model_dit import randomise

SHIPPED = Path(__file__).resolve().parents[1] / "kf_core" / "assets" / "kf-tiny" / "dit.safetensors"
SHORT, LONG = 1.37, 2.9           # seconds: 5.9 and 5.4 audio tokens per visual frame
LT_SHORT, LT_LONG = 5, 9          # text tokens
CODEC = {"sample_rate": 44100, "hop": 512, "latent_downsample": 2}
WIDE = dict(audio_in_kernel=7, sync_in_kernel=7, visual_kernel=3, audio_kernel=3, text_kernel=3, final_kernel=7)


@pytest.fixture(scope="module", params=["shipped", "random", "all-convs"])
def model(request):
    if request.param == "shipped":
        return load_dit(SHIPPED)[0]
    torch.manual_seed(0)
    cfg = PRESETS["kf-tiny"] if request.param == "random" else PRESETS["kf-tiny"].with_(**WIDE)
    return randomise(build_model(cfg), seed=3)


def clip(seq: SeqConfig, lt: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(visual=torch.randn(1, seq.visual_len, 128, generator=g),
                sync=torch.randn(1, seq.sync_len, 128, generator=g),
                text=torch.randn(1, lt, 128, generator=g), x=torch.randn(1, seq.latent_len, 16, generator=g))


def pad(t: torch.Tensor, length: int, fill: str) -> torch.Tensor:
    n = length - t.shape[1]
    extra = torch.zeros(1, n, *t.shape[2:]) if fill == "zeros" else 50 * torch.randn(1, n, *t.shape[2:])
    return torch.cat([t, extra.to(t.dtype)], 1)


def lengths_mask(lens: list[int], length: int) -> torch.Tensor:
    return torch.arange(length)[None] < torch.tensor(lens)[:, None]


def alone(model, c: dict, streams: set[str], t: float) -> torch.Tensor:
    seq = SeqConfig(SHORT)
    p = model.prepare(seq=seq, **{k: c[k] for k in streams})
    return model.velocity(c["x"], torch.tensor([t]), p)[0]                      # La C


def batched(model, a: dict, b: dict, streams: set[str], t: float, fill: str = "zeros",
            garbage_in: str | None = None) -> torch.Tensor:
    """Clip a padded to clip b's lengths; only `garbage_in` (a stream name) gets random padding."""
    sa, sb = SeqConfig(SHORT), SeqConfig(LONG)
    full = {"visual": sb.visual_len, "sync": sb.sync_len, "text": LT_LONG, "x": sb.latent_len}
    cond = {k: torch.cat([pad(a[k], n, fill if k == garbage_in else "zeros"), b[k]]) for k, n in full.items()}
    masks = dict(audio_mask=lengths_mask([sa.latent_len, sb.latent_len], sb.latent_len),
                 visual_mask=lengths_mask([sa.visual_len, sb.visual_len], sb.visual_len),
                 sync_mask=lengths_mask([sa.sync_len, sb.sync_len], sb.sync_len))
    if "text" in streams:
        masks["text_mask"] = lengths_mask([LT_SHORT, LT_LONG], LT_LONG)
    p = model.prepare(seq=sb, **{k: cond[k] for k in streams}, **masks, batch_size=2,
                      seconds_total=torch.tensor([SHORT, LONG]))
    v = model.velocity(cond["x"], torch.tensor([t, 0.8]), p)
    return v[0, :sa.latent_len]                                                   # La C


@pytest.mark.parametrize("streams", [{"visual"}, {"sync"}, {"text"}, {"visual", "sync", "text"}],
                         ids=["visual", "sync", "text", "all"])
def test_a_clip_alone_equals_the_clip_in_a_padded_batch(model, streams):
    a, b = clip(SeqConfig(SHORT), LT_SHORT, 1), clip(SeqConfig(LONG), LT_LONG, 2)
    with torch.no_grad():
        ref = alone(model, a, streams, 0.35)
        got = batched(model, a, b, streams, 0.35)
    scale = ref.abs().max()
    assert scale > 0.1  # a live model, not adaLN-Zero's zeros
    torch.testing.assert_close(got, ref, atol=2e-5 * float(scale), rtol=1e-5)


def test_changing_only_padded_positions_changes_nothing(model):
    a, b = clip(SeqConfig(SHORT), LT_SHORT, 1), clip(SeqConfig(LONG), LT_LONG, 2)
    streams = {"visual", "sync", "text"}
    torch.manual_seed(7)
    with torch.no_grad():
        zeros = batched(model, a, b, streams, 0.6)
        for stream in ("visual", "sync", "text", "x"):  # x: the noisy latent's padded audio tokens
            noisy = batched(model, a, b, streams, 0.6, fill="garbage", garbage_in=stream)
            assert torch.equal(zeros, noisy), stream


def test_unpadded_masks_take_the_unmasked_path(model):
    seq = SeqConfig(SHORT)
    a = clip(seq, LT_SHORT, 4)
    ones = {f"{k}_mask": torch.ones(1, n, dtype=torch.bool) for k, n in
            (("audio", seq.latent_len), ("visual", seq.visual_len), ("sync", seq.sync_len))}
    cond = {k: a[k] for k in ("visual", "sync", "text")}
    with torch.no_grad():
        p_plain = model.prepare(seq=seq, **cond)
        p_mask = model.prepare(seq=seq, **cond, **ones, text_mask=torch.ones(1, LT_SHORT, dtype=torch.bool))
        assert p_mask.audio_mask is None and p_mask.visual_mask is None and p_mask.rot_visual.ndim == 4
        assert torch.equal(model.velocity(a["x"], 0.5, p_plain), model.velocity(a["x"], 0.5, p_mask))


def test_bad_masks_are_explained(model):
    seq = SeqConfig(SHORT)
    holes = torch.ones(1, seq.visual_len, dtype=torch.bool)
    holes[0, 3] = False
    with pytest.raises(ValueError, match="real tokens first"):
        model.prepare(seq=seq, visual_mask=holes)
    with pytest.raises(ValueError, match=r"audio_mask must be \[B=1, "):
        model.prepare(seq=seq, audio_mask=torch.ones(1, 3, dtype=torch.bool))
    part = lengths_mask([seq.sync_len - 3], seq.sync_len)
    with pytest.raises(ValueError, match="whole segments"):
        model.prepare(seq=seq, sync_mask=part)


def _record(seq: SeqConfig, c: dict, *, video: bool, text: bool) -> FeatureRecord:
    return FeatureRecord(latent_mean=c["x"][0], latent_std=torch.zeros_like(c["x"][0]), duration=seq.duration,
                         visual=c["visual"][0] if video else None, sync=c["sync"][0] if video else None,
                         text=c["text"][0] if text else None)


def test_the_trainer_collate_gives_each_clip_its_alone_velocity(model):
    """Records -> collate -> FlowObjective.prepare (groups by modality, joins with Prepared.cat):
    a short clip with text only, one with video only, and a long one with both."""
    sa, sb = SeqConfig(SHORT), SeqConfig(LONG)
    a, a2, b = clip(sa, LT_SHORT, 5), clip(sa, LT_SHORT, 8), clip(sb, LT_LONG, 6)
    recs = [_record(sa, a, video=False, text=True), _record(sa, a2, video=True, text=False),
            _record(sb, b, video=True, text=True)]
    batch = collate(recs, CODEC)
    assert batch.visual_mask.sum(1).tolist() == [sa.visual_len, sa.visual_len, sb.visual_len]
    assert batch.sync_mask.sum(1).tolist() == [sa.sync_len, sa.sync_len, sb.sync_len]
    t = torch.tensor([0.3, 0.5, 0.7])
    with torch.no_grad():
        prepared, order = FlowObjective(model).prepare(batch, batch.has_video, batch.has_text)
        v = model.velocity(batch.latent_mean[order], t[order], prepared)
        for i, c, streams in ((0, a, {"text"}), (1, a2, {"visual", "sync"})):
            got = v[order.tolist().index(i), :sa.latent_len]
            ref = alone(model, c, streams, float(t[i]))
            torch.testing.assert_close(got, ref, atol=2e-5 * float(ref.abs().max()), rtol=1e-5)
