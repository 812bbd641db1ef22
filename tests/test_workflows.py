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
SNAPSHOTS = REPO / "tests" / "snapshots"
VIDEO_TO_AUDIO = WORKFLOWS / "Kling-Foley video to audio.json"
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


def test_workflow_files_are_ui_format():
    names = sorted(p.name for p in WORKFLOWS.glob("*.json"))
    assert len(names) >= 4
    for name in names:
        data = json.loads((WORKFLOWS / name).read_text())
        assert data["version"] == 0.4 and data["nodes"] and data["links"]
        for link in data["links"]:  # [id, from node, from slot, to node, to slot, type]
            assert len(link) == 6


def test_old_saved_workflow_still_runs(comfy):
    """A graph saved by 0.1 (before the V3 nodes; no Vocoder level widgets) runs unchanged."""
    make_video(comfy["input"] / "bounce.mp4", fps=24, seconds=SECONDS, width=64, height=64)
    run = run_workflow(SNAPSHOTS / "workflow_0.1_video_to_audio.json", FAST)
    (audio,) = run.audio()
    assert audio["waveform"].shape == (1, 2, round(SECONDS * 44100))


@pytest.mark.parametrize("fps", [16, 24, 30])
def test_video_to_foley_to_mux(comfy, fps):
    make_video(comfy["input"] / "bounce.mp4", fps=fps, seconds=SECONDS, width=64, height=64)
    run = run_workflow(VIDEO_TO_AUDIO, FAST)
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
    run = run_workflow(WORKFLOWS / "Kling-Foley after a video model (frames and fps).json", FAST)
    (audio,) = run.audio()
    assert audio["waveform"].shape == (1, 2, round(SECONDS * 44100))
    (muxed,) = _files(comfy["output"])
    _check_muxed(muxed, SECONDS)


def test_text_to_audio(comfy):
    run = run_workflow(WORKFLOWS / "Kling-Foley text to audio.json", {**FAST, "duration": 1.25})
    (audio,) = run.audio()
    assert audio["waveform"].shape == (1, 2, round(1.25 * 44100))
    assert _files(comfy["output"]) == []


def test_sampler_comparison_gives_one_take_per_sampler(comfy):
    make_video(comfy["input"] / "bounce.mp4", fps=24, seconds=1.0, width=64, height=64)
    run = run_workflow(WORKFLOWS / "Kling-Foley sampler comparison.json", FAST)
    waves = [a["waveform"] for a in run.audio()]
    assert len(waves) == 3 and all(w.shape == (1, 2, 44100) for w in waves)
    assert not torch.equal(waves[0], waves[1])


def test_cancelled_run_writes_nothing(comfy):
    make_video(comfy["input"] / "bounce.mp4", fps=24, seconds=1.0, width=64, height=64)
    _comfy.request_cancel()
    with pytest.raises(_comfy.Cancelled, match="cancelled"):
        run_workflow(VIDEO_TO_AUDIO, FAST)
    assert _files(comfy["output"]) == []


# ---------------------------------------------------------------- what a person sees in the editor
TITLE_H = 30       # LiteGraph's title bar, drawn above a node's pos
GROUP_TITLE_H = 34  # a group's title bar (font 24)
PREVIEW_H = 540    # a video node once it shows its video (the frontend grows it to ~500 px)
MARGIN = 10        # boxes closer than this look glued together
# the frontend's own minimum sizes (frontend 1.27.10, measured with the harness's browser_check)
MIN_SIZE = {"KlingFoleyModelLoader": (270, 102), "KlingFoleyT5Loader": (333, 78),
            "KlingFoleyVisualEncoderLoader": (486, 102), "KlingFoleyCodecLoader": (497, 126),
            "KlingFoleyLoadVideo": (270, 146), "KlingFoleyTextEncode": (400, 200), "KlingFoleyVideoEncode": (371, 78),
            "KlingFoleySampler": (270, 314), "KlingFoleyDecode": (220, 46), "KlingFoleyMono2Stereo": (198, 66),
            "KlingFoleyVocoder": (270, 126), "KlingFoleyMuxAudio": (320, 102), "KlingFoleySpectrogram": (308, 58),
            "PreviewAudio": (270, 88), "PreviewImage": (140, 26), "LoadVideo": (274, 100),
            "GetVideoComponents": (185, 66), "Note": (210, 88)}
