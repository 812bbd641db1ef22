"""The synthetic world: determinism, exact lengths, and sound events visible at their instants."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kf_core.data.dataset import SyntheticDataset, split_seed
from kf_core.data.synthetic import CLASSES, concat_clips, make_clip
from kf_core.eval.sync_metrics import detect_onsets, onset_scores

SR = 44100


def test_deterministic_per_seed_and_different_across_seeds():
    a, b = make_clip(7, duration=2.0, size=64), make_clip(7, duration=2.0, size=64)
    assert a.frames.tobytes() == b.frames.tobytes() and a.audio.tobytes() == b.audio.tobytes()
    assert a.caption == b.caption and a.events == b.events
    c = make_clip(8, duration=2.0, size=64)
    assert a.audio.shape != c.audio.shape or not np.array_equal(a.audio, c.audio)


@pytest.mark.parametrize("duration,fps,size", [(2.0, 12.0, 64), (3.3, 60.0, (96, 128)), (2.51, 25.0, (64, 96))])
def test_shapes_honour_duration_fps_size(duration, fps, size):
    clip = make_clip(3, duration=duration, fps=fps, size=size)
    h, w = (size, size) if isinstance(size, int) else size
    assert clip.frames.shape == (round(duration * fps), h, w, 3) and clip.frames.dtype == np.uint8
    assert clip.audio.shape == (2, round(duration * SR)) and clip.audio.dtype == np.float32
    assert clip.fps == fps and clip.duration == duration
    assert np.abs(clip.audio).max() <= 1.0 and clip.caption


def test_random_options_cover_ranges_and_layouts():
    clips = [make_clip(s, size=64, fps=12) for s in range(12)]
    assert {c.layout for c in clips} == {"single", "multi", "concat"}
    assert all(2.0 <= c.duration <= 12.0 for c in clips)
    assert set(CLASSES) == {"ball", "strike", "bell", "footsteps", "vehicle", "rain", "bird", "light", "ambience"}


def test_bad_options_raise_helpful_errors():
    with pytest.raises(ValueError, match="unknown or empty classes"):
        make_clip(0, classes=["dragon"])
    with pytest.raises(ValueError, match=r"needs >= 4.56 s \(3 x 38 frames at 25 fps\)"):
        make_clip(0, duration=3.0, fps=25.0, classes=["ball", "bell", "bird"], layout="concat")


def test_concat_parts_are_whole_frames_at_every_frame_rate():
    # at 15 fps a 1.5 s part is 23 frames, so a 3.0 s clip (45 frames) cannot hold two parts; the
    # seconds-based count once said it could and _split_frames crashed (seen in train-tiny)
    for seed in range(40):
        c = make_clip(seed, duration=3.0, fps=15.0, size=64)
        assert c.frames.shape[0] == 45
    with pytest.raises(ValueError, match=r"2 x 23 frames at 15 fps"):
        make_clip(0, duration=3.0, fps=15.0, classes=["ball", "bell"], layout="concat")


def _ball_bottom(frame: np.ndarray, colour) -> float:
    """Lowest row whose pixels are mostly the ball colour (frame uint8 [H, W, 3])."""
    close = np.abs(frame.astype(float) / 255 - np.asarray(colour)).sum(-1) < 0.25
    rows = np.flatnonzero(close.any(axis=1))
    return float(rows.max()) if rows.size else -1.0


@pytest.mark.parametrize("seed,fps", [(1, 25.0), (4, 12.0), (9, 60.0)])
def test_ball_touches_floor_exactly_at_impacts(seed, fps):
    clip = make_clip(seed, duration=4.0, fps=fps, size=96, classes=["ball"], looks="classic")  # plain colours
    floor = next(e.y for e in clip.events) * 96
    colour = tuple(clip.frames[0, 0, 0] / 255)  # background; ball colour found from the impact frame
    impact_frames = [round(e.time_s * fps) for e in clip.events]
    assert impact_frames, "the ball should hit the floor at least once in 4 s"
    first = clip.frames[impact_frames[0]].astype(float) / 255
    # The ball's colour: the most saturated pixel just above the floor at the first impact.
    band = first[max(0, int(floor) - 6): int(floor)]
    colour = band.reshape(-1, 3)[np.argmax(np.abs(band - np.asarray(colour)).sum(-1))]
    for k in impact_frames:
        assert _ball_bottom(clip.frames[k], colour) >= floor - 1.5, f"frame {k}: ball not on the floor"
    mid = (impact_frames[0] + impact_frames[1]) // 2 if len(impact_frames) > 1 else 0
    assert _ball_bottom(clip.frames[mid], colour) < floor - 2.5, "between impacts the ball must be in the air"


def test_light_is_bright_exactly_at_beep_onsets():
    clip = make_clip(2, duration=5.0, fps=25.0, size=64, classes=["light"], looks="classic")  # no flicker
    on = [round(e.time_s * 25) for e in clip.events]
    lum = clip.frames.astype(float).mean(axis=(1, 2, 3))
    off = np.setdiff1d(np.arange(len(lum)), [k + d for e in clip.events for d in range(int(e.duration * 25) + 1)
                                              for k in [round(e.time_s * 25)]])
    assert on and off.size
    assert lum[on].min() > lum[off].max()


@pytest.mark.parametrize("kind", ["ball", "strike", "bell", "footsteps", "bird", "light"])
def test_ground_truth_onsets_within_20ms(kind):
    clip = make_clip(11, duration=4.0, fps=25.0, size=64, classes=[kind])
    est = detect_onsets(clip.audio, SR)
    s = onset_scores(clip.onset_times, est, tol=0.02, ignore=clip.texture_spans)
    assert clip.onset_times.size and s["fn"] == 0 and s["fp"] == 0, (clip.onset_times, est)
    assert s["abs_errors"].max() < 0.02


def test_source_on_the_left_is_louder_left():
    for seed in range(6):
        clip = make_clip(seed, duration=3.0, fps=25.0, size=64, classes=["strike"])
        x = clip.events[0].x
        left, right = (float((clip.audio[ch] ** 2).sum()) for ch in (0, 1))
        assert (left > right) == (x < 0.5), (x, left, right)


def test_concat_shifts_events_and_merges_captions():
    a = make_clip(1, duration=2.0, fps=25.0, size=64, classes=["light"])
    b = make_clip(2, duration=2.0, fps=25.0, size=64, classes=["bird"])
    c = concat_clips([a, b])
    assert c.frames.shape[0] == 100 and c.audio.shape == (2, 4 * SR)
    assert c.caption == f"{a.caption}, then {b.caption}"
    assert [e.time_s for e in c.events] == [e.time_s for e in a.events] + [e.time_s + 2.0 for e in b.events]
    np.testing.assert_array_equal(c.audio[:, 2 * SR:], b.audio)


def test_dataset_splits_are_disjoint_and_deterministic():
    train, held = SyntheticDataset(2, 5, duration=2.0, size=64), SyntheticDataset(2, 5, split="heldout", duration=2.0, size=64)
    assert split_seed(0, 5, "train") != split_seed(0, 5, "heldout")
    item = train[1]
    assert isinstance(item["audio"], torch.Tensor) and item["audio"].shape == (2, 2 * SR)
    assert torch.equal(item["frames"], train[1]["frames"]) and not torch.equal(item["audio"], held[1]["audio"])
    with pytest.raises(IndexError):
        train[2]


def test_example_video_is_small_h264_with_all_frames(tmp_path):
    import av

    from kf_core.data.example_video import write_example_video

    path = tmp_path / "bounce.mp4"
    clip = write_example_video(path, seed=3, duration=2.0)
    assert path.stat().st_size < 1_000_000
    with av.open(str(path)) as f:
        assert f.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in f.decode(video=0)) == clip.frames.shape[0] == 50
    with pytest.raises(FileExistsError):
        write_example_video(path, seed=3)
