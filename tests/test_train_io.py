"""Feature shards, the extractor, checkpoints and the run loop (CSV, resume, export)."""
from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from kf_core.loading.state import CheckpointError, read_state_dict
from kf_core.train.checkpoint import load_checkpoint, save_checkpoint
from kf_core.train.data import collate
from kf_core.train.ema import EMA
from kf_core.train.extract import Clip, FeatureExtractor, extract, parse_spec, read_caption_csv
from kf_core.train.features import FeatureShards
from kf_core.train.flow import FlowTrainConfig, FlowTrainer
from kf_core.train.runner import RunOptions, run
from test_train_flow import CODEC, StandInDiT, make_records


class StandInEncoderVAE(nn.Module):
    def encode(self, mel):  # 1 M F -> posterior [1, 4, F/2]
        pooled = mel.unflatten(-1, (-1, 2)).mean(-1)[:, :4]
        return SimpleNamespace(mean=pooled, logvar=torch.full_like(pooled, -2.0))


def test_extractor_writes_shards_that_train_reads(tmp_path):
    ex = FeatureExtractor(
        mel_fn=lambda w: w.reshape(1, -1, 16).transpose(1, 2)[:, :8],   # 1 8 F
        vae=StandInEncoderVAE(), normalise=lambda m, s: ((m - 1.0) / 2.0, s / 2.0),
        visual_fn=lambda f: f.flatten(1)[:, :6], sync_fn=lambda f: f.flatten(2)[:, :24, :5],
        text_fn=lambda caps: (torch.ones(1, 3, 7), torch.tensor([[True, True, False]])))
    clips = [Clip(wave=torch.randn(16 * 64), duration=1.0, visual_frames=torch.rand(8, 3, 4, 4),
                  sync_frames=torch.rand(25, 3, 4, 4), caption="a ball bounces", source="syn/0"),
             Clip(wave=torch.randn(16 * 48), duration=0.75, caption=None, source="ac/1")]
    paths = extract(clips, ex, tmp_path, codec=CODEC, shard_size=1)
    assert len(paths) == 2
    ds = FeatureShards([tmp_path])
    assert len(ds) == 2 and ds.codec == CODEC
    r0, r1 = ds[0], ds[1]
    assert r0.latent_mean.shape == (32, 4) and r1.latent_mean.shape == (24, 4)
    assert torch.allclose(r0.latent_std, torch.full((32, 4), torch.tensor(-1.0).exp().item() / 2))
    assert r0.visual.shape == (8, 6) and r0.text_mask.tolist() == [True, True, False]
    assert r1.visual is None and r1.text is None and r0.caption == "a ball bounces"
    b = collate([r0, r1], ds.codec)
    assert b.audio_mask.sum(1).tolist() == [32, 24] and b.has_video.tolist() == [True, False]


def test_specs_and_caption_csv(tmp_path):
    assert parse_spec("synthetic:64") == ("synthetic", ["64"])
    assert parse_spec("videos:/d,/c.csv") == ("videos", ["/d", "/c.csv"])
    with pytest.raises(ValueError, match="synthetic:N"):
        parse_spec("vggsound")
    p = tmp_path / "caps.csv"
    p.write_text("youtube_id,caption\nabc,dog barks\n")
    assert read_caption_csv(p) == {"abc": "dog barks"}
    p.write_text("name,what\nabc,dog\n")
    with pytest.raises(ValueError, match="file column"):
        read_caption_csv(p)


def test_checkpoint_is_atomic_and_rejects_foreign_files(tmp_path):
    path = save_checkpoint(tmp_path / "step_1.pt", step=1, config={"a": 1}, model={"w": torch.ones(2)})
    assert load_checkpoint(path)["config"] == {"a": 1}
    assert not list(tmp_path.glob(".*tmp"))
    torch.save({"w": torch.ones(1)}, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not a kf-train-v1"):
        load_checkpoint(tmp_path / "weights.pt")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "cut.pt")


def test_ema_tracks_the_average():
    m = nn.Linear(2, 1, bias=False)
    ema = EMA(m, decay=0.5, warmup=False)
    with torch.no_grad():
        m.weight.fill_(2.0)
    start = ema.shadow["weight"].clone()
    ema.update(m)
    assert torch.allclose(ema.shadow["weight"], 0.5 * start + 1.0)


def test_run_loop_logs_resumes_and_exports(tmp_path):
    recs = make_records(16)
    cfg = FlowTrainConfig(batch_size=4, lr=1e-3, seed=2)

    def trainer():
        torch.manual_seed(0)
        return FlowTrainer(StandInDiT(), cfg, recs, codec=CODEC)

    opts = dict(log_every=2, ckpt_every=3, progress=False, tensorboard=False)
    ref = run(trainer(), RunOptions(tmp_path / "ref", steps=6, **opts), config={}, export_config={"w": 32})
    run(trainer(), RunOptions(tmp_path / "cut", steps=3, **opts), config={}, export_config={"w": 32})
    resumed = run(trainer(), RunOptions(tmp_path / "cut", steps=6, **opts), config={}, export_config={"w": 32})
    assert [r["loss"] for r in resumed] == [r["loss"] for r in ref if r["step"] > 3]
    with open(tmp_path / "ref" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    assert {"loss", "lr", "grad_norm", "samples_per_s"} <= set(rows[0])
    ema = read_state_dict(tmp_path / "ref" / "model_ema.safetensors")
    model = StandInDiT()
    model.load_state_dict(ema)  # the exported names fit the bare model
    assert sorted(p.name for p in (tmp_path / "ref" / "checkpoints").iterdir()) == ["step_3.pt", "step_6.pt"]