TEMPLATE_FOLDERS = ("example_workflows", "example", "examples", "workflow", "workflows")  # ComfyUI 0.3.64


def _shows_video(node: dict) -> bool:
    """Nodes that grow a video preview: a loader with a file picked, a saver once it ran."""
    if node["type"] in ("LoadVideo", "KlingFoleyLoadVideo"):
        return any(isinstance(v, str) and Path(v).suffix in _comfy.VIDEO_EXTENSIONS for v in node["widgets_values"])
    return node["type"] in ("KlingFoleyMuxAudio", "SaveVideo")


def node_box(node: dict) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a node as drawn: title bar included, at least the frontend's size."""
    (x, y), (w, h) = node["pos"], node["size"]
    mw, mh = MIN_SIZE[node["type"]]
    h = max(h, mh, PREVIEW_H if _shows_video(node) else 0)
    return x, y - TITLE_H, x + max(w, mw), y + h


def _overlap(a, b, margin=0.0) -> bool:
    return a[0] < b[2] + margin and b[0] < a[2] + margin and a[1] < b[3] + margin and b[1] < a[3] + margin


def _inside(inner, outer) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.json")), ids=lambda p: p.stem)
def test_no_node_overlaps_another_and_groups_hold_whole_nodes(path):
    graph = json.loads(path.read_text())
    boxes = {n["id"]: node_box(n) for n in graph["nodes"]}
    for i, a in boxes.items():
        for j, b in boxes.items():
            assert i >= j or not _overlap(a, b, MARGIN), f"{path.name}: node {i} overlaps node {j}"
    groups = [(g["title"], (g["bounding"][0], g["bounding"][1], g["bounding"][0] + g["bounding"][2],
                            g["bounding"][1] + g["bounding"][3])) for g in graph.get("groups", [])]
    for k, (title, g) in enumerate(groups):
        assert all(not _overlap(g, other) for _, other in groups[k + 1:]), f"{path.name}: group {title!r} overlaps"
        body = (g[0], g[1] + GROUP_TITLE_H, g[2], g[3])
        for i, b in boxes.items():
            assert _inside(b, body) or not _overlap(b, g), f"{path.name}: node {i} sticks out of group {title!r}"
    assert graph["groups"], f"{path.name}: group the graph's parts"
    assert any(n["type"] == "Note" for n in graph["nodes"]), f"{path.name}: a short note says what it does"


def test_the_overlap_check_sees_a_grown_video_node():
    load = {"type": "KlingFoleyLoadVideo", "pos": [0, 0], "size": [340, 150], "widgets_values": [0.0, "clip.mp4"]}
    below = {"type": "KlingFoleyTextEncode", "pos": [0, 300], "size": [400, 200], "widgets_values": ["", ""]}
    assert _overlap(node_box(load), node_box(below))            # the preview covers it ...
    load["widgets_values"][1] = "none"
    assert not _overlap(node_box(load), node_box(below), MARGIN)  # ... no file, no preview


def test_one_template_folder_and_a_small_thumbnail_per_template():
    """ComfyUI lists the JSON of every folder named like a template folder (so a second one lists
    everything twice) and serves them under one URL prefix, first folder first (so a folder named
    earlier in its list hides the files of workflows/)."""
    present = [f for f in TEMPLATE_FOLDERS if (REPO / f).is_dir()]
    assert present == ["workflows"], f"template folders {present}: keep only workflows/"
    names = sorted(p.stem for p in WORKFLOWS.glob("*.json"))
    for name in names:
        thumb = WORKFLOWS / f"{name}.jpg"
        assert thumb.is_file(), f"template {name!r} has no thumbnail {thumb.name}"
        data = thumb.read_bytes()
        assert data[:3] == b"\xff\xd8\xff" and len(data) < 80_000, f"{thumb.name}: a small JPEG"
    assert len(names) == len({n.lower() for n in names})
    for name in names:  # Browse Templates shows the file name as the title
        assert name[0].isupper() and " " in name and "_" not in name, f"{name!r}: a human title"
