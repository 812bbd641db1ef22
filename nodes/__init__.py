"""The Kling-Foley ComfyUI nodes: thin V3 nodes (`io.ComfyNode`) over kf_core's pipeline stages.

Every node module lists its node classes in `NODES`; this package gathers them into NODE_LIST.
With ComfyUI's V3 API (0.3.48+) the pack registers NODE_LIST through `comfy_entrypoint`; without
it (older ComfyUI, plain Python) the same classes, built on `_schema`, also form the classic
NODE_CLASS_MAPPINGS. To add a node: write the class in a module here, append it to that module's
NODES (a new module: add it to _MODULES), then regenerate tests/snapshots/node_inputs.json
with KF_UPDATE_SNAPSHOT=1.
"""
from __future__ import annotations

from . import _comfy, codec, encode, loaders, mux, preview, sampler, spatial, video, watermark

_MODULES = (loaders, video, encode, sampler, codec, mux, preview, spatial, watermark)

NODE_LIST = [cls for m in _MODULES for cls in m.NODES]
V3 = _comfy.V3

_SCHEMAS = {cls: cls.GET_SCHEMA() for cls in NODE_LIST}
NODE_CLASS_MAPPINGS = {s.node_id: cls for cls, s in _SCHEMAS.items()}
NODE_DISPLAY_NAME_MAPPINGS = {s.node_id: s.display_name for s in _SCHEMAS.values()}


async def comfy_entrypoint():
    """ComfyUI 0.3.48+: the extension that registers NODE_LIST (V3 only)."""
    return _comfy.extension(NODE_LIST)


_comfy.register_model_folders()

__all__ = ["NODE_LIST", "V3", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "comfy_entrypoint"]
