"""Test-only executor of UI-format workflow JSON through the pack's node classes.

It does what ComfyUI's executor does for these graphs, in plain Python: orders nodes by their
links, maps each node's `widgets_values` onto its widget inputs *by position* (seed widgets carry
an extra control_after_generate value, upload combos an extra "image"), checks combo values are
in their lists, feeds linked outputs in, and calls FUNCTION. The few core nodes the workflows use
(LoadVideo, GetVideoComponents, PreviewAudio, PreviewImage) get small stand-ins built on
nodes._comfy's plain VIDEO; previews are recorded so tests can look at what a user would hear.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nodes
from nodes import _comfy

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}


@dataclass
class Run:
    outputs: dict[int, tuple] = field(default_factory=dict)
    previews: list[tuple[int, str, object]] = field(default_factory=list)  # (node id, title, value)

    def audio(self) -> list[dict]:
        return [v for _, kind, v in self.previews if kind == "audio"]


class _CoreLoadVideo:
    FUNCTION = "load"
    RETURN_TYPES = ("VIDEO",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"file": (_comfy.input_videos(), {"video_upload": True})}}

    def load(self, file):
        return (_comfy.PlainVideo(path=_comfy.input_path(file)),)


class _CoreGetVideoComponents:
    FUNCTION = "get"
    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": ("VIDEO",)}}

    def get(self, video):
        c = video.get_components()
        return (c.images, c.audio, float(c.frame_rate))


def _preview(kind: str, key: str):
    class _Preview:
        FUNCTION = "show"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {key: (kind.upper(),)}}

        def show(self, **kw):
            return kw[key]
    _Preview.kind = kind
    return _Preview


CORE_STANDINS = {"LoadVideo": _CoreLoadVideo, "GetVideoComponents": _CoreGetVideoComponents,
                 "PreviewAudio": _preview("audio", "audio"), "PreviewImage": _preview("image", "images")}


def widget_inputs(cls) -> list[tuple[str, object, dict]]:
    """(name, type-or-combo-list, options) of a node's widget inputs, in saved-workflow order."""
    spec = cls.INPUT_TYPES()
    out = []
    for part in ("required", "optional"):
        for name, s in spec.get(part, {}).items():
            kind = s[0]
            if isinstance(kind, list) or kind in WIDGET_TYPES:
                out.append((name, kind, s[1] if len(s) > 1 else {}))
    return out


def _widget_kwargs(node: dict, cls, linked: set[str], overrides: dict) -> dict:
    values = list(node.get("widgets_values") or [])
    kwargs = {}
    for name, kind, opts in widget_inputs(cls):
        if not values:
            raise ValueError(f"node {node['id']} ({node['type']}): no saved value for widget {name!r}")
        value = values.pop(0)
        if opts.get("control_after_generate"):
            control = values.pop(0)
            assert control in ("fixed", "increment", "decrement", "randomize"), (node["id"], control)
        if (opts.get("video_upload") or opts.get("image_upload")) and values[:1] == ["image"]:
            values.pop(0)
        value = overrides.get(name, value)
        if isinstance(kind, list) and name not in linked and value not in kind:
            raise ValueError(f"node {node['id']} ({node['type']}): {name}={value!r} is not one of {kind}")
        kwargs[name] = value
    if values:
        raise ValueError(f"node {node['id']} ({node['type']}): {len(values)} widget values left over {values}")
    return kwargs


def _order(graph: dict) -> list[dict]:
    deps = {n["id"]: {link[1] for link in graph["links"] if link[3] == n["id"]} for n in graph["nodes"]}
    by_id = {n["id"]: n for n in graph["nodes"]}
    done, order = set(), []
    while len(order) < len(by_id):
        ready = sorted(i for i, d in deps.items() if i not in done and d <= done)
        if not ready:
            raise ValueError("the workflow has a cycle")
        for i in ready:
            done.add(i)
            order.append(by_id[i])
    return order


def run_workflow(path: str | Path, overrides: dict | None = None) -> Run:
    """Execute a UI-format workflow file; `overrides` replace widget values by name (e.g. steps)."""
    graph = json.loads(Path(path).read_text())
    links = {link[0]: link for link in graph["links"]}
    run = Run()
    for node in _order(graph):
        if node.get("mode", 0) != 0:
            continue
        cls = nodes.NODE_CLASS_MAPPINGS.get(node["type"]) or CORE_STANDINS[node["type"]]
        inputs = {i["name"]: links[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        kwargs = _widget_kwargs(node, cls, set(inputs), overrides or {})
        for name, link in inputs.items():
            kwargs[name] = run.outputs[link[1]][link[2]]
        result = getattr(cls(), cls.FUNCTION)(**kwargs)
        if hasattr(cls, "kind"):
            run.previews.append((node["id"], cls.kind, result))
            continue
        if isinstance(result, dict):
            result = result["result"]
        assert isinstance(result, tuple) and len(result) == len(cls.RETURN_TYPES), node["type"]
        run.outputs[node["id"]] = result
    return run


# ---------------------------------------------------------------- the bundled kf-tiny, fast
_loaded: dict[str, object] = {}


def use_bundled_fast(monkeypatch) -> object:
    """The shipped kf-tiny (loaded once per test session) behind "kf-tiny (bundled)", with a
    2-iteration Griffin-Lim so the CPU tests stay fast: the audio length rule is the same, the
    sound is rougher. Only the loaders' bundled() is replaced, for the calling test."""
    import kf_core.components
    from kf_core.codec.griffinlim import GriffinLim
    from nodes import loaders
    if "bundled" not in _loaded:
        comps = kf_core.components.load_components(None)
        comps.codec.vocoder = GriffinLim(comps.codec.cfg, n_iter=2)
        _loaded["bundled"] = comps
    monkeypatch.setattr(loaders, "bundled", lambda: _loaded["bundled"])
    return _loaded["bundled"]
