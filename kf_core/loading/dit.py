"""Load / save a flow DiT: read -> detect -> build on meta -> remap -> strict load.

`load_dit(path)` returns `(model, DiTInfo)`. The latent normalisation that MMAudio stores inside
its network file (`latent_mean`, `latent_std`) belongs to the codec (DESIGN §3), so the loader
does not put it in the model: it hands it out in `DiTInfo` and the pipeline gives it to the
codec, which normalises before / un-normalises after sampling. Kling-Foley files saved by
`save_dit` may carry the same two tensors (pass them to `save_dit`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..model import KlingFoleyDiT, ModelConfig, build_model
from .detect import detect_config
from .remap import remap_mmaudio
from .state import CheckpointError, load_strict, read_state_dict, save_state_dict

__all__ = ["DiTInfo", "load_dit", "save_dit"]

log = logging.getLogger(__name__)
_META_KEY = "kf_model_config"
_EXTRAS = ("latent_mean", "latent_std")


@dataclass(frozen=True)
class DiTInfo:
    """What the loader learned about a DiT file besides its weights."""

    path: Path
    layout: str                          # "kling-foley" or "mmaudio"
    variant: str                         # preset / released-network name
    config: ModelConfig
    latent_mean: torch.Tensor | None     # [C] float32, for the codec; None if the file has none
    latent_std: torch.Tensor | None      # [C]


def _file_config(path: Path) -> ModelConfig | None:
    """The exact ModelConfig recorded by save_dit in safetensors metadata, if any."""
    if path.suffix.lower() != ".safetensors":
        return None
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get(_META_KEY)
    if raw is None:
        return None
    try:
        return ModelConfig(**json.loads(raw))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path.name}: its recorded model config is invalid ({e}); "
                              "re-export the checkpoint with this version") from e


def _own_storage(model: torch.nn.Module) -> None:
    """Give every parameter its own freshly allocated storage.

    Tensors read from a safetensors file can sit at unaligned offsets of one shared buffer; CPU
    kernels then take other SIMD paths and results drift by ~1e-6, so a save -> load round trip
    would not reproduce velocities bitwise. Copies that `load_strict` already cast are fresh.
    """
    with torch.no_grad():
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                if p.data_ptr() % 64:
                    setattr(module, name, torch.nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad))


def load_dit(path: str | Path, *, device: torch.device | str | None = None,
             dtype: torch.dtype | None = None) -> tuple[KlingFoleyDiT, DiTInfo]:
    """Weight file (ours or MMAudio's, .safetensors/.pth) -> (model in eval mode, DiTInfo).

    dtype: float32 (default), float16 or bfloat16; device: where the weights go (default CPU).
    """
    path = Path(path)
    dtype = torch.float32 if dtype is None else dtype
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"load_dit: dtype must be float32, float16 or bfloat16, got {dtype}")
    sd = read_state_dict(path, device=device or "cpu")
    try:
        detected = detect_config(sd)
    except CheckpointError as e:
        raise CheckpointError(f"{path.name}: {e}") from e
    extras = {k: sd.pop(k) for k in _EXTRAS if k in sd}
    cfg = detected.config
    if detected.layout == "mmaudio":
        sd, more = remap_mmaudio(sd)
        extras.update(more)
    else:
        cfg = _file_config(path) or cfg
    model = build_model(cfg, device="meta", dtype=dtype)
    load_strict(model, sd, what=f"{path.name} ({detected.layout} {detected.variant})", assign=True)
    _own_storage(model)
    model.eval()
    stats = {k: (extras[k].float().reshape(-1) if k in extras else None) for k in _EXTRAS}
    info = DiTInfo(path=path, layout=detected.layout, variant=detected.variant, config=cfg, **stats)
    log.info("loaded %s DiT %s from %s (%s)", detected.layout, detected.variant, path.name, dtype)
    return model, info


def save_dit(model: KlingFoleyDiT, path: str | Path, *, latent_mean: torch.Tensor | None = None,
             latent_std: torch.Tensor | None = None) -> Path:
    """Model (+ optional codec latent statistics [C]) -> safetensors with the config in metadata."""
    sd = dict(model.state_dict())
    for name, t in (("latent_mean", latent_mean), ("latent_std", latent_std)):
        if t is not None:
            sd[name] = t.detach().float().reshape(-1)
    meta = {_META_KEY: json.dumps(dataclasses.asdict(model.cfg))}
    return save_state_dict(sd, path, metadata=meta)
