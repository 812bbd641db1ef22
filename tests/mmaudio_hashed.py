"""Machine-independent "random" weights for the MMAudio pipeline fixture (tests/fixtures/mmaudio_pipeline).

`torch.randn` gives different numbers on different CPU kernel paths, so weights drawn from a seed
cannot be re-created on another machine. These come from an integer hash instead (splitmix64 of
the element index and the tensor name, numpy uint64 arithmetic), mapped to a uniform value and
scaled in float64, then rounded once to float32: every machine gets the same bits. The fixture's
generator (outside this repo, see the fixture README) imports this file, and the fixture records a
checksum of every tensor so a changed rule fails loudly instead of silently.

Scale rules (as the shared MMAudio fixtures, README §1.3: every path contributes O(1)):
- matrices / convs: std 1/sqrt(fan_in) (fan_in = prod(shape[1:]); open_clip's `proj` matrices are
  applied as x @ W, so their fan_in is shape[0]);
- biases std 0.1; norm gains 1 + 0.1·u (q/k RMSNorm gains 1 + 0.3·u);
- embeddings and learned empties std 0.5 / 1; latent_mean std 0.5, latent_std in [0.5, 1.5).
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import torch

__all__ = ["hashed_uniform", "mmaudio_network_state", "clip_state", "checksum", "TINY_CLIP", "NETWORK"]

_SQRT3 = math.sqrt(3.0)

# open_clip CLIP constructor arguments: image tower fed 384-px frames like DFN5B (378 px model),
# per-token text of width 32
TINY_CLIP = dict(
    embed_dim=64, quick_gelu=True,
    vision_cfg=dict(image_size=378, layers=1, width=64, head_width=32, patch_size=14),
    text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=2),
)
# MMAudio(...) constructor arguments (v2 layout; 2 joint blocks, the last pre-only, + 1 fused)
NETWORK = dict(latent_dim=40, clip_dim=64, sync_dim=128, text_dim=32, hidden_dim=64, depth=3,
               fused_depth=1, num_heads=1, v2=True)


def hashed_uniform(name: str, shape) -> np.ndarray:
    """Tensor name + shape -> float64 array uniform in [-1, 1), identical on every machine."""
    n = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    salt = np.uint64(zlib.crc32(name.encode("utf-8")))
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + salt * np.uint64(0x9E3779B97F4A7C15)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53          # [0, 1)
    return (2.0 * u - 1.0).reshape(tuple(shape))


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.astype(np.float32)))


def _std(name: str, shape, std: float) -> torch.Tensor:
    return _t(hashed_uniform(name, shape) * (std * _SQRT3))


def mmaudio_network_state(shapes: dict[str, tuple]) -> dict[str, torch.Tensor]:
    """MMAudio network key -> shape (from a constructed net's state_dict) -> hashed float32 weights."""
    out = {}
    for k, shape in shapes.items():
        u = hashed_uniform(k, shape)
        if k in ("empty_string_feat", "empty_clip_feat", "empty_sync_feat"):
            out[k] = _std(k, shape, 1.0)
        elif k == "sync_pos_emb":
            out[k] = _std(k, shape, 0.5)
        elif k == "latent_mean":
            out[k] = _std(k, shape, 0.5)
        elif k == "latent_std":
            out[k] = _t(1.0 + 0.5 * u)
        elif k.endswith(("q_norm.weight", "k_norm.weight")):
            out[k] = _t(1.0 + 0.3 * u)
        elif len(shape) >= 2:
            out[k] = _std(k, shape, 1.0 / math.sqrt(int(np.prod(shape[1:]))))
        else:
            out[k] = _std(k, shape, 0.1)
    return out


def clip_state(shapes: dict[str, tuple]) -> dict[str, torch.Tensor]:
    """open_clip CLIP key -> shape -> hashed float32 weights (see the module doc for the rules)."""
    out = {}
    for k, shape in shapes.items():
        u = hashed_uniform(k, shape)
        parts = k.split(".")
        leaf = parts[-1]
        if k == "logit_scale" or k == "logit_bias":
            out[k] = torch.zeros(shape)
        elif k in ("token_embedding.weight", "positional_embedding", "visual.positional_embedding",
                   "visual.class_embedding"):
            out[k] = _std(k, shape, 0.5)
        elif k in ("visual.proj", "text_projection"):
            out[k] = _std(k, shape, 1.0 / math.sqrt(shape[0]))
        elif leaf == "weight" and len(parts) >= 2 and parts[-2].startswith("ln"):
            out[k] = _t(1.0 + 0.1 * u)
        elif len(shape) >= 2:
            out[k] = _std(k, shape, 1.0 / math.sqrt(int(np.prod(shape[1:]))))
        else:
            out[k] = _std(k, shape, 0.1)
    return out


def checksum(t: torch.Tensor) -> list[float]:
    """[sum, sum of squares] in float64: what the fixture records per weight tensor."""
    x = t.detach().double()
    return [float(x.sum()), float((x * x).sum())]
