"""WAV/FLAC writing and reading, exact-length resampling, no overwrite, atomic writes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kf_core.io import MediaError, read_audio, resample, unique_path, write_audio
from kf_core.io.paths import atomic_output
from tests.media import make_audio_wave


@pytest.fixture(scope="module")
def wave():
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.uniform(-0.9, 0.9, (2, 22050)).astype(np.float32))


@pytest.mark.parametrize("name,fmt,tol", [("a.wav", "s16", 2 ** -15), ("a.wav", "f32", 0.0),
                                          ("a.wav", "s32", 1e-9), ("a.flac", "s16", 2 ** -15),
                                          ("a.flac", "s32", 2 ** -23)])
def test_round_trip(tmp_path, wave, name, fmt, tol):
    path = write_audio(tmp_path / name, wave, 22050, sample_format=fmt)
    back, sr = read_audio(path)
    assert sr == 22050 and back.shape == wave.shape and back.dtype == torch.float32
    assert float((back - wave).abs().max()) <= tol


def test_mono_and_resampling_give_exact_lengths(tmp_path):
    path = write_audio(tmp_path / "s.wav", make_audio_wave(1.3, 44100), 44100)
    back, sr = read_audio(path, sample_rate=16000, mono=True)
    assert sr == 16000 and back.shape == (1, round(1.3 * 16000))
    # the 440 Hz left / 880 Hz right sines survive resampling: energy at 440 and 880 Hz
    spec = np.abs(np.fft.rfft(back[0].numpy()))
    freqs = np.fft.rfftfreq(back.shape[1], 1 / 16000)
    top = sorted(freqs[np.argsort(spec)[-2:]])
    assert top == pytest.approx([440, 880], abs=2)
    assert resample(torch.zeros(2, 44100), 44100, 48000).shape == (2, 48000)


def test_never_overwrites(tmp_path, wave):
    first = write_audio(tmp_path / "take.wav", wave, 22050)
    second = write_audio(tmp_path / "take.wav", wave * 0, 22050)
    assert first.name == "take.wav" and second.name == "take_00001.wav"
    assert float(read_audio(first)[0].abs().max()) > 0.5  # the first take is untouched
    assert unique_path(tmp_path / "take.wav").name == "take_00002.wav"


def test_cancel_leaves_nothing(tmp_path):
    class Stop(Exception):
        pass

    def cancel():
        raise Stop

    with pytest.raises(Stop):
        write_audio(tmp_path / "c.wav", make_audio_wave(3.0), 44100, check_cancel=cancel)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "x.mp4") as pending:
        pending.tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_explained(tmp_path, wave):
    with pytest.raises(MediaError, match="NaN"):
        write_audio(tmp_path / "n.wav", torch.full((2, 10), float("nan")), 44100)
    with pytest.raises(MediaError, match=r"\.mp3.*\.wav or \.flac"):
        write_audio(tmp_path / "n.mp3", wave, 44100)
    with pytest.raises(MediaError, match="channels"):
        write_audio(tmp_path / "n.wav", torch.zeros(1, 2, 10), 44100)
    with pytest.raises(MediaError, match="FLAC cannot store"):
        write_audio(tmp_path / "n.flac", wave, 44100, sample_format="f32")
    with pytest.raises(MediaError, match="no audio track"):
        from tests.media import make_video
        read_audio(make_video(tmp_path / "silent.mp4", seconds=0.5))


@pytest.mark.parametrize("name", ["s.wav", "s.flac"])
def test_chunks_of_any_size_give_the_same_file_as_one_wave(tmp_path, wave, name):
    whole, _ = read_audio(write_audio(tmp_path / "w" / name, wave, 44100))
    parts = (wave[:, s:s + n] for s, n in ((0, 1), (1, 5000), (5001, 3), (5004, 10 ** 6)))
    streamed, _ = read_audio(write_audio(tmp_path / "c" / name, parts, 44100))
    assert torch.equal(whole, streamed)
