"""The ComfyUI contract of every node: V3 schemas, the widget-order snapshot, registration through
comfy_entrypoint or the classic mappings (with ComfyUI's V3 API, without it, with a partial one),
and the import rules."""
from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import itertools
import json
import os
import subprocess
import sys
import types
from abc import ABC, abstractmethod
from pathlib import Path

import pytest

import nodes
from nodes import _comfy, _schema

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = Path(__file__).parent / "snapshots" / "node_inputs.json"
COMFY_MODULES = ("comfy", "folder_paths", "comfy_api", "server", "comfy_extras")
COMFYUI_DIR = Path(os.environ.get("KF_COMFYUI_DIR", Path.home() / ".cache" / "kf-comfyui-harness" / "ComfyUI"))


def listing(inputs) -> list[str]:
    """"section name TYPE [default=...]" per input, from a V3 schema's inputs. Combo lists are left
    out (file lists change; their place must not); a default is part of what a saved graph relies on."""
    out = []
    for i in inputs:
        line = f"{'optional' if i.optional else 'required'} {i.id} {i.io_type}"
        if getattr(i, "default", None) is not None:
            line += f" default={i.default!r}"
        out.append(line)
    return out


def _listings(classes) -> dict[str, list[str]]:
    return {c.GET_SCHEMA().node_id: listing(c.GET_SCHEMA().inputs) for c in classes}


@pytest.mark.parametrize("cls", nodes.NODE_LIST, ids=lambda c: c.__name__)
def test_node_contract(cls):
    schema = cls.GET_SCHEMA()
    assert schema.node_id == cls.__name__ and schema.node_id.startswith("KlingFoley")
    assert nodes.NODE_CLASS_MAPPINGS[schema.node_id] is cls
    assert schema.category == "audio/Kling-Foley" and len(schema.description) > 20
    assert schema.display_name.startswith("Kling-Foley ")
    for i in schema.inputs:
        assert i.tooltip, f"{schema.node_id}.{i.id} needs a tooltip"
    for o in schema.outputs:
        assert o.display_name and o.tooltip, f"{schema.node_id}: every output needs a name and a tooltip"
    execute = inspect.signature(cls.execute)
    assert list(execute.parameters) == [i.id for i in schema.inputs], "execute takes the inputs, in order"
    for i in schema.inputs:  # optional inputs need defaults in execute (ComfyUI leaves unconnected ones out)
        assert not i.optional or execute.parameters[i.id].default is not inspect.Parameter.empty, i.id


