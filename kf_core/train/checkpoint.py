"""Resumable training checkpoints (atomic, weights-only loadable) and inference-weight export.

A checkpoint holds step, model, EMA, optimiser, scheduler, data position, every RNG state and the
training config as JSON, in one of two layouts:
- `step_N.pt`: one `torch.save` dict of tensors and plain Python values (single process / DDP,
  written by rank 0), read back with `torch.load(weights_only=True)`;
- `step_N/`: a torch.distributed.checkpoint (DCP) folder written by every FSDP rank in parallel,
  each its own shards, plus `meta.json` (format, step, config). DCP reshards on load, so it resumes
  on any number of ranks, a single process included (`load_sharded_checkpoint`).
Both are published atomically (written under a temporary name, then renamed).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..loading.state import CheckpointError, save_state_dict

__all__ = ["rng_state", "set_rng_state", "save_checkpoint", "load_checkpoint", "latest_checkpoint",
           "save_sharded_checkpoint", "load_sharded_checkpoint", "remove_checkpoint", "export_weights"]

CKPT_FORMAT = "kf-train-v1"


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every RNG the trainer touches -> a dict of tensors and plain values."""
    np_name, np_keys, np_pos, np_gauss, np_cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": _to_plain(random.getstate()),
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_gauss), "gauss": float(np_cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: Mapping[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what `rng_state` captured."""
    random.setstate(_to_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None:
        if "generator" not in state:
            raise CheckpointError("checkpoint has no trainer generator state; it was not written by this trainer")
        generator.set_state(state["generator"])


def _to_plain(x):
    return [_to_plain(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuple(x):
    return tuple(_to_tuple(v) for v in x) if isinstance(x, list) else x


def save_checkpoint(path: str | Path, *, step: int, config: Mapping[str, Any], **parts: Any) -> Path:
    """Write {step, config, **parts} to `path` atomically (temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CKPT_FORMAT, "step": int(step), "config": json.dumps(dict(config), sort_keys=True)}
    payload.update(parts)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint; the config comes back as a dict under "config"."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training checkpoint not found: {path}")
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad pickle
        raise CheckpointError(f"{path.name} is not a readable training checkpoint ({type(e).__name__}: {e}); "
                              "it may be truncated — resume from an earlier one") from e
    if not isinstance(payload, dict) or payload.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{path.name} is not a {CKPT_FORMAT} training checkpoint "
                              "(inference weights cannot be resumed; start a new run with --init instead)")
    payload["config"] = json.loads(payload["config"])
    return payload


def save_sharded_checkpoint(path: str | Path, *, step: int, config: Mapping[str, Any], ctx, **parts: Any) -> Path:
    """Every rank writes its shards of {**parts} to the DCP folder `path` (collective); rank 0 adds
    meta.json and publishes the folder once all ranks are done."""
    import torch.distributed.checkpoint as dcp
    from .distributed import barrier
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if ctx.is_main:
        shutil.rmtree(tmp, ignore_errors=True)  # a leftover of a run killed while saving
        tmp.mkdir(parents=True)
    barrier(ctx)
    dcp.save(dict(parts), checkpoint_id=str(tmp))
    if ctx.is_main:
        meta = {"format": CKPT_FORMAT, "step": int(step), "config": dict(config), "world": ctx.world}
        (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
        tmp.replace(path)
    barrier(ctx)
    return path


def load_sharded_checkpoint(path: str | Path, template: dict[str, Any]) -> dict[str, Any]:
    """A DCP checkpoint folder -> `template` (a trainer's own `state_dict()`: its keys, shapes and
    shardings) filled from it, plus "step" and "config". Collective when distributed."""
    import torch.distributed.checkpoint as dcp
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable sharded training checkpoint ({e}); "
                              "resume from an earlier one") from e
    if meta.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{path} is not a {CKPT_FORMAT} training checkpoint")
    import torch.distributed as dist
    state = dict(template)
    with warnings.catch_warnings():  # DCP warns that it loads in one process, which is what we ask
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=str(path), no_dist=not dist.is_initialized())
    state.update(step=meta["step"], config=meta["config"])
    return state


def remove_checkpoint(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def latest_checkpoint(folder: str | Path, prefix: str = "step_") -> Path | None:
    """The checkpoint (a step_N.pt file or a finished step_N/ DCP folder) with the highest step in
    `folder`, or None."""
    folder = Path(folder)
    found = []
    for p in folder.glob(f"{prefix}*"):
        stem = p.name[len(prefix):].removesuffix(".pt")
        if stem.isdigit() and ((p.is_file() and p.suffix == ".pt") or (p / "meta.json").is_file()):
            found.append((int(stem), p.is_dir(), p))
    return max(found)[2] if found else None


def export_weights(state: Mapping[str, torch.Tensor], path: str | Path, *, config: Mapping[str, Any],
                   kind: str, dtype: torch.dtype | None = None) -> Path:
    """Write inference weights as safetensors with {"kind", "config"} metadata."""
    tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v) for k, v in state.items()}
    meta = {"kind": kind, "config": json.dumps(dict(config), sort_keys=True), "format": "kf-weights-v1"}
    return save_state_dict(tensors, path, metadata=meta)
