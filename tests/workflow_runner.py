"""Test-only executor of UI-format workflow JSON through the pack's V3 node classes.

It does what ComfyUI's executor does for these graphs, in plain Python: orders nodes by their
links, maps each node's `widgets_values` onto its widget inputs *by position* (seed widgets carry
an extra control_after_generate value, upload combos an extra "image"), checks combo values are
in their lists (or lets the node's validate_inputs decide, as ComfyUI does), feeds linked outputs
in, and calls the V3 `execute`. The few core nodes the workflows use (LoadVideo, GetVideoComponents,
PreviewAudio, PreviewImage) get small stand-ins built on nodes._comfy's plain VIDEO; previews are
recorded so tests can look at what a user would hear. Notes (frontend-only) are skipped.
"""
from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path

import nodes
from nodes import _comfy

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
FRONTEND_ONLY = {"Note", "MarkdownNote"}


@dataclass
class Run:
    outputs: dict[int, tuple] = field(default_factory=dict)
    previews: list[tuple[int, str, object]] = field(default_factory=list)  # (node id, kind, value)
    ui: dict[int, dict] = field(default_factory=dict)                     # node id -> its ui dict

    def audio(self) -> list[dict]:
        return [v for _, kind, v in self.previews if kind == "audio"]


@dataclass(frozen=True)
class Widget:
    name: str
    choices: list | None   # a combo's list, else None
    control_after_generate: bool = False
    upload: bool = False
    default: object = None  # what the frontend shows for a widget a saved graph has no value for


class _StandIn:
    """A core node's stand-in: `widgets` in order, `run(**inputs)` -> outputs tuple."""
    widgets: tuple[Widget, ...] = ()
    kind: str | None = None  # "audio" / "image" for the preview nodes


class _CoreLoadVideo(_StandIn):
    @property
    def widgets(self):
        return (Widget("file", _comfy.input_videos(), upload=True),)

    def run(self, file):
        return (_comfy.PlainVideo(path=_comfy.input_path(file)),)


class _CoreGetVideoComponents(_StandIn):
    def run(self, video):
        c = video.get_components()
        return (c.images, c.audio, float(c.frame_rate))


class _Preview(_StandIn):
    def __init__(self, kind: str, key: str) -> None:
        self.kind, self.key = kind, key

    def run(self, **kw):
        return kw[self.key]


CORE_STANDINS = {"LoadVideo": _CoreLoadVideo(), "GetVideoComponents": _CoreGetVideoComponents(),
                 "PreviewAudio": _Preview("audio", "audio"), "PreviewImage": _Preview("image", "images")}


def widget_inputs(cls) -> list[Widget]:
    """A V3 node's widget inputs, in saved-workflow order."""
    return [Widget(i.id, list(i.options) if i.io_type == "COMBO" else None,
                   bool(getattr(i, "control_after_generate", None)), getattr(i, "upload", None) is not None,
                   getattr(i, "default", None))
            for i in cls.GET_SCHEMA().inputs if i.io_type in WIDGET_TYPES]


def _validated_by_node(cls) -> set[str]:
    """Inputs the node's own validate_inputs checks (ComfyUI then skips its built-in checks of them)."""
    fn = vars(cls).get("validate_inputs")
    return set(inspect.signature(fn.__func__).parameters) - {"cls"} if fn is not None else set()


def _widget_kwargs(node: dict, widgets, linked: set[str], overrides: dict, own_checks: set[str]) -> dict:
    values = list(node.get("widgets_values") or [])
    kwargs = {}
    for w in widgets:
        if not values and w.default is not None:  # a graph saved before this widget was added
            kwargs[w.name] = overrides.get(w.name, w.default)
            continue
        if not values:
            raise ValueError(f"node {node['id']} ({node['type']}): no saved value for widget {w.name!r}")
        value = values.pop(0)
        if w.control_after_generate:
            control = values.pop(0)
            assert control in ("fixed", "increment", "decrement", "randomize"), (node["id"], control)
        if w.upload and values[:1] == ["image"]:
            values.pop(0)
        value = overrides.get(w.name, value)
        if w.choices is not None and w.name not in linked | own_checks and value not in w.choices:
            raise ValueError(f"node {node['id']} ({node['type']}): {w.name}={value!r} is not one of {w.choices}")
        kwargs[w.name] = value
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


