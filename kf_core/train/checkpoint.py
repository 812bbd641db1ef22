"""Resumable training checkpoints (atomic, weights-only loadable) and inference-weight export.

A checkpoint is one `torch.save` dict: step, model, EMA, optimiser, scheduler, data position,
every RNG state and the training config as JSON. It holds only tensors and plain Python values,
so `torch.load(weights_only=True)` reads it back.
"""
from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..loading.state import CheckpointError, save_state_dict

__all__ = ["rng_state", "set_rng_state", "save_checkpoint", "load_checkpoint", "latest_checkpoint",
           "export_weights"]

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


def latest_checkpoint(folder: str | Path, prefix: str = "step_") -> Path | None:
    """The checkpoint with the highest step number in `folder`, or None."""
    folder = Path(folder)
    found = []
    for p in folder.glob(f"{prefix}*.pt"):
        stem = p.stem[len(prefix):]
        if stem.isdigit():
            found.append((int(stem), p))
    return max(found)[1] if found else None


def export_weights(state: Mapping[str, torch.Tensor], path: str | Path, *, config: Mapping[str, Any],
                   kind: str, dtype: torch.dtype | None = None) -> Path:
    """Write inference weights as safetensors with {"kind", "config"} metadata."""
    tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v) for k, v in state.items()}
    meta = {"kind": kind, "config": json.dumps(dict(config), sort_keys=True), "format": "kf-weights-v1"}
    return save_state_dict(tensors, path, metadata=meta)
