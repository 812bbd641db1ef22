"""Deterministic, platform-independent random weights for the tiny frozen encoders.

kf-tiny uses encoders with random (never trained) weights. Their features must be identical on
every machine, or a model trained on features extracted on one computer would be fed different
features on another. `torch.randn` is not: its numbers depend on the CPU kernel path (AVX-512,
AVX2, scalar; see the MMAudio fixture README §1.4). NumPy's PCG64 generator is, so the weights
are drawn with it and copied in.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["seeded_init_"]


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)) or "Norm" in type(module).__name__


@torch.no_grad()
def seeded_init_(module: nn.Module, seed: int) -> nn.Module:
    """Module, seed -> the same module with every parameter redrawn reproducibly.

    Rules: norm gains 1 and norm biases 0; other biases 0; matrices and embeddings
    N(0, 1/sqrt(fan_in)) with fan_in = numel / shape[0] (the last dim for (1, 1, D) tokens);
    other vectors N(0, 1/sqrt(len)); scalars (e.g. a logit scale) keep their constructor value.
    """
    rng = np.random.default_rng(seed)
    for name, param in module.named_parameters():  # registration order: deterministic
        owner_name, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        if param.ndim == 0:
            continue
        if _is_norm(owner):
            values = np.ones(param.shape) if leaf == "weight" else np.zeros(param.shape)
        elif leaf.endswith("bias"):
            values = np.zeros(param.shape)
        else:
            if param.ndim == 1:
                fan_in = param.numel()
            elif param.shape[0] == 1:  # (1, N, D) tokens and tables
                fan_in = param.shape[-1]
            else:
                fan_in = param.numel() // param.shape[0]
            values = rng.standard_normal(param.shape) / math.sqrt(max(fan_in, 1))
        param.copy_(torch.from_numpy(np.asarray(values, dtype=np.float32)).to(param.dtype))
    return module
