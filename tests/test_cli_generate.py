"""`python -m kf_core generate` end to end on the random-weight kf-tiny test double."""
from __future__ import annotations

import av
import pytest

from kf_core.__main__ import main
from media import make_video
from tiny_model import write_random_tiny_folder


def test_generate_writes_video_and_audio_without_overwriting(tmp_path, capsys):
    model = write_random_tiny_folder(tmp_path / "model", vocoder=False)
    src = make_video(tmp_path / "in.mp4", fps=24, seconds=1.25, width=64, height=48)
    args = ["generate", "--video", str(src), "--out", str(tmp_path / "out.mp4"), "--audio-out",
            str(tmp_path / "out.wav"), "--model", str(model), "--steps", "2", "--sampler", "heun"]
    assert main(args) == 0
    assert main(args) == 0
    assert sorted(p.name for p in tmp_path.glob("out*")) == ["out.mp4", "out.wav", "out_00001.mp4",
                                                            "out_00001.wav"]
    with av.open(str(tmp_path / "out.mp4")) as f:
        a = f.streams.audio[0]
        assert a.channels == 2 and f.streams.video
    assert "1.250 s at 44100 Hz" in capsys.readouterr().out


def test_generate_needs_a_video_to_mux(tmp_path, capsys):
    assert main(["generate", "--out", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give --video" in err  # one line, no traceback


def test_readme_command_runs_on_the_bundled_model(tmp_path, capsys):
    # the README's main command, with no --model: the shipped kf-tiny and the shipped example clip
    from pathlib import Path
    example = Path(__file__).resolve().parents[1] / "media" / "bounce.mp4"
    out = tmp_path / "bounce_foley.mp4"
    assert main(["generate", "--video", str(example), "--out", str(out), "--steps", "4"]) == 0
    with av.open(str(out)) as f:
        a, v = f.streams.audio[0], f.streams.video[0]
        assert a.channels == 2
        assert abs(float(a.duration * a.time_base) - float(v.duration * v.time_base)) < 0.05
    assert "bounce_foley.mp4" in capsys.readouterr().out


def test_threads_knob(tmp_path, capsys, monkeypatch):
    import torch

    from kf_core import pipeline
    before = torch.get_num_threads()
    model = write_random_tiny_folder(tmp_path / "model", vocoder=False)
    src = make_video(tmp_path / "in.mp4", fps=24, seconds=1.0, width=64, height=48)
    try:
        assert main(["generate", "--video", str(src), "--audio-out", str(tmp_path / "a.wav"), "--model",
                     str(model), "--steps", "1", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    capsys.readouterr()
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **k: pytest.fail("a model was loaded"))
    assert main(["generate", "--video", str(src), "--audio-out", str(tmp_path / "b.wav"), "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads" in err and "'auto' or a whole number" in err
    assert not (tmp_path / "b.wav").exists()
