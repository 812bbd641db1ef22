"""Exponential moving average of a model's floating-point parameters and buffers (fp32 shadow).

Under FSDP the model's state is sharded DTensors, and so is the shadow: each rank averages its own
shards, and a checkpoint of the shadow reshards like the model's.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor

__all__ = ["EMA"]


class EMA:
    """shadow ← d·shadow + (1 − d)·param after each optimiser step.

    With `warmup=True` the decay used at update n is min(decay, (1 + n) / (10 + n)), so early
    averages are not dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items()
                       if v.is_floating_point()}

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold `model`'s current weights into the average."""
        d = self.current_decay()
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach().float(), 1.0 - d)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise ValueError(f"EMA state lacks {len(missing)} tensors (e.g. {sorted(missing)[:3]}); "
                             "it was saved for a different model")
        self.updates = int(state["updates"])
        for k, dst in self.shadow.items():
            src = state["shadow"][k]
            if isinstance(dst, DTensor) and not isinstance(src, DTensor):  # whole tensors into shards
                src = distribute_tensor(src.to(dst.device_mesh.device_type), dst.device_mesh, dst.placements)
            elif isinstance(src, DTensor) and not isinstance(dst, DTensor):
                src = src.full_tensor()
            dst.copy_(src)

    def weights_for(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The averaged state dict in `model`'s dtypes (non-float buffers taken from the model), whole
        tensors on the CPU (gathered from the shards under FSDP: every rank must call this)."""
        out = {}
        for k, v in model.state_dict().items():
            t = self.shadow[k].to(v.dtype) if k in self.shadow else v.detach().clone()
            out[k] = (t.full_tensor() if isinstance(t, DTensor) else t).cpu()
        return out
