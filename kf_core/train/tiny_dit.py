"""kf-tiny's DiT stage: flow matching (Alg. 1) on the feature shards with length-bucketed batches.

Clips are 2–10 s long (`tiny_workers.clip_duration`); a random batch is padded to its longest
clip, so on a CPU most of the work would go to padding; batches of similar lengths
(`FlowTrainConfig.bucket_pool`, `data.LengthBucketedOrder`: deterministic, resumable, every clip
once per epoch) avoid most of it.

Shape legend: C latent channels.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import torch

__all__ = ["train_dit"]


def _jsonable(d):
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    return list(d) if isinstance(d, tuple) else d


def train_dit(out: Path, work: Path, features: Path, *, steps: int, batch_size: int, lr: float, ema_decay: float,
              p_drop_video: float, p_drop_text: float, seed: int, stats: Mapping[str, torch.Tensor],
              device: str | torch.device = "cpu") -> list[dict]:
    """Feature shards -> kf-tiny DiT trained by `FlowTrainer` (run folder WORK/dit, resumable); the EMA
    weights go to OUT/dit.safetensors in float16 with the latent statistics mean/std [C]."""
    from ..loading.dit import save_dit
    from ..model import build_model
    from .distributed import DistContext
    from .features import FeatureShards
    from .flow import FlowTrainConfig, FlowTrainer
    from .runner import RunOptions, run
    from .schedules import InverseLRConfig
    data = FeatureShards([features])
    torch.manual_seed(seed)
    model = build_model("kf-tiny")  # the shipped architecture: one name, one network
    cfg = FlowTrainConfig(batch_size=batch_size, lr=lr, ema_decay=ema_decay, p_drop_video=p_drop_video,
                          p_drop_text=p_drop_text, seed=seed, bucket_pool=8,
                          # eq. 8 with constants independent of the run length, so a run of N steps is
                          # exactly the first N steps of a longer one (LR 1e-3 -> 3/7 of it at 4000)
                          schedule=InverseLRConfig(gamma_inv=3000.0, power=1.0, warmup=0.99))
    ctx = DistContext(device=torch.device(device))
    trainer = FlowTrainer(model, cfg, data, codec=data.codec, ctx=ctx)
    opts = RunOptions(work / "dit", steps=steps, log_every=10, ckpt_every=250, progress=False,
                      tensorboard=False, export_name="dit", export_kind="dit")
    model_cfg = dataclasses.asdict(model.cfg)
    rows = run(trainer, opts, config={"stage": "dit", "model": model_cfg, "train": _jsonable(cfg.to_dict()),
                                      "codec": data.codec}, export_config=model_cfg, ctx=ctx)
    model.load_state_dict(trainer.ema.weights_for(model))
    model.to("cpu")
    # float16 storage keeps the bundle small; load_dit casts back to the dtype asked for
    save_dit(model.eval().half(), out / "dit.safetensors", latent_mean=stats["mean"], latent_std=stats["std"])
    return rows
