"""kf_core: the Kling-Foley engine (pure PyTorch; never imports ComfyUI).

Public API (DESIGN §9): `PRESETS`, `build_model`, `load_pipeline`, `FoleyPipeline`.
Names are resolved lazily so `import kf_core` is cheap and never touches weights.
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "PRESETS": ("kf_core.model.config", "PRESETS"),
    "ModelConfig": ("kf_core.model.config", "ModelConfig"),
    "SeqConfig": ("kf_core.config", "SeqConfig"),
    "CodecConfig": ("kf_core.config", "CodecConfig"),
    "build_model": ("kf_core.model", "build_model"),
    "load_pipeline": ("kf_core.pipeline", "load_pipeline"),
    "FoleyPipeline": ("kf_core.pipeline", "FoleyPipeline"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'kf_core' has no attribute {name!r}")
