"""The Kling-Foley ComfyUI nodes: thin adapters from ComfyUI types to kf_core's pipeline stages."""
from __future__ import annotations

from . import _comfy, codec, encode, loaders, mux, preview, sampler, video, watermark

_MODULES = (loaders, video, encode, sampler, codec, mux, preview, watermark)

NODE_CLASS_MAPPINGS = {key: cls for m in _MODULES for key, (_, cls) in m.NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {key: name for m in _MODULES for key, (name, _) in m.NODES.items()}

_comfy.register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