def test_widget_order_and_defaults_match_snapshot():
    """Saved workflows store widget values by position: changing this order breaks every saved
    graph. Add new inputs at the END only; then regenerate with KF_UPDATE_SNAPSHOT=1."""
    current = _listings(nodes.NODE_LIST)
    if os.environ.get("KF_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(dict(sorted(current.items())), indent=1) + "\n")
    saved = json.loads(SNAPSHOT.read_text())
    for key, lines in saved.items():
        assert current[key][:len(lines)] == lines, f"{key}: inputs reordered/removed/re-defaulted (saved graphs break)"
    assert current == saved, "new inputs: regenerate tests/snapshots/node_inputs.json (KF_UPDATE_SNAPSHOT=1)"


def test_classic_api_of_the_fallback_nodes():
    """Without ComfyUI's V3 API the same classes speak the classic API (ComfyUI before 0.3.48)."""
    assert not nodes.V3 and _comfy.io is _schema
    sampler = nodes.NODE_CLASS_MAPPINGS["KlingFoleySampler"]
    spec = sampler.INPUT_TYPES()
    assert list(spec["required"])[:3] == ["model", "seed", "steps"] and list(spec["optional"]) == [
        "text_cond", "video_cond", "window"]
    seed = {"default": 0, "min": 0, "max": 2**64 - 1, "control_after_generate": True,
            "tooltip": sampler.GET_SCHEMA().inputs[1].tooltip}
    assert spec["required"]["seed"] == ("INT", seed)
    assert isinstance(spec["required"]["sampler"][0], list) and "euler" in spec["required"]["sampler"][0]
    assert sampler.RETURN_TYPES == ("KLINGFOLEY_LATENT",) and sampler.RETURN_NAMES == ("latent",)
    assert sampler.FUNCTION == "run_classic" and sampler.CATEGORY == "audio/Kling-Foley"
    load_video = nodes.NODE_CLASS_MAPPINGS["KlingFoleyLoadVideo"]
    assert load_video.INPUT_TYPES()["required"]["file"][1]["video_upload"] is True
    assert hasattr(load_video, "IS_CHANGED") and not hasattr(sampler, "IS_CHANGED")
    assert hasattr(nodes.NODE_CLASS_MAPPINGS["KlingFoleyCodecLoader"], "VALIDATE_INPUTS")
    mux = nodes.NODE_CLASS_MAPPINGS["KlingFoleyMuxAudio"]
    assert mux.OUTPUT_NODE is True and mux.RETURN_TYPES == ("VIDEO", "STRING")
    import torch
    image = nodes.NODE_CLASS_MAPPINGS["KlingFoleySpectrogram"]().run_classic(
        audio={"waveform": torch.zeros(1, 1, 4410), "sample_rate": 44100}, top_db=80.0)
    assert isinstance(image, tuple) and image[0].shape[-1] == 3


# ---------------------------------------------------------------- which API registers the nodes
_FAKES = itertools.count()


def _partial(drop: str | None = None, int_keywords_without: str | None = None):
    """A comfy_api.latest.io like ComfyUI's but lacking one type or one keyword."""
    name = f"fake_comfy_io_{next(_FAKES)}"
    spec = importlib.util.spec_from_file_location(name, REPO / "nodes" / "_schema.py")
    io = importlib.util.module_from_spec(spec)
    sys.modules[name] = io  # dataclasses look their module up
    spec.loader.exec_module(io)
    if drop:
        delattr(io, drop)
    if int_keywords_without:
        io._KEYWORDS["INT"] = {k: v for k, v in io._KEYWORDS["INT"].items() if k != int_keywords_without}
    return io


def test_v3_gap_names_what_is_missing():
    assert _comfy.v3_gap(None) == "comfy_api.latest is not installed"
    assert _comfy.v3_gap(_partial()) is None
    assert "Video" in _comfy.v3_gap(_partial(drop="Video"))
    assert "control_after_generate" in _comfy.v3_gap(_partial(int_keywords_without="control_after_generate"))
    assert "UploadType" in _comfy.v3_gap(_partial(drop="UploadType"))


class _FakeExtension(ABC):
    @abstractmethod
    async def get_node_list(self): ...


def _load_pack_with(monkeypatch, io):
    """Import the pack afresh (as package `kf_pack_<n>`) while comfy_api.latest offers `io`."""
    api, latest = types.ModuleType("comfy_api"), types.ModuleType("comfy_api.latest")
    latest.io, latest.ComfyExtension, api.latest = io, _FakeExtension, latest
    monkeypatch.setitem(sys.modules, "comfy_api", api)
    monkeypatch.setitem(sys.modules, "comfy_api.latest", latest)
    name = f"kf_pack_{id(io)}"
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    pack = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, pack)
    spec.loader.exec_module(pack)
    for mod in [m for m in sys.modules if m.startswith(name + ".")]:
        monkeypatch.delitem(sys.modules, mod)
    return pack


def test_a_complete_v3_api_registers_through_comfy_entrypoint_only(monkeypatch):
    pack = _load_pack_with(monkeypatch, _partial())
    assert not hasattr(pack, "NODE_CLASS_MAPPINGS"), "ComfyUI ignores comfy_entrypoint beside NODE_CLASS_MAPPINGS"
    extension = asyncio.run(pack.comfy_entrypoint())
    assert isinstance(extension, _FakeExtension)
    listed = asyncio.run(extension.get_node_list())
    assert [c.GET_SCHEMA().node_id for c in listed] == [c.GET_SCHEMA().node_id for c in nodes.NODE_LIST]
    assert _listings(listed) == _listings(nodes.NODE_LIST)


