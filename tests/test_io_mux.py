"""mux_audio: packet-exact remux, audio as long as the video, frames input, no overwrite, cancel."""
from __future__ import annotations

from fractions import Fraction

import av
import pytest
import torch

from kf_core.io import MediaError, mux_audio, probe, read_audio, sample_frames
from tests.media import make_audio_wave, make_video, read_index

SR = 44100


def video_packets(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(bytes(p), float(p.pts * p.time_base), p.is_keyframe) for p in c.demux(s)
                if p.dts is not None]


def audio_tracks(path):
    with av.open(str(path)) as c:
        return [(s.codec_context.name, s.channels) for s in c.streams.audio]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    # 24 fps with an old 1 s mono-ish AAC track that must be replaced
    return make_video(tmp_path_factory.mktemp("mux") / "src.mp4", fps=24, seconds=2.0,
                      audio=True, audio_seconds=1.0)


@pytest.mark.parametrize("suffix,codec", [(".mp4", "aac"), (".mov", "aac"), (".mkv", "flac")])
@pytest.mark.parametrize("audio_seconds", [1.3, 2.7])  # shorter and longer than the video
def test_remux_copies_video_and_fits_audio(tmp_path, source, suffix, codec, audio_seconds):
    out = mux_audio(source, torch.from_numpy(make_audio_wave(audio_seconds, SR)), SR,
                    tmp_path / f"out{suffix}")
    assert out.suffix == suffix and out.exists()
    got, want = video_packets(out), video_packets(source)
    assert [(b, k) for b, _, k in got] == [(b, k) for b, _, k in want]  # bytes and key frames
    tol = 1e-3 if suffix == ".mkv" else 1e-9  # Matroska stores times in milliseconds
    assert [t for _, t, _ in got] == pytest.approx([t for _, t, _ in want], abs=tol)
    assert audio_tracks(out) == [(codec, 2)]  # the old track is gone
    wave, sr = read_audio(out)
    assert sr == SR and wave.shape[0] == 2
    assert abs(wave.shape[1] - 2.0 * SR) <= 1024  # the video's duration, within one AAC frame
    assert probe(out).duration == pytest.approx(2.0)


def test_frames_tensor_is_encoded_at_its_fps(tmp_path):
    frames = torch.rand(31, 53, 97, 3)  # odd size, 16 fps (Wan): 1.9375 s
    out = mux_audio(frames, torch.from_numpy(make_audio_wave(3.0, SR)), SR, tmp_path / "f.mp4", fps=16)
    info = probe(out)
    assert info.duration == pytest.approx(31 / 16) and info.frame_count == 31
    assert (info.width, info.height) == (98, 54)  # padded to even for yuv420p
    assert audio_tracks(out) == [("aac", 2)]
    assert abs(read_audio(out)[0].shape[1] - round(31 / 16 * SR)) <= 1024


def test_frames_keep_their_order_and_times(tmp_path):
    from tests.media import index_frame
    fps = Fraction(30000, 1001)
    frames = torch.stack([torch.from_numpy(index_frame(k, 64, 48)) for k in range(45)])
    out = mux_audio(frames, torch.zeros(2, 100), SR, tmp_path / "i.mov", fps=float(fps))
    assert probe(out).duration == pytest.approx(45 * 1001 / 30000, abs=1e-3)
    assert read_index(sample_frames(out, 25, size=32)) == [k * 30000 // (25 * 1001) for k in range(37)]


def test_dropped_tracks_are_warned_about(tmp_path, source, caplog):
    with caplog.at_level("WARNING"):
        mux_audio(source, torch.zeros(2, SR), SR, tmp_path / "o.mkv")
    assert any("its 1 audio track will not be in the output" in r.getMessage() for r in caplog.records)


def test_streamed_chunks_give_the_same_file_as_one_wave(tmp_path, source):
    wave = torch.from_numpy(make_audio_wave(2.5, SR))
    whole = read_audio(mux_audio(source, wave, SR, tmp_path / "a.mkv"))[0]
    chunks = read_audio(mux_audio(source, iter(wave.split(7777, dim=1)), SR, tmp_path / "b.mkv"))[0]
    assert whole.shape == chunks.shape == (2, 2 * SR) and torch.equal(whole, chunks)


def test_existing_output_is_never_overwritten(tmp_path, source):
    taken = tmp_path / "out.mp4"
    taken.write_bytes(b"precious")
    out = mux_audio(source, torch.zeros(2, SR), SR, taken)
    assert out.name == "out_00001.mp4" and taken.read_bytes() == b"precious"


def test_cancel_leaves_no_file(tmp_path, source):
    class Stop(Exception):
        pass

    calls = []

    def cancel():
        calls.append(1)
        if len(calls) > 1:
            raise Stop

    with pytest.raises(Stop):
        mux_audio(source, torch.zeros(2, SR), SR, tmp_path / "c.mp4", check_cancel=cancel)
    with pytest.raises(Stop):
        mux_audio(torch.rand(40, 16, 16, 3), torch.zeros(2, SR), SR, tmp_path / "c.mp4", fps=25,
                  check_cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_errors_name_the_problem(tmp_path, source):
    with pytest.raises(MediaError, match=r"\.avi"):
        mux_audio(source, torch.zeros(2, 10), SR, tmp_path / "o.avi")
    with pytest.raises(MediaError, match="not available for .mp4"):
        mux_audio(source, torch.zeros(2, 10), SR, tmp_path / "o.mp4", audio_codec="flac")
    with pytest.raises(MediaError, match="fps"):
        mux_audio(torch.rand(4, 8, 8, 3), torch.zeros(2, 10), SR, tmp_path / "o.mp4")
    with pytest.raises(MediaError, match=r"o\.webm: the source.s h264 video cannot be stored.*use \.mkv"):
        mux_audio(source, torch.zeros(2, 10), SR, tmp_path / "o.webm")
    with pytest.raises(MediaError, match="file not found"):
        mux_audio(tmp_path / "nope.mp4", torch.zeros(2, 10), SR, tmp_path / "o.mp4")
    assert list(tmp_path.iterdir()) == []
