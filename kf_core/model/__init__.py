"""The Kling-Foley MM-DiT: `build_model`, `KlingFoleyDiT`, `Prepared`, `ModelConfig`, `PRESETS`."""
from __future__ import annotations

import torch

from .config import PRESETS, ModelConfig
from .dit import KlingFoleyDiT, Prepared

__all__ = ["build_model", "KlingFoleyDiT", "Prepared", "ModelConfig", "PRESETS"]


def build_model(preset_or_config: str | ModelConfig, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None) -> KlingFoleyDiT:
    """Preset name or ModelConfig -> a freshly initialised KlingFoleyDiT.

    On device="meta" nothing is allocated or initialised (for counting, or before a strict load).
    """
    if isinstance(preset_or_config, ModelConfig):
        cfg = preset_or_config
    elif preset_or_config in PRESETS:
        cfg = PRESETS[preset_or_config]
    else:
        raise ValueError(f"unknown model preset {preset_or_config!r}; choose one of {', '.join(PRESETS)} "
                         "or pass a ModelConfig")
    return KlingFoleyDiT(cfg, device=device, dtype=dtype)
