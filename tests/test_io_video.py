"""probe() and the errors a person gets for files that are not usable videos."""
from __future__ import annotations

import logging
from fractions import Fraction

import pytest

from kf_core.io import MediaError, probe, sample_frames
from kf_core.io.audio import write_audio
from tests.media import make_audio_wave, make_video, read_index, truncated_copy


def test_probe_reports_the_stream(tmp_path):
    path = make_video(tmp_path / "v.mp4", fps=Fraction(30000, 1001), seconds=1.0, width=96,
                      height=64, audio=True)
    info = probe(path)
    assert info.duration == pytest.approx(30 * 1001 / 30000, abs=1e-6)
    assert info.fps == pytest.approx(29.97, abs=0.01) and info.base_rate == Fraction(30000, 1001)
    assert (info.width, info.height, info.rotation) == (96, 64, 0)
    assert info.codec == "h264" and info.has_audio and info.frame_count == 30
    assert info.start_time == 0.0 and info.time_base > 0


def test_duration_without_container_metadata_falls_back_to_the_frames(tmp_path):
    # MPEG-TS states no stream duration: the end is the last frame's pts + its duration
    path = make_video(tmp_path / "v.ts", fps=25, seconds=1.2, codec="mpeg4")
    assert probe(path).duration == pytest.approx(1.2, abs=0.041)
    assert len(sample_frames(path, 25, size=16)) in (29, 30)


@pytest.mark.parametrize("name,content,message", [
    ("missing.mp4", None, "file not found"),
    ("empty.mp4", b"", "empty"),
    ("notes.txt", b"this is not a video\n" * 50, "cannot be opened as media"),
])
def test_unusable_files_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MediaError, match=message) as err:
        probe(path)
    assert name in str(err.value) and " — " in str(err.value)  # says what to do


def test_wav_given_as_video(tmp_path):
    wav = write_audio(tmp_path / "sound.wav", make_audio_wave(0.5), 44100)
    with pytest.raises(MediaError, match=r"sound\.wav: has no video stream.*audio"):
        probe(wav)


def test_truncated_file_without_index_is_refused(tmp_path):
    # moov at the end (the default): half a file has no index at all
    full = make_video(tmp_path / "full.mp4", seconds=2.0)
    cut = truncated_copy(full, tmp_path / "cut.mp4", 0.5)
    with pytest.raises(MediaError, match=r"cut\.mp4.*truncated"):
        probe(cut)


def test_truncated_file_with_index_gives_a_shorter_stream(tmp_path, caplog):
    # moov first (faststart): the frames that arrived are returned, nothing is invented
    full = make_video(tmp_path / "full.mp4", seconds=3.0, faststart=True)
    cut = truncated_copy(full, tmp_path / "cut.mp4", 0.5)
    assert probe(cut).duration == pytest.approx(3.0)  # the index still claims 3 s
    with caplog.at_level(logging.WARNING):
        x = sample_frames(cut, 25, size=16)
    assert 10 < len(x) < 75
    assert read_index(x) == list(range(len(x)))
    assert "cut.mp4" in caplog.text


def test_folder_is_not_a_video(tmp_path):
    with pytest.raises(MediaError, match="folder"):
        probe(tmp_path)


def test_tags_that_are_not_utf8_do_not_stop_the_file(tmp_path):
    # a Latin-1 (or damaged) title tag made PyAV raise UnicodeDecodeError while opening (found by fuzzing)
    import av
    src = make_video(tmp_path / "t.mkv", fps=10, seconds=1.0)
    with av.open(str(src)) as inp, av.open(str(tmp_path / "tagged.mkv"), "w") as out:
        out.metadata["title"] = "TITLE-Zz-TAG"
        vout = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = vout
                out.mux(packet)
    data = (tmp_path / "tagged.mkv").read_bytes()
    assert data.count(b"TITLE-Zz-TAG") == 1
    bad = tmp_path / "latin1.mkv"
    bad.write_bytes(data.replace(b"TITLE-Zz-TAG", b"TITLE-\xe9\xa8-TAG"))
    assert probe(bad).duration == pytest.approx(1.0, abs=0.15)
