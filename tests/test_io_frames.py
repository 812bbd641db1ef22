"""Frames by presentation time: files at 16..60 fps and VFR, IMAGE batches, rotation, odd sizes."""
from __future__ import annotations

import gc
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from kf_core.config import SeqConfig
from kf_core.io import (MediaError, frames_from_images, probe, sample_frames, sample_streams,
                        streams_for)
from kf_core.io.frames import _AHEAD, _WORKERS, TIME_EPSILON, StreamSpec
from tests.media import decode_all_rgb, make_video, marker_corner, read_index

RATES = [16, 24, 25, Fraction(30000, 1001), 30, 60]
VFR_TIMES = [0, 0.03, 0.1, 0.25, 0.26, 0.5, 0.9, 1.0, 1.3, 1.31, 1.32, 1.6, 1.9]


def expected_indices(times, target_fps, count):
    """The frame shown at k/target_fps: the last one whose time <= the target (independent maths)."""
    out = []
    for k in range(count):
        t = Fraction(k) / Fraction(target_fps)
        out.append(max(i for i, ti in enumerate(times) if ti <= t))
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    made = {fps: make_video(d / f"v{float(fps):.3f}.mp4", fps=fps, seconds=2.0) for fps in RATES}
    made["vfr"] = make_video(d / "vfr.mp4", timestamps=VFR_TIMES, seconds=2.1)
    return made


@pytest.mark.parametrize("fps", RATES, ids=lambda f: f"{float(f):.2f}fps")
def test_file_frames_are_the_ones_shown_at_each_instant(videos, fps):
    path = videos[fps]
    n = int(round(2.0 * fps))
    info = probe(path)
    assert info.duration == pytest.approx(float(n / Fraction(fps)), abs=1e-6)
    assert info.fps == pytest.approx(float(fps))
    assert info.frame_count == n and not info.has_audio
    times = [Fraction(i) / Fraction(fps) for i in range(n)]
    out = sample_streams(path, {"visual": (8, 32, "squash"), "sync": (25, 32, "crop")})
    assert out["visual"].shape == (int(info.duration * 8), 3, 32, 32)
    assert out["sync"].shape == (int(info.duration * 25), 3, 32, 32)
    assert out["visual"].dtype == torch.uint8
    assert read_index(out["visual"]) == expected_indices(times, 8, len(out["visual"]))
    assert read_index(out["sync"]) == expected_indices(times, 25, len(out["sync"]))
    # single-stream calls decode to the same frames as the combined pass
    assert torch.equal(sample_frames(path, 8, size=32), out["visual"])


@pytest.mark.parametrize("fps", RATES, ids=lambda f: f"{float(f):.2f}fps")
def test_image_batch_picks_the_same_frames_as_the_file(videos, fps):
    images, _ = decode_all_rgb(videos[fps])
    for target, mode in [(8, "squash"), (25, "crop")]:
        from_file = sample_frames(videos[fps], target, size=32, mode=mode)
        from_images = frames_from_images(images, float(fps), target, size=32, mode=mode)
        assert torch.equal(from_file, from_images)  # same frames, same pixels


def test_image_batch_duration_is_frames_over_fps():
    # 5 s of Wan at 16 fps must give 5 s worth of frames, not 80/25 = 3.2 s
    images = torch.zeros(80, 8, 8, 3)
    assert frames_from_images(images, 16, 8, size=8).shape[0] == 40
    assert frames_from_images(images, 16, 25, size=8).shape[0] == 125


def test_variable_frame_rate_file_and_timestamps(videos):
    path = videos["vfr"]
    info = probe(path)
    assert info.duration == pytest.approx(2.1, abs=1e-3)
    times = [Fraction(t).limit_denominator(1000) for t in VFR_TIMES]
    for target in (8, 25):
        x = sample_frames(path, target, size=32)
        assert len(x) == int(2.1 * target)
        assert read_index(x) == expected_indices(times, target, len(x))
        images, pts = decode_all_rgb(path)
        y = frames_from_images(images, None, target, size=32, timestamps=pts, duration=info.duration)
        assert torch.equal(x, y)


def test_count_start_and_seq_config(videos):
    path = videos[25]
    seq = SeqConfig(duration=1.5)
    specs = streams_for(seq, visual_size=32, sync_size=32)
    out = sample_streams(path, specs, duration=1.5)
    assert out["visual"].shape[0] == seq.visual_len == 12
    assert out["sync"].shape[0] == seq.sync_frames == 32
    late = sample_frames(path, 8, size=32, start=1.0, duration=0.5)
    assert read_index(late) == [25, 28, 31, 34]  # frames shown at 1.0, 1.125, 1.25, 1.375 s


def test_frames_past_the_end_are_not_invented(videos, caplog):
    x = sample_frames(videos[25], 25, size=16, count=60)  # the clip has 50 frames
    assert x.shape[0] == 50 and read_index(x)[-1] == 49
    assert "got 50 of 60" in caplog.text


def test_rotation_metadata_rotates_the_output(tmp_path):
    path = make_video(tmp_path / "rot.mp4", rotation=90, width=64, height=48, seconds=1.0)
    info = probe(path)
    assert info.rotation == 90 and (info.display_width, info.display_height) == (48, 64)
    x = sample_frames(path, 8, size=32)
    assert marker_corner(x[0]) == "bl"  # top-left corner turned a quarter counter-clockwise
    assert read_index(torch.rot90(x, -1, dims=(-2, -1))) == list(range(0, 24, 3))