def _run_v3(cls, node: dict, kwargs: dict, run: Run) -> tuple:
    own = _validated_by_node(cls)
    if own:
        verdict = cls.validate_inputs(**{k: v for k, v in kwargs.items() if k in own})
        if verdict is not True:
            raise ValueError(f"node {node['id']} ({node['type']}): {verdict}")
    out = cls.execute(**kwargs)
    if out.ui is not None:
        run.ui[node["id"]] = out.ui
    result = tuple(out.args)
    assert len(result) == len(cls.GET_SCHEMA().outputs), node["type"]
    return result


def run_workflow(path: str | Path, overrides: dict | None = None) -> Run:
    """Execute a UI-format workflow file; `overrides` replace widget values by name (e.g. steps)."""
    graph = json.loads(Path(path).read_text())
    links = {link[0]: link for link in graph["links"]}
    run = Run()
    for node in _order(graph):
        if node.get("mode", 0) != 0 or node["type"] in FRONTEND_ONLY:
            continue
        cls = nodes.NODE_CLASS_MAPPINGS.get(node["type"])
        inputs = {i["name"]: links[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        widgets = widget_inputs(cls) if cls is not None else CORE_STANDINS[node["type"]].widgets
        own = _validated_by_node(cls) if cls is not None else set()
        kwargs = _widget_kwargs(node, widgets, set(inputs), overrides or {}, own)
        for name, link in inputs.items():
            kwargs[name] = run.outputs[link[1]][link[2]]
        if cls is not None:
            run.outputs[node["id"]] = _run_v3(cls, node, kwargs, run)
            continue
        standin = CORE_STANDINS[node["type"]]
        result = standin.run(**kwargs)
        if standin.kind is not None:
            run.previews.append((node["id"], standin.kind, result))
        else:
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


# ---------------------------------------------------------------- template thumbnails
def make_thumbnail(workflow: Path, video: Path, caption: str, width: int = 400, height: int = 300) -> Path:
    """Run a shipped workflow on `video` with the real bundled kf-tiny and save <workflow>.jpg beside
    it (the Browse Templates thumbnail): the video's frames on top when the graph reads it, then the
    spectrogram of every take it makes, and `caption`."""
    import shutil
    import tempfile

    import torch
    from PIL import Image, ImageDraw, ImageFont

    from kf_core.codec.spectrogram import spectrogram_image
    from kf_core.io import probe, sample_frames
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {k: Path(tmp) / k for k in ("models", "input", "output")}
        for d in dirs.values():
            d.mkdir()
        shutil.copy(video, dirs["input"] / video.name)
        _comfy.configure_plain(**dirs)
        takes = run_workflow(workflow).audio()
    spectra = [spectrogram_image(a["waveform"][:1], int(a["sample_rate"]))[0] for a in takes]   # H F 3 each
    rows = []
    for img in spectra:
        rows += [img, torch.ones(4, img.shape[1], 3)]
    spec = Image.fromarray((torch.cat(rows[:-1]) * 255).round().byte().numpy())
    canvas = Image.new("RGB", (width, height), "black")
    top = 0
    if any("LoadVideo" in n["type"] for n in json.loads(workflow.read_text())["nodes"]):  # show what it sees
        info = probe(video)
        n = 6
        frames = sample_frames(video, n / info.duration, size=width // n)[:n]                # n 3 S S
        gap = torch.zeros(frames.shape[2], 3, 3, dtype=frames.dtype)                         # a dark rule
        strip = torch.cat([x for f in frames.permute(0, 2, 3, 1) for x in (f, gap)][:-1], dim=1).numpy()
        canvas.paste(Image.fromarray(strip), (0, 0))
        top = strip.shape[0] + 4
    canvas.paste(spec.resize((width, height - top), Image.LANCZOS), (0, top))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=22)
    box = draw.textbbox((10, height - 36), caption, font=font)
    draw.rectangle((box[0] - 6, box[1] - 4, box[2] + 6, box[3] + 4), fill=(0, 0, 0))
    draw.text((10, height - 36), caption, fill=(255, 255, 255), font=font)
    out = workflow.with_suffix(".jpg")
    canvas.save(out, quality=85, optimize=True)
    return out


if __name__ == "__main__":  # python tests/workflow_runner.py media/bounce.mp4 "workflows/X.json" "caption" ...
    import sys
    for name, caption in zip(sys.argv[2::2], sys.argv[3::2]):
        print(make_thumbnail(Path(name), Path(sys.argv[1]), caption))
