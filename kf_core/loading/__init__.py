"""Weight files: read, strict load, config detection, key remapping."""
from .state import WEIGHT_SUFFIXES, CheckpointError, load_strict, read_state_dict, save_state_dict

__all__ = ["CheckpointError", "read_state_dict", "save_state_dict", "load_strict", "WEIGHT_SUFFIXES"]

# DiT loading (lazy: importing kf_core.loading for state.py must not build the model package)
_DIT_EXPORTS = {"load_dit": "dit", "save_dit": "dit", "DiTInfo": "dit", "detect_config": "detect",
                "DetectedDiT": "detect", "remap_mmaudio": "remap"}
__all__ += list(_DIT_EXPORTS)


def __getattr__(name: str):
    if name in _DIT_EXPORTS:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_DIT_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
