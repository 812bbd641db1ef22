"""kf-tiny's DiT stage: flow matching (Alg. 1) on the feature shards with length-bucketed batches.

Clips are 2–10 s long (`tiny_workers.clip_duration`); a random batch is padded to its longest
clip, so on a CPU most of the work would go to padding. `BucketedOrder` draws batches of similar lengths instead (a drop-in for the
trainer's `BatchOrder`: deterministic, resumable, every clip once per epoch).

Shape legend: C latent channels.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from .data import BatchOrder

__all__ = ["BucketedOrder", "train_dit"]


class BucketedOrder(BatchOrder):
    """Batches of clips with similar lengths, in a seeded order that a checkpoint can resume.

    Per epoch e (seed + e): shuffle all clips, cut the order into pools of `pool` batches, sort
    each pool by length, cut it into batches, and shuffle the batches. Position, resume and the
    epoch rollover are `BatchOrder`'s (one rank).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, seed: int = 0, pool: int = 8) -> None:
        if batch_size <= 0 or pool <= 0:
            raise ValueError(f"BucketedOrder needs positive batch_size and pool, got {batch_size}, {pool}")
        if len(lengths) < batch_size:
            raise ValueError(f"{len(lengths)} clips cannot fill one batch of {batch_size}; add data or lower "
                             "the batch size")
        super().__init__(len(lengths), batch_size, seed=seed)
        self.lengths = torch.as_tensor(list(lengths))
        self.pool = pool
        self._cache: tuple[int, list[list[int]]] | None = None

    def _batches(self, epoch: int) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        g = torch.Generator().manual_seed(self.seed + epoch)
        perm = torch.randperm(self.n, generator=g)[: self.per_epoch * self.batch_size]
        size = self.pool * self.batch_size
        batches = []
        for start in range(0, len(perm), size):
            chunk = perm[start:start + size]
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches += [chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        order = torch.randperm(len(batches), generator=g).tolist()
        self._cache = (epoch, [batches[i] for i in order])
        return self._cache[1]

    def _indices(self, epoch: int, batch: int) -> list[int]:
        return self._batches(epoch)[batch]


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
                          p_drop_text=p_drop_text, seed=seed,
                          # eq. 8 with constants independent of the run length, so a run of N steps is
                          # exactly the first N steps of a longer one (LR 1e-3 -> 3/7 of it at 4000)
                          schedule=InverseLRConfig(gamma_inv=3000.0, power=1.0, warmup=0.99))
    ctx = DistContext(device=torch.device(device))
    trainer = FlowTrainer(model, cfg, data, codec=data.codec, ctx=ctx)
    trainer.order = BucketedOrder([data[i].latent_mean.shape[0] for i in range(len(data))], batch_size, seed=seed)
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
