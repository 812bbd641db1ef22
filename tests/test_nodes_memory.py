"""Models are owned by the loader nodes' outputs and nothing else: once ComfyUI drops an output
the weights are freed (weakrefs die), loading and dropping twice leaves nothing behind, and —
inside a real ComfyUI — each module is a ModelPatcher that load_models_gpu loads and can evict."""
from __future__ import annotations

import gc
import os
import subprocess
import weakref
from pathlib import Path

import pytest

from nodes import _comfy, loaders

REPO = Path(__file__).resolve().parents[1]
B = _comfy.BUNDLED
HARNESS = Path(os.environ.get("KF_HARNESS_HOME", Path.home() / ".cache" / "kf-comfyui-harness"))
COMFYUI_DIR = Path(os.environ.get("KF_COMFYUI_DIR", HARNESS / "ComfyUI"))
COMFY_PYTHON = HARNESS / "venv" / "bin" / "python"

LOADERS = [(loaders.KlingFoleyModelLoader, (B, "auto")), (loaders.KlingFoleyT5Loader, (B,)),
           (loaders.KlingFoleyVisualEncoderLoader, (B, B)), (loaders.KlingFoleyCodecLoader, (B, B, B))]


def test_dropped_loader_outputs_free_every_module(monkeypatch):
    built = []  # weakrefs to every module of every kf-tiny the loaders built
    real_bundled = loaders.bundled

    def spy():
        comps = real_bundled()
        built.extend(weakref.ref(m) for m in comps.modules())
        return comps
    monkeypatch.setattr(loaders, "bundled", spy)
    for _ in range(2):  # load and drop twice
        outputs = [cls.execute(*args) for cls, args in LOADERS]
        kept = [out[0] for out in outputs]
        gc.collect()
        alive = {id(r()) for r in built if r() is not None}
        parts = {id(getattr(h.value, p)) for h in kept for p in h.parts if getattr(h.value, p) is not None}
        # while the outputs live, only the parts each loader returns are alive (the codec whole)
        assert alive <= parts | {id(kept[3].value)}, "a loader kept more of kf-tiny than it returns"
        del outputs, kept
        gc.collect()
        assert not [r for r in built if r() is not None], "a module outlived the loader output that owned it"
    assert len(built) == 2 * 4 * 5


def test_a_file_loaded_model_is_freed_with_its_output(comfy, tiny_folder):
    import shutil
    (comfy["models"] / "kling_foley").mkdir()
    shutil.copy(tiny_folder / "dit.safetensors", comfy["models"] / "kling_foley" / "dit.safetensors")
    refs = []
    for _ in range(2):
        out = loaders.KlingFoleyModelLoader.execute("dit.safetensors", "fp32")
        refs.append(weakref.ref(out[0].value.model))
        del out
        gc.collect()
    assert [r() for r in refs] == [None, None]


def test_no_module_level_model_registry():
    """The old bridge kept a patcher per module in a module-level dict, forever."""
    for module in (_comfy, loaders):
        for name, value in vars(module).items():
            assert not (isinstance(value, dict) and name.startswith("_patch")), f"{module.__name__}.{name}"
    assert not hasattr(loaders.bundled, "cache_info"), "bundled() must not cache kf-tiny"


def _comfy_python_ready() -> bool:
    if not (COMFY_PYTHON.is_file() and (COMFYUI_DIR / "comfy" / "model_patcher.py").is_file()):
        return False
    probe = subprocess.run([str(COMFY_PYTHON), "-c", "import open_clip, einops, psutil"], capture_output=True)
    return probe.returncode == 0


SCRIPT = """
import gc, importlib.util, sys, weakref
sys.argv = ["main.py", "--cpu"]
sys.path.append({comfyui!r})
import comfy.options; comfy.options.enable_args_parsing()
import comfy.model_management as mm
spec = importlib.util.spec_from_file_location("kf_pack", {init!r}, submodule_search_locations=[{repo!r}])
pack = importlib.util.module_from_spec(spec); sys.modules["kf_pack"] = pack; spec.loader.exec_module(pack)
from kf_pack.nodes import _comfy, loaders
from comfy.model_patcher import ModelPatcher
assert _comfy.HAVE_COMFY
B = _comfy.BUNDLED
refs = []
for round in range(2):
    handle = loaders.KlingFoleyModelLoader.execute(B, "auto")[0]
    codec = loaders.KlingFoleyCodecLoader.execute(B, B, B)[0]
    assert isinstance(handle.patchers["model"], ModelPatcher) and set(codec.patchers) == {{"vae", "mono2stereo"}}
    with _comfy.on_device(handle) as dit:
        assert dit is handle.value
    with _comfy.on_device(codec, "vae"):
        pass
    live = [lm.model for lm in mm.current_loaded_models]
    assert any(m is handle.patchers["model"] for m in live) and any(m is codec.patchers["vae"] for m in live)
    mm.unload_all_models()                      # ComfyUI evicts them when it needs the room ...
    assert not mm.current_loaded_models
    with _comfy.on_device(handle):             # ... and they load again on the next run
        pass
    assert len(mm.current_loaded_models) == 1
    refs += [weakref.ref(handle.value.model), weakref.ref(handle.patchers["model"]),
             weakref.ref(codec.value), weakref.ref(codec.patchers["vae"])]
    del handle, codec, dit, live
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs), [type(r()).__name__ for r in refs if r() is not None]
    assert not mm.current_loaded_models, mm.current_loaded_models
print("OK")
"""


@pytest.mark.skipif(not _comfy_python_ready(), reason=f"no ComfyUI harness with the pack's requirements at {HARNESS}")
def test_in_comfyui_models_are_model_patchers_loaded_evicted_and_freed():
    code = SCRIPT.format(comfyui=str(COMFYUI_DIR), init=str(REPO / "__init__.py"), repo=str(REPO))
    env = {**os.environ, "PYTHONPATH": "", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([str(COMFY_PYTHON), "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0 and "OK" in run.stdout, (run.stdout[-2000:], run.stderr[-4000:])
