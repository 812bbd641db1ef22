"""ComfyUI entry point of the Kling-Foley node pack (category audio/Kling-Foley).

ComfyUI imports this folder as a package; the nodes live in `nodes/`, the engine in `kf_core/`.
ComfyUI 0.3.48+ (with the V3 node API) registers them through `comfy_entrypoint`; it ignores that
when NODE_CLASS_MAPPINGS is also defined, so the classic mappings are exported only for older
releases (and when comfy_api.latest lacks something the nodes use).
"""
from __future__ import annotations

import os
import sys

# kf_core is imported as a top-level package by the nodes; make this folder importable.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)  # after ComfyUI's own root, so its `nodes` module is never shadowed

if __package__:  # ComfyUI imports this folder as a package
    from . import nodes as _nodes  # noqa: E402
else:  # imported as a plain module: pytest collecting a checkout whose folder name is not an identifier
    import nodes as _nodes  # noqa: E402

WEB_DIRECTORY = None  # no front-end code: every widget is a stock ComfyUI widget

if _nodes.V3:
    comfy_entrypoint = _nodes.comfy_entrypoint
    __all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
else:
    NODE_CLASS_MAPPINGS = _nodes.NODE_CLASS_MAPPINGS
    NODE_DISPLAY_NAME_MAPPINGS = _nodes.NODE_DISPLAY_NAME_MAPPINGS
    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
