"""Stereo From Video, Sync Judge Loader and Best Take through the node classes in plain Python."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("nodes._types", reason="needs the V3 node base of issue 13 (nodes/_types.py, nodes/_schema.py)")

from kf_core.encoders import Synchformer  # noqa: E402
from kf_core.loading.state import CheckpointError, save_state_dict  # noqa: E402
from kf_core.pipeline import open_video  # noqa: E402
from nodes import _comfy  # noqa: E402
from nodes.spatial import KlingFoleyBestTake, KlingFoleyStereoFromVideo, KlingFoleySyncJudgeLoader  # noqa: E402
from test_spatial import FPS, SR, _bouncing, _clicks, _ild_db  # noqa: E402


@pytest.fixture(scope="module")
def moving():
    """A disc bouncing while it crosses the frame left to right, its impact clicks, as a video handle."""
    frames, impacts = _bouncing(75, lambda t: 0.1 + 0.8 * t / 74)
    return open_video(torch.from_numpy(frames).float() / 255, FPS), impacts, _clicks(impacts, 75)


def test_stereo_node_pans_a_left_to_right_source_left_to_right(moving):
    clip, impacts, mono = moving
    (audio,) = KlingFoleyStereoFromVideo.execute({"waveform": torch.from_numpy(mono)[None, None], "sample_rate": SR},
                                                 clip, 1.0, 0.6).args
    assert audio["sample_rate"] == SR and audio["waveform"].shape == (1, 2, mono.size)
    ild = [_ild_db(audio["waveform"][0].numpy(), k / FPS, k / FPS + 0.08) for k in impacts]
    assert ild[0] < -6 < 6 < ild[-1]
    (centred,) = KlingFoleyStereoFromVideo.execute({"waveform": torch.from_numpy(mono)[None, None],
                                                    "sample_rate": SR}, clip, 0.0, 0.0).args
    assert torch.allclose(centred["waveform"][0], torch.from_numpy(mono).expand(2, -1), atol=1e-6)  # width 0


def test_best_take_node_keeps_the_aligned_take_and_shows_every_score(moving):
    clip, _, mono = moving
    takes = torch.from_numpy(np.stack([np.roll(mono, int(0.2 * SR)), mono]))[:, None]  # take 1 is aligned
    out = KlingFoleyBestTake.execute({"waveform": takes, "sample_rate": SR}, clip)
    audio, scores, best = out.args
    assert best == 1 and torch.equal(audio["waveform"], takes[1:2])
    assert "take 0: score" in scores and "take 1 (best): score" in scores
    assert out.ui == {"text": [scores]}


def test_sync_judge_loader_refuses_a_visual_only_synchformer(tmp_path, monkeypatch):
    monkeypatch.setitem(_comfy._plain, "models", tmp_path)
    folder = tmp_path / _comfy.MODEL_FOLDER
    folder.mkdir()
    save_state_dict({f"vfeat_extractor.{k}": v for k, v in Synchformer.tiny().state_dict().items()},
                    folder / "visual_only.safetensors")
    with pytest.raises(CheckpointError, match="audio branch"):
        KlingFoleySyncJudgeLoader.execute("visual_only.safetensors")
    with pytest.raises(FileNotFoundError, match="synchformer_state_dict.pth"):
        KlingFoleySyncJudgeLoader.execute(_comfy.NONE)
