"""The V3 node schema in plain Python: the part of ComfyUI's `comfy_api.latest.io` this pack uses.

The pack's nodes are written once, as V3 nodes, against `_comfy.io`: ComfyUI's own
`comfy_api.latest.io` when it has everything they use, else this module. Nodes built on this one
also speak ComfyUI's classic node API (INPUT_TYPES, RETURN_TYPES, FUNCTION, IS_CHANGED,
VALIDATE_INPUTS), so ComfyUI releases without the V3 API (before 0.3.48, August 2025) register them
through NODE_CLASS_MAPPINGS, and tests run them in a plain Python process. Names and keywords follow
comfy_api.latest.io (0.3.64); a keyword ComfyUI does not take is refused here too.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["UploadType", "Input", "Output", "Schema", "NodeOutput", "ComfyNode", "Custom",
           "Boolean", "Int", "Float", "String", "Combo", "Image", "Audio", "Video"]


class UploadType(str, Enum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"


def _pruned(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


# keyword -> key in the classic options dict (None: the keyword's own name)
_COMMON = {"display_name": None, "tooltip": None, "lazy": None}
_WIDGET = {**_COMMON, "default": None, "socketless": None, "force_input": "forceInput"}
_KEYWORDS = {
    "INT": {**_WIDGET, "min": None, "max": None, "step": None, "control_after_generate": None,
            "display_mode": "display"},
    "FLOAT": {**_WIDGET, "min": None, "max": None, "step": None, "round": None, "display_mode": "display"},
    "STRING": {**_WIDGET, "multiline": None, "placeholder": None, "dynamic_prompts": "dynamicPrompts"},
    "BOOLEAN": {**_WIDGET, "label_on": None, "label_off": None},
    "COMBO": {**_WIDGET, "options": None, "control_after_generate": None, "upload": None},
}


class Input:
    """One node input: a widget (INT, FLOAT, STRING, BOOLEAN, COMBO) or a socket of its type."""

    io_type: str = ""

    def __init__(self, id: str, optional: bool = False, **keywords: Any) -> None:
        allowed = _KEYWORDS.get(self.io_type, _COMMON)
        unknown = sorted(set(keywords) - set(allowed))
        if unknown:
            raise TypeError(f"{self.io_type}.Input({id!r}) got unexpected keyword(s) {unknown}")
        self.id, self.optional = id, optional
        self.keywords = keywords
        for name in allowed:
            setattr(self, name, keywords.get(name))

    def as_dict(self) -> dict:
        """The classic options dict ({"default": ..., "tooltip": ...})."""
        allowed = _KEYWORDS.get(self.io_type, _COMMON)
        out = _pruned({allowed[k] or k: v for k, v in self.keywords.items() if k not in ("options", "upload")})
        if isinstance(out.get("display"), Enum):
            out["display"] = out["display"].value
        if self.keywords.get("upload") is not None:
            out[UploadType(self.keywords["upload"]).value] = True
        return out

    def classic(self) -> tuple:
        """(TYPE or [choices], options): how INPUT_TYPES lists this input."""
        kind = list(self.keywords.get("options") or []) if self.io_type == "COMBO" else self.io_type
        return kind, self.as_dict()


class Output:
    """One node output (a socket)."""

    io_type: str = ""

    def __init__(self, id: str | None = None, display_name: str | None = None, tooltip: str | None = None,
                 is_output_list: bool = False) -> None:
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list


def _comfy_type(name: str, io_type: str) -> type:
    """A type namespace like io.Int: `.io_type`, `.Input(...)`, `.Output(...)`."""
    inp = type("Input", (Input,), {"io_type": io_type})
    out = type("Output", (Output,), {"io_type": io_type})
    return type(name, (), {"io_type": io_type, "Input": inp, "Output": out})


def Custom(io_type: str) -> type:  # noqa: N802 (ComfyUI's name)
    """A socket type of the pack's own (e.g. KLINGFOLEY_MODEL)."""
    return _comfy_type("Custom", io_type)


