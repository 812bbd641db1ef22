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
