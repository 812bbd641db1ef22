"""Every shipped workflow runs through the node classes with the shipped kf-tiny:
stereo audio of exactly the video's duration at 16/24/30 fps, a muxed file that decodes with both
streams, and nothing written when a run is cancelled."""
from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
import torch

from media import make_video
from nodes import _comfy
from workflow_runner import run_workflow

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
FAST = {"steps": 2}
SECONDS = 1.0


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _check_muxed(path: Path, duration: float):
    with av.open(str(path)) as f:
        assert len(f.streams.video) == 1 and len(f.streams.audio) == 1
        v, a = f.streams.video[0], f.streams.audio[0]
        frames = sum(1 for _ in f.decode(v))
        f.seek(0)
        samples = sum(fr.samples for fr in f.decode(a))
        assert a.channels == 2 and frames > 0
    assert samples >= round(duration * 44100) - 1024  # AAC frames; the edit list trims playback


def test_workflow_files_are_ui_format_and_mirrored_as_templates():
    names = sorted(p.name for p in WORKFLOWS.glob("*.json"))
    assert len(names) >= 4
    for name in names:
        data = json.loads((WORKFLOWS / name).read_text())
        assert data["version"] == 0.4 and data["nodes"] and data["links"]
        assert (REPO / "example_workflows" / name).read_text() == (WORKFLOWS / name).read_text()
        for link in data["links"]:  # [id, from node, from slot, to node, to slot, type]
            assert len(link) == 6


@pytest.mark.parametrize("fps", [16, 24, 30])
def test_video_to_foley_to_mux(comfy, fps):
    make_video(comfy["input"] / "bounce.mp4", fps=fps, seconds=SECONDS, width=64, height=64)
    run = run_workflow(WORKFLOWS / "kling_foley_video_to_audio.json", FAST)
    (audio,) = run.audio()
    assert audio["sample_rate"] == 44100 and audio["waveform"].dtype == torch.float32
    assert audio["waveform"].shape == (1, 2, round(SECONDS * 44100))
    assert audio["waveform"].abs().max() <= 1.0
    (muxed,) = [p for p in _files(comfy["output"]) if p.suffix == ".mp4"]
    _check_muxed(muxed, SECONDS)
    image = next(v for _, kind, v in run.previews if kind == "image")
    assert image.ndim == 4 and image.shape[-1] == 3


@pytest.mark.parametrize("fps", [16, 24, 30])
def test_image_plus_fps_chain(comfy, fps):
    make_video(comfy["input"] / "bounce.mp4", fps=fps, seconds=SECONDS, width=64, height=64)
    run = run_workflow(WORKFLOWS / "kling_foley_image_fps_chain.json", FAST)
    (audio,) = run.audio()
    assert audio["waveform"].shape == (1, 2, round(SECONDS * 44100))
    (muxed,) = _files(comfy["output"])
    _check_muxed(muxed, SECONDS)


def test_text_to_audio(comfy):
    run = run_workflow(WORKFLOWS / "kling_foley_text_to_audio.json", {**FAST, "duration": 1.25})
    (audio,) = run.audio()
    assert audio["waveform"].shape == (1, 2, round(1.25 * 44100))
    assert _files(comfy["output"]) == []


def test_sampler_comparison_gives_one_take_per_sampler(comfy):
    make_video(comfy["input"] / "bounce.mp4", fps=24, seconds=1.0, width=64, height=64)
    run = run_workflow(WORKFLOWS / "kling_foley_sampler_comparison.json", FAST)
    waves = [a["waveform"] for a in run.audio()]
    assert len(waves) == 3 and all(w.shape == (1, 2, 44100) for w in waves)
    assert not torch.equal(waves[0], waves[1])


def test_cancelled_run_writes_nothing(comfy):
    make_video(comfy["input"] / "bounce.mp4", fps=24, seconds=1.0, width=64, height=64)
    _comfy.request_cancel()
    with pytest.raises(_comfy.Cancelled, match="cancelled"):
        run_workflow(WORKFLOWS / "kling_foley_video_to_audio.json", FAST)
    assert _files(comfy["output"]) == []