@pytest.mark.parametrize("gap", [{"drop": "Video"}, {"int_keywords_without": "control_after_generate"}])
def test_a_partial_v3_api_falls_back_to_the_classic_mappings(monkeypatch, gap):
    pack = _load_pack_with(monkeypatch, _partial(**gap))
    assert not hasattr(pack, "comfy_entrypoint")
    assert sorted(pack.NODE_CLASS_MAPPINGS) == sorted(nodes.NODE_CLASS_MAPPINGS)
    spec = pack.NODE_CLASS_MAPPINGS["KlingFoleySampler"].INPUT_TYPES()
    assert spec["required"]["seed"][1]["control_after_generate"] is True  # the classic form keeps it


@pytest.mark.skipif(not (COMFYUI_DIR / "comfy_api" / "latest" / "_io.py").is_file(),
                    reason=f"no ComfyUI checkout at {COMFYUI_DIR} (set KF_COMFYUI_DIR)")
def test_real_comfyui_v3_schemas_equal_the_snapshot():
    """ComfyUI's own comfy_api.latest: the pack registers V3 nodes whose classic view (what
    /object_info serves) has the snapshot's inputs, order and defaults."""
    code = f"""
import asyncio, importlib.util, json, sys
sys.path.append({str(COMFYUI_DIR)!r})  # after the repo: ComfyUI's own nodes.py must not shadow ours
spec = importlib.util.spec_from_file_location('kf_pack', {str(REPO / '__init__.py')!r},
                                              submodule_search_locations=[{str(REPO)!r}])
pack = importlib.util.module_from_spec(spec); sys.modules['kf_pack'] = pack; spec.loader.exec_module(pack)
from comfy_api.latest import ComfyExtension, io
assert not hasattr(pack, 'NODE_CLASS_MAPPINGS')
ext = asyncio.run(pack.comfy_entrypoint()); assert isinstance(ext, ComfyExtension)
out = {{}}
for c in asyncio.run(ext.get_node_list()):
    assert issubclass(c, io.ComfyNode)
    info = c.GET_NODE_INFO_V1()
    lines = []
    for part in ('required', 'optional'):
        for name in info['input_order'].get(part, []):
            kind, opts = info['input'][part][name]
            line = f"{{part}} {{name}} {{kind}}"
            if opts.get('default') is not None:
                line += f" default={{opts['default']!r}}"
            lines.append(line)
    out[info['name']] = lines
print(json.dumps(out))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == json.loads(SNAPSHOT.read_text())


# ---------------------------------------------------------------- import rules
def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_comfy_py_imports_comfyui_and_kf_core_never_does():
    for path in [*REPO.joinpath("kf_core").rglob("*.py"), *REPO.joinpath("nodes").glob("*.py"), REPO / "__init__.py"]:
        if path.name == "_comfy.py" and path.parent.name == "nodes":
            continue
        assert not _imports(path) & set(COMFY_MODULES), f"{path.relative_to(REPO)} imports ComfyUI"


def test_pack_and_engine_import_in_plain_python():
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('kling_foley_pack', {str(REPO / '__init__.py')!r}, "
            f"submodule_search_locations=[{str(REPO)!r}])\n"
            "pack = importlib.util.module_from_spec(spec); sys.modules['kling_foley_pack'] = pack\n"
            "spec.loader.exec_module(pack)\n"
            "import kf_core.pipeline\n"
            "assert len(pack.NODE_CLASS_MAPPINGS) >= 13 and not hasattr(pack, 'comfy_entrypoint')\n"
            f"bad = [m for m in sys.modules if m.split('.')[0] in {COMFY_MODULES!r}]\n"
            "assert not bad, bad\n")
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
