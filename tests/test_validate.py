"""Every mistake is caught before a model loads, and said in one line."""
from __future__ import annotations

import math

import pytest
import torch

from kf_core import pipeline
from kf_core.__main__ import main
from kf_core.errors import UserError
from kf_core.validate import MAX_SEED, check_fps, check_seed, output_in_folder
from media import make_video


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if anything tries to build a model."""
    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the inputs were checked")
    monkeypatch.setattr(pipeline, "load_pipeline", refuse)
    monkeypatch.setattr(pipeline, "load_components", refuse)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("v") / "in.mp4", fps=24, seconds=1.0, width=64, height=48)


def _cli(capsys, *args):
    rc = main(["generate", *map(str, args)])
    err = capsys.readouterr().err
    return rc, err


@pytest.mark.parametrize("extra,message", [
    (["--out", "{d}/o.avi"], "cannot write a video as .avi"),
    (["--out", "{d}/o"], "cannot write a video as a file without extension"),
    (["--out", "{d}"], "is a folder"),
    (["--out", "{d}/o.webm"], "h264 video cannot be stored in .webm"),
    (["--audio-out", "{d}/o.mp3"], "cannot write audio as .mp3 — use a .wav or .flac"),
    (["--audio-out", "{d}/ok.wav", "--out", "{d}/o.avi"], ".avi"),           # both checked before writing
    (["--audio-out", "{d}/o.wav", "--seed", str(2 ** 64)], "seed must be between 0 and 2^64"),
    (["--audio-out", "{d}/o.wav", "--duration", "nan"], "duration (seconds) must be a finite number"),
    (["--audio-out", "{d}/o.wav", "--duration", "9"], "longer than the video"),
    (["--audio-out", "{d}/o.wav", "--steps", "0"], "steps must be a whole number from 1"),
    (["--audio-out", "{d}/o.wav", "--window", "2", "--overlap", "3"], "overlap (3 s) must be shorter"),
])
def test_cli_mistakes_are_one_line_before_any_model(tmp_path, clip, capsys, no_model, extra, message):
    out_dir = tmp_path / "outs"
    out_dir.mkdir()
    rc, err = _cli(capsys, "--video", clip, *[a.format(d=out_dir) for a in extra])
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert list(out_dir.iterdir()) == []                                       # nothing written


def test_missing_video_and_debug_traceback(tmp_path, capsys, no_model):
    rc, err = _cli(capsys, "--video", tmp_path / "nope.mp4", "--audio-out", tmp_path / "a.wav")
    assert rc == 2 and "nope.mp4: file not found" in err and err.count("\n") == 1
    with pytest.raises(UserError, match="file not found"):
        main(["--debug", "generate", "--video", str(tmp_path / "nope.mp4"), "--audio-out", str(tmp_path / "a.wav")])
    with pytest.raises(UserError, match="file not found"):
        main(["generate", "--video", str(tmp_path / "nope.mp4"), "--audio-out", str(tmp_path / "a.wav"), "--debug"])


def test_seeds_and_frame_rates_say_what_was_given():
    assert check_seed(MAX_SEED) == MAX_SEED
    for bad in (2 ** 64, -1):
        with pytest.raises(UserError, match=f"got {bad}"):
            check_seed(bad)
    assert check_fps(0) is None and check_fps(None) is None and check_fps(23.976) == 23.976
    for bad in (-5, math.nan, math.inf):
        with pytest.raises(UserError, match=f"got {bad!r}"):
            check_fps(bad)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    from tiny_model import write_random_tiny_folder
    return pipeline.load_pipeline(write_random_tiny_folder(tmp_path_factory.mktemp("m"), vocoder=False))


def test_generate_checks_before_encoding(pipe, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("encoded before checking")
    monkeypatch.setattr(pipe.components.text_encoder, "encode", boom)
    with pytest.raises(UserError, match="seed"):
        pipe.generate(prompt="rain", seed=2 ** 64)
    with pytest.raises(UserError, match="none was given"):
        pipe.generate(torch.rand(10, 16, 16, 3))
    with pytest.raises(UserError, match=r"got -5"):
        pipe.generate(torch.rand(10, 16, 16, 3), fps=-5)
    with pytest.raises(UserError, match="cannot write audio as .mp3"):
        pipe.save(prompt="rain", audio_out=tmp_path / "x.mp3")


def test_the_largest_seed_works_also_in_windows(pipe):
    # each window's seed is derived from the clip's; it wraps around 2^64 instead of overflowing
    wave, sr = pipe.generate(prompt="rain", duration=2.0, steps=1, window=1.0, overlap=0.25, seed=MAX_SEED)
    assert wave.shape == (2, 2 * sr)


@pytest.mark.parametrize("prefix,message", [
    ("", "filename_prefix is empty"), ("   ", "is empty"), (".", "hidden file"), ("..", "hidden file"),
    ("sub/.x", "hidden file"), ("sub/", "names a folder but no file"), ("../x", "outside the output folder"),
    ("/etc/x", "outside the output folder"), ("a/../../x", "outside the output folder"),
])
def test_mux_prefixes_that_cannot_be_files(tmp_path, prefix, message):
    with pytest.raises(UserError, match=message):
        output_in_folder(tmp_path, prefix, ".mp4")


def test_good_prefixes_stay_inside(tmp_path):
    assert output_in_folder(tmp_path, "kling_foley/foley", ".mp4") == (tmp_path / "kling_foley" / "foley.mp4").resolve()
    assert output_in_folder(tmp_path, "a/../b", ".mkv") == (tmp_path / "b.mkv").resolve()


def test_a_prompt_past_the_token_limit_is_warned_about(pipe, caplog):
    from kf_core.pipeline import encode_text
    enc = pipe.components.text_encoder
    long = "rain on a tin roof, " * 6                                          # 120 bytes, ByT5: 121 tokens
    with caplog.at_level("WARNING"):
        cond = encode_text(enc, "rain", negative_prompt=long)
    assert len(cond.notes) == 1 and "negative prompt is 121 tokens long" in cond.notes[0]
    assert f"reads only {enc.encoder.max_tokens}" in cond.notes[0]
    assert any(cond.notes[0] == r.getMessage() for r in caplog.records)
    assert encode_text(enc, "rain").notes == ()
