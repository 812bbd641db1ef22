"""The reference pipeline end to end on a random-weight kf-tiny (plumbing, not quality)."""
from __future__ import annotations

import pytest
import torch

from kf_core.pipeline import (decode_mel, encode_text, encode_video, load_pipeline, open_video, sample_latents,
                              sample_once, to_stereo, vocode)
from media import make_video
from tiny_model import write_random_tiny_folder


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    folder = write_random_tiny_folder(tmp_path_factory.mktemp("kf-tiny-random"))
    return load_pipeline(folder)


@pytest.mark.parametrize("fps", [16, 24, 30])
def test_image_batch_gives_exactly_the_videos_duration(pipe, fps):
    n = int(1.5 * fps)
    images = torch.rand(n, 48, 64, 3)
    wave, sr = pipe.generate(images, fps=fps, prompt="a ball bouncing", steps=2)
    assert wave.shape == (2, round(n / fps * sr)) and sr == 44100
    assert wave.abs().max() <= 1.0 and torch.isfinite(wave).all()


def test_file_and_mux(pipe, tmp_path):
    src = make_video(tmp_path / "in.mp4", fps=25, seconds=1.2, width=64, height=48)
    wave, sr = pipe.generate(src, steps=2, seed=3)
    assert wave.shape == (2, round(1.2 * sr))
    out = pipe.mux(src, wave, sr, tmp_path / "out.mp4")
    again = pipe.mux(src, wave, sr, tmp_path / "out.mp4")
    assert out.exists() and again != out  # never overwrites


def test_stages_reuse_encoders_and_seed_is_deterministic(pipe):
    c = pipe.components
    clip = open_video(torch.rand(24, 32, 32, 3), fps=24)
    video = encode_video(c.visual_encoders, clip)
    text = encode_text(c.text_encoder, "rain", negative_prompt="music")
    a = sample_latents(c.dit, text=text, video=video, steps=2, seed=7)
    b = sample_latents(c.dit, text=text, video=video, steps=2, seed=7, sampler="heun")
    a2 = sample_latents(c.dit, text=text, video=video, steps=2, seed=7)
    assert torch.equal(a.z, a2.z) and not torch.equal(a.z, b.z)
    assert a.z.shape == (1, a.seq.latent_len, 16)
    mel = to_stereo(c.codec, decode_mel(c.codec, a))
    assert mel.mel.shape[:3] == (1, 2, 128)
    audio = vocode(c.codec, mel)
    assert audio.waveform.shape == (1, 2, round(1.0 * 44100))


def test_text_only_and_batch(pipe):
    wave, sr = pipe.generate(prompt="a bell", duration=1.3, steps=1, batch_size=2)
    assert wave.shape == (2, 2, round(1.3 * sr))


def test_bad_inputs_say_what_to_do(pipe, tmp_path):
    with pytest.raises(ValueError, match="frame rate"):
        pipe.generate(torch.rand(10, 16, 16, 3))
    with pytest.raises(ValueError, match="longer than this model"):  # one pass; sample_latents windows instead
        sample_once(pipe.components.dit, text=None, video=None, duration=100.0, steps=1, sampler="euler",
                    schedule="uniform", cfg=1.0, shift=None, seed=0, batch_size=1)
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        load_pipeline(tmp_path / "nothing")


def test_long_video_is_generated_in_windows_with_exact_length(pipe):
    steps = []
    images = torch.rand(83, 32, 32, 3)  # 5.1875 s at 16 fps
    wave, sr = pipe.generate(images, fps=16, steps=1, window=2.0, overlap=0.5,
                             callback=lambda step, total, x, t: steps.append((step, total)))
    assert wave.shape == (2, round(83 / 16 * sr)) and torch.isfinite(wave).all()
    n_windows = steps[-1][1]
    assert n_windows >= 3 and [s for s, _ in steps] == list(range(1, n_windows + 1))


def test_long_text_only_and_window_shorter_than_a_sync_segment(pipe):
    wave, sr = pipe.generate(prompt="rain", duration=3.0, steps=1, window=1.5, overlap=0.25)
    assert wave.shape == (2, 3 * sr)
    with pytest.raises(ValueError, match="window"):
        pipe.generate(prompt="rain", duration=3.0, steps=1, window=0.5)


def test_long_clip_windows_are_encoded_once_and_cached(pipe):
    c = pipe.components
    video = encode_video(c.visual_encoders, open_video(torch.rand(48, 32, 32, 3), fps=16))  # 3 s
    a = sample_latents(c.dit, video=video, steps=1, window=1.5, overlap=0.25, seed=1)
    cached = dict(video.windows)
    assert len(cached) >= 2 and all(w.duration <= 1.5 for w in cached.values())
    b = sample_latents(c.dit, video=video, steps=1, window=1.5, overlap=0.25, seed=1)
    assert torch.equal(a.z, b.z) and video.windows == cached  # same windows, nothing re-encoded
    assert a.z.shape == (1, a.seq.latent_len, 16) and a.seq.duration == 3.0



@pytest.mark.parametrize("seconds", [8.5, 60.0, 192.5, 600.0, 3600.0])
def test_long_clip_encoding_pieces_cover_every_frame_and_none_is_empty(seconds):
    """The piece plan of a long clip's encoding: every piece has visual and sync frames, the pieces
    tile the whole clip's visual frames and sync segments on one clock (a 10-minute clip once ran
    out of visual frames four pieces before the end: 64 frames per piece against 7.68 s of sync)."""
    from kf_core.config import SeqConfig
    from kf_core.io import streams_for
    from kf_core.pipeline import _chunks
    seq = SeqConfig(seconds)
    streams = streams_for(seq, visual_size=64, sync_size=64)
    pieces = _chunks(streams, seq)
    assert len(pieces) > 1
    vis, syn = streams["visual"], streams["sync"]
    assert all(p["visual"].count > 0 and p["sync"].count >= seq.sync_segment for p in pieces)
    assert [p["visual"].skip for p in pieces[1:]] == [p["visual"].skip + p["visual"].count for p in pieces[:-1]]
    assert pieces[0]["visual"].skip == 0 and pieces[-1]["visual"].skip + pieces[-1]["visual"].count == vis.count
    segs = sum((p["sync"].count - seq.sync_segment) // seq.sync_stride + 1 for p in pieces)
    assert segs == seq.sync_segments and pieces[-1]["sync"].skip + pieces[-1]["sync"].count <= syn.count
    for p in pieces:   # a piece's visual frames lie in (about) its sync span
        t_sync = p["sync"].skip / seq.sync_fps
        assert abs(p["visual"].skip / seq.visual_fps - t_sync) < 1.0 / seq.visual_fps + 1e-9
