"""The training loop around a trainer: progress bar, metrics log, periodic checkpoints, resume, export.

Works for any trainer exposing `step`, `train_step() -> metrics`, `state_dict()`, `load_state_dict()`
and `export_state() -> {name: tensor}`; only rank 0 writes files or shows progress. Under FSDP the
checkpoints are sharded DCP folders written by every rank (`checkpoint.py`), otherwise rank 0 writes
one file; either kind resumes on any number of ranks.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .checkpoint import (export_weights, latest_checkpoint, load_checkpoint, load_sharded_checkpoint,
                         remove_checkpoint, save_checkpoint, save_sharded_checkpoint)
from .distributed import DistContext, barrier
from .metrics import MetricsLog

__all__ = ["RunOptions", "run"]

log = logging.getLogger(__name__)


class RunOptions:
    """Where and how often a run logs, checkpoints and exports."""

    def __init__(self, out: str | Path, *, steps: int, log_every: int = 10, ckpt_every: int = 500,
                 keep: int = 2, resume: bool = True, progress: bool = True, tensorboard: bool = True,
                 export_name: str = "model", export_kind: str = "dit") -> None:
        if steps <= 0 or log_every <= 0 or ckpt_every <= 0:
            raise ValueError(f"steps, log_every and ckpt_every must be positive, got {steps}, {log_every}, {ckpt_every}")
        self.out, self.steps, self.log_every, self.ckpt_every = Path(out), steps, log_every, ckpt_every
        self.keep, self.resume, self.progress, self.tensorboard = keep, resume, progress, tensorboard
        self.export_name, self.export_kind = export_name, export_kind


def _prune(folder: Path, keep: int) -> None:
    ckpts = sorted((p for p in folder.glob("step_*") if p.name.removesuffix(".pt")[5:].isdigit()),
                   key=lambda p: int(p.name.removesuffix(".pt")[5:]))
    for p in ckpts[:-keep] if keep > 0 else []:
        remove_checkpoint(p)


def run(trainer, opts: RunOptions, *, config: Mapping[str, Any], export_config: Mapping[str, Any],
        ctx: DistContext | None = None) -> list[dict[str, float]]:
    """Train until `opts.steps`, resuming from the newest checkpoint in OUT/checkpoints; -> logged rows."""
    ctx = ctx or DistContext()
    ckpt_dir = opts.out / "checkpoints"
    if opts.resume:
        found = latest_checkpoint(ckpt_dir)
        if found is not None:
            payload = load_sharded_checkpoint(found, trainer.state_dict()) if found.is_dir() else load_checkpoint(found)
            trainer.load_state_dict(payload)
            log.info("resumed from %s at step %d", found, trainer.step)
    metrics = MetricsLog(opts.out, tensorboard=opts.tensorboard) if ctx.is_main else None
    bar = None
    if ctx.is_main and opts.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=opts.steps, initial=trainer.step, desc="train", unit="step", dynamic_ncols=True)
    rows = []
    try:
        while trainer.step < opts.steps:
            m = trainer.train_step()
            if bar is not None:
                bar.update(1)
                post = {"loss": f"{m['loss']:.4f}", "lr": f"{m['lr']:.2e}"}
                if "samples_per_s" in m:
                    post["samples/s"] = f"{m['samples_per_s']:.1f}"
                bar.set_postfix(post)
            if trainer.step % opts.log_every == 0 or trainer.step == opts.steps:
                rows.append({"step": trainer.step, **m})
                if metrics is not None:
                    metrics.write(trainer.step, m)
            if trainer.step % opts.ckpt_every == 0 or trainer.step == opts.steps:
                state = trainer.state_dict()  # collective under FSDP
                if ctx.sharded:
                    save_sharded_checkpoint(ckpt_dir / f"step_{trainer.step}", step=trainer.step, config=config,
                                            ctx=ctx, **state)
                elif ctx.is_main:
                    save_checkpoint(ckpt_dir / f"step_{trainer.step}.pt", step=trainer.step, config=config, **state)
                if ctx.is_main:
                    _prune(ckpt_dir, opts.keep)
                barrier(ctx)
        weights = trainer.export_state()
        if ctx.is_main:
            for suffix, sd in weights.items():
                export_weights(sd, opts.out / f"{opts.export_name}{suffix}.safetensors",
                               config=export_config, kind=opts.export_kind)
    finally:
        if bar is not None:
            bar.close()
        if metrics is not None:
            metrics.close()
    return rows