def test_odd_sizes_and_crop_geometry(tmp_path):
    path = make_video(tmp_path / "odd.mp4", width=97, height=53, seconds=1.0)
    info = probe(path)
    assert (info.width, info.height) == (97, 53)
    x = sample_frames(path, 25, size=40, mode="crop")
    assert x.shape == (25, 3, 40, 40) and read_index(x) == list(range(25))
    # crop keeps the aspect: the marker (top-left of the full frame) is cut off by the centre crop
    squash = sample_frames(path, 25, size=40, mode="squash")
    assert marker_corner(squash[0]) == "tl"
    assert float(x[0, 0, :5, :5].float().mean()) < 200  # no red corner left after cropping


def test_decoding_holds_only_a_few_frames(videos):
    live = []

    def count_frames():
        live.append(sum(type(o) is av.VideoFrame for o in gc.get_objects()))

    sample_streams(videos[60], {"a": (8, 16, "squash"), "b": (25, 16, "crop")},
                   check_cancel=count_frames)
    # those queued for the RGB workers, each worker's RGB output, the held frame, the one just
    # decoded and the decoder's own: a constant, not the video
    assert live and max(live) <= _AHEAD + _WORKERS + 3


def test_cancel_stops_sampling(videos):
    class Stop(Exception):
        pass

    def cancel():
        raise Stop

    with pytest.raises(Stop):
        sample_frames(videos[30], 25, size=16, check_cancel=cancel)


def test_clip_shorter_than_a_sync_segment(tmp_path):
    path = make_video(tmp_path / "short.mp4", seconds=0.4)
    with pytest.raises(MediaError, match=r"short\.mp4.*0\.40 s.*0\.64 s"):
        sample_streams(path, streams_for(SeqConfig(duration=1.0)), duration=None)
    images = torch.zeros(10, 8, 8, 3)
    with pytest.raises(MediaError, match="0.64 s"):
        frames_from_images(images, 25, 25, size=8, min_count=16)


@pytest.mark.parametrize("size", [0, 20000])
def test_absurd_sizes_are_refused(videos, size):
    with pytest.raises(MediaError, match="between 1 and 16384"):
        sample_frames(videos[25], 8, size=size)


def test_time_epsilon_is_far_below_a_frame():
    assert TIME_EPSILON < 0.2 / 1000  # a fifth of a frame even at 1000 fps
    images = torch.arange(3).float().view(3, 1, 1, 1).expand(3, 4, 4, 3) / 255.0
    # frame i shown from i/3 s; a target exactly at 1/3 s (float rounding aside) takes frame 1
    x = frames_from_images(images, 3.0, 3.0, size=4, count=3)
    assert x[:, 0, 0, 0].tolist() == [0, 1, 2]
    assert not np.isnan(x.float().numpy()).any()


def mmaudio_indices(times, target_fps, count):
    """MMAudio's load_video rule, independently: a float64 clock adding 1/fps, first frame >= it."""
    out, t = [], 0.0
    for _ in range(count):
        later = [i for i, ti in enumerate(times) if ti >= t]
        out.append(later[0] if later else len(times) - 1)
        t += 1 / target_fps
    return out


@pytest.mark.parametrize("fps", [24, 25, 30], ids=lambda f: f"{f}fps")
def test_mmaudio_timing_takes_the_first_frame_at_or_after_its_float_clock(videos, fps):
    path = videos[fps]
    _, pts = decode_all_rgb(path)
    for target, count in ((8, 16), (25, 50)):
        x = sample_frames(path, target, size=16, count=count, timing="mmaudio")
        assert read_index(x) == mmaudio_indices(pts, target, count)
        on_screen = read_index(sample_frames(path, target, size=16, count=count))
        assert all(0 <= a - b <= 1 for a, b in zip(read_index(x), on_screen))  # never earlier, <= 1 later
    if fps == 25:  # the accumulated error makes most coinciding targets take the next frame
        assert read_index(sample_frames(path, 25, size=16, count=8, timing="mmaudio")) == [0, 1, 2, 3, 4, 5, 7, 7]


def test_mmaudio_timing_on_image_batches_and_vfr_matches_files(videos):
    images, pts = decode_all_rgb(videos["vfr"])
    x = sample_frames(videos["vfr"], 25, size=16, timing="mmaudio", duration=2.1)
    y = frames_from_images(images, None, 25, size=16, timestamps=pts, duration=2.1, timing="mmaudio")
    assert torch.equal(x, y) and read_index(x) == mmaudio_indices(pts, 25, len(x))


@pytest.mark.parametrize("timing", ["on_screen", "mmaudio"])
def test_skip_continues_one_clock_so_pieces_equal_one_pass(videos, timing):
    path = videos[25]
    whole = sample_frames(path, 25, size=16, count=48, timing=timing)
    spec = StreamSpec(25, 16, "squash", count=24, timing=timing, skip=24)
    late = sample_streams(path, {"s": spec})["s"]
    assert torch.equal(late, whole[24:48])
    images, _ = decode_all_rgb(path)
    assert torch.equal(frames_from_images(images, 25, 25, size=16, count=24, timing=timing, skip=24),
                       whole[24:48])
    assert streams_for(SeqConfig(1.0), timing=timing)["sync"].timing == timing
    with pytest.raises(ValueError, match="timing must be one of"):
        StreamSpec(25, 16, timing="nearest")
