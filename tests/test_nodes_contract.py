"""The ComfyUI contract of every node class, the widget-order snapshot, and the import rules."""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nodes
from workflow_runner import widget_inputs

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = Path(__file__).parent / "snapshots" / "node_inputs.json"
COMFY_MODULES = ("comfy", "folder_paths", "comfy_api", "server", "comfy_extras")


def _inputs_listing(cls) -> list[str]:
    """"section name TYPE" per input; combos as COMBO (their file lists change, their place must not)."""
    spec = cls.INPUT_TYPES()
    return [f"{part} {name} {'COMBO' if isinstance(s[0], list) else s[0]}"
            for part in ("required", "optional") for name, s in spec.get(part, {}).items()]


@pytest.mark.parametrize("key", sorted(nodes.NODE_CLASS_MAPPINGS))
def test_node_contract(key):
    cls = nodes.NODE_CLASS_MAPPINGS[key]
    assert key.startswith("KlingFoley") and key in nodes.NODE_DISPLAY_NAME_MAPPINGS
    assert cls.CATEGORY == "audio/Kling-Foley" and len(cls.DESCRIPTION) > 20
    assert callable(getattr(cls, cls.FUNCTION))
    assert isinstance(cls.RETURN_TYPES, tuple) and len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"} and spec["required"]
    for part in ("required", "optional"):
        for name, s in spec.get(part, {}).items():
            assert len(s) == 2 and s[1].get("tooltip"), f"{key}.{name} needs a tooltip"


def test_widget_order_matches_snapshot():
    """Saved workflows store widget values by position: changing this order breaks every saved
    graph. Add new inputs at the END only; then regenerate with KF_UPDATE_SNAPSHOT=1."""
    current = {k: _inputs_listing(c) for k, c in sorted(nodes.NODE_CLASS_MAPPINGS.items())}
    if os.environ.get("KF_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=1) + "\n")
    saved = json.loads(SNAPSHOT.read_text())
    for key, listing in saved.items():
        assert current[key][:len(listing)] == listing, f"{key}: inputs reordered/removed (saved workflows break)"
    assert current == saved, "new inputs: regenerate tests/snapshots/node_inputs.json (KF_UPDATE_SNAPSHOT=1)"


def test_seed_has_control_after_generate_and_sampler_takes_no_encoders():
    cls = nodes.NODE_CLASS_MAPPINGS["KlingFoleySampler"]
    widgets = {name: opts for name, _, opts in widget_inputs(cls)}
    assert widgets["seed"].get("control_after_generate") is True
    # the sampler only sees conditions, so changing its widgets never re-runs an encoder upstream
    types = {s[0] for part in cls.INPUT_TYPES().values() for s in part.values() if isinstance(s[0], str)}
    assert not types & {"KLINGFOLEY_TEXT_ENCODER", "KLINGFOLEY_VISUAL_ENCODERS", "KLINGFOLEY_VIDEO", "IMAGE"}


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
    for path in [*REPO.joinpath("kf_core").rglob("*.py"), *REPO.joinpath("nodes").glob("*.py")]:
        if path.name == "_comfy.py":
            continue
        assert not _imports(path) & set(COMFY_MODULES), f"{path.relative_to(REPO)} imports ComfyUI"


def test_pack_and_engine_import_in_plain_python():
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('kling_foley_pack', {str(REPO / '__init__.py')!r}, "
            f"submodule_search_locations=[{str(REPO)!r}])\n"
            "pack = importlib.util.module_from_spec(spec); sys.modules['kling_foley_pack'] = pack\n"
            "spec.loader.exec_module(pack)\n"
            "import kf_core.pipeline\n"
            "assert len(pack.NODE_CLASS_MAPPINGS) >= 13\n"
            f"bad = [m for m in sys.modules if m.split('.')[0] in {COMFY_MODULES!r}]\n"
            "assert not bad, bad\n")
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