Boolean, Int, Float = _comfy_type("Boolean", "BOOLEAN"), _comfy_type("Int", "INT"), _comfy_type("Float", "FLOAT")
String, Combo = _comfy_type("String", "STRING"), _comfy_type("Combo", "COMBO")
Image, Audio, Video = _comfy_type("Image", "IMAGE"), _comfy_type("Audio", "AUDIO"), _comfy_type("Video", "VIDEO")


@dataclass
class Schema:
    """What a node is: id, names, inputs in widget order, outputs (comfy_api.latest.io.Schema)."""

    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list | None = None
    outputs: list | None = None
    hidden: list | None = None
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False

    def validate(self) -> None:
        ids = [i.id for i in self.inputs or []] + [o.id for o in self.outputs or [] if o.id is not None]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"{self.node_id}: input/output ids must be unique, {twice} are not")


class NodeOutput:
    """What execute() returns: the output values in order, and optionally a `ui` dict for the frontend."""

    def __init__(self, *args: Any, ui: dict | None = None, expand: dict | None = None,
                 block_execution: str | None = None) -> None:
        self.args, self.ui, self.expand, self.block_execution = args, ui, expand, block_execution

    @property
    def result(self):
        return self.args if self.args else None

    def __getitem__(self, index):
        return self.args[index]


class _classproperty:
    def __init__(self, getter) -> None:
        self.getter = getter

    def __get__(self, obj, owner):
        return self.getter(owner)


class ComfyNode:
    """Base of a V3 node: `define_schema()` and `execute(**inputs)` classmethods, no instance state.

    The classic attributes below are derived from the schema, for ComfyUI without the V3 API.
    """

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError(f"{cls.__name__} defines no schema")

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError(f"{cls.__name__} defines no execute")

    @classmethod
    def GET_SCHEMA(cls) -> Schema:  # noqa: N802 (ComfyUI's name)
        schema = cls.define_schema()
        schema.validate()
        return schema

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # the classic names of the optional V3 hooks; ComfyUI looks them up only when defined
        if "fingerprint_inputs" in vars(cls):
            cls.IS_CHANGED = vars(cls)["fingerprint_inputs"]
        if "validate_inputs" in vars(cls):
            cls.VALIDATE_INPUTS = vars(cls)["validate_inputs"]

    # ------------------------------------------------------------ the classic node API
    FUNCTION = "run_classic"

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        spec: dict = {"required": {}}
        for i in cls.GET_SCHEMA().inputs or []:
            spec.setdefault("optional" if i.optional else "required", {})[i.id] = i.classic()
        return spec

    RETURN_TYPES = _classproperty(lambda c: tuple(o.io_type for o in c.GET_SCHEMA().outputs or []))
    RETURN_NAMES = _classproperty(lambda c: tuple(o.display_name or o.io_type for o in c.GET_SCHEMA().outputs or []))
    OUTPUT_TOOLTIPS = _classproperty(lambda c: tuple(o.tooltip for o in c.GET_SCHEMA().outputs or []))
    OUTPUT_IS_LIST = _classproperty(lambda c: tuple(o.is_output_list for o in c.GET_SCHEMA().outputs or []))
    CATEGORY = _classproperty(lambda c: c.GET_SCHEMA().category)
    DESCRIPTION = _classproperty(lambda c: c.GET_SCHEMA().description)
    OUTPUT_NODE = _classproperty(lambda c: c.GET_SCHEMA().is_output_node)
    NOT_IDEMPOTENT = _classproperty(lambda c: c.GET_SCHEMA().not_idempotent)

    def run_classic(self, **kwargs):
        """execute() as a classic FUNCTION: a tuple, or {"ui": ..., "result": ...} when there is a ui."""
        out = type(self).execute(**kwargs)
        if inspect.isawaitable(out):
            raise TypeError(f"{type(self).__name__}.execute is async; the classic node API needs a plain def")
        result = tuple(out.args)
        return {"ui": out.ui, "result": result} if out.ui is not None else result
