"""Shared test setup: CPU only, few threads, deterministic, fixtures beside the repo."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KF_SHARED_DIR", REPO.parent / "shared"))
MMAUDIO_FIXTURES = SHARED / "fixtures" / "mmaudio"


@pytest.fixture(scope="session")
def mmaudio_fixtures() -> Path:
    """Folder of MMAudio reference outputs (../shared/fixtures/mmaudio)."""
    if not MMAUDIO_FIXTURES.is_dir():
        pytest.skip(f"MMAudio fixtures not found at {MMAUDIO_FIXTURES} (set KF_SHARED_DIR)")
    return MMAUDIO_FIXTURES


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A random-weight kf-tiny model folder (tests/tiny_model.py), written once per test module:
    files of every kind for loader tests, never sound."""
    from tiny_model import write_random_tiny_folder
    return write_random_tiny_folder(tmp_path_factory.mktemp("kf-tiny-random"), vocoder=False)


@pytest.fixture
def comfy(tmp_path, monkeypatch):
    """Plain-Python ComfyUI stand-in: models/input/output folders in tmp_path and the shipped
    kf-tiny behind the bundled entries (fast Griffin-Lim). Returns {"models"|"input"|"output": Path}."""
    from nodes import _comfy
    from workflow_runner import use_bundled_fast
    use_bundled_fast(monkeypatch)
    dirs = {k: tmp_path / k for k in ("models", "input", "output")}
    for d in dirs.values():
        d.mkdir()
    monkeypatch.setattr(_comfy, "_plain", dict(dirs))
    return dirs
