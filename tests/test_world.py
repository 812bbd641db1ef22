"""The world's looks: seeded, held-out families kept out of training, sound independent of look,
silent distractors, variable frame rate with events on shown frames, sizes and rates in range."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from kf_core.data import film
from kf_core.data.dataset import split_seed
from kf_core.data.looks import FAMILIES, HELDOUT, MAX_FRAME_BYTES, RENDER_PIXELS
from kf_core.data.synthetic import clip_look, make_clip
from kf_core.eval.synthetic_eval import heldout_clips
from kf_core.io import frames_from_images

SR = 44100


def _still(look):
    """The same look with a still, unzoomed camera (everything else as drawn)."""
    return dataclasses.replace(look, scenes=tuple(dataclasses.replace(s, camera="static", zoom=(1.0, 1.0),
                                                                      pan=(0.0,) * 4, shake=0.0) for s in look.scenes))


def _plain(look, **changes):
    """A look with every scene still (no camera, light, distractors) unless `changes` say otherwise."""
    scenes = tuple(dataclasses.replace(s, lighting="steady", light_depth=0.0, distractors=()) for s in _still(look).scenes)
    return dataclasses.replace(look, scenes=scenes, noise=0.0, blur=0.0, crf=None, vfr=False, **changes)


def test_look_is_seeded_and_gives_identical_clips():
    a, b = (make_clip(5, duration=1.5, classes=["ball", "light"], layout="multi") for _ in range(2))
    assert a.look == b.look and a.look.family == "train"
    assert a.frames.tobytes() == b.frames.tobytes() and a.audio.tobytes() == b.audio.tobytes()
    assert a.events == b.events and a.caption == b.caption
    assert clip_look(5, duration=1.5) == a.look  # described without rendering
    assert clip_look(6, duration=1.5) != a.look


def test_heldout_families_never_occur_in_training_seeds():
    seen_train = {axis: set() for axis in FAMILIES}
    for i in range(400):
        look = clip_look(split_seed(i, 0, "train"), duration=4.0)
        for scene in look.families():
            for axis, family in scene.items():
                assert family not in HELDOUT.get(axis, ()), (i, axis, family)
                seen_train[axis].add(family)
    for axis, fams in FAMILIES.items():  # every training family does occur
        assert seen_train[axis] == set(fams) - set(HELDOUT.get(axis, ())), axis
    seen_held = {axis: set() for axis in HELDOUT}
    for i in range(150):
        look = clip_look(split_seed(i, 0, "heldout"), duration=4.0, looks="heldout")
        for scene in look.families():
            assert any(scene[axis] in HELDOUT[axis] for axis in HELDOUT), scene
            for axis in HELDOUT:
                seen_held[axis].add(scene[axis])
    assert all(set(HELDOUT[axis]) <= seen_held[axis] for axis in HELDOUT)


def test_look_never_changes_what_sounds_or_when():
    # the same seed in five looks (training and held-out families), rate and size fixed
    kw = dict(duration=3.0, fps=25.0, size=(96, 160), classes=["ball", "strike", "bird"], layout="multi")
    looks = [clip_look(s, looks=fam, **{k: kw[k] for k in ("duration", "fps", "size")})
             for s, fam in ((1, "train"), (2, "train"), (3, "heldout"), (4, "heldout"))]
    clips = [make_clip(9, looks=look, **kw) for look in looks]
    ref = clips[0]
    for c in clips[1:]:
        assert not np.array_equal(c.frames, ref.frames)
        assert [(e.time_s, e.kind, e.strength, e.onset) for e in c.events] == \
               [(e.time_s, e.kind, e.strength, e.onset) for e in ref.events]
    # with a still, unzoomed camera the audio and the positions are bit-identical, whatever the rest
    # (background, floor, colours, lighting, distractors, noise, blur, compression, VFR) is
    still = [make_clip(9, looks=_still(dataclasses.replace(look, vfr=i == 1)), **kw) for i, look in enumerate(looks)]
    assert len({c.frames.tobytes() for c in still}) == len(still)
    assert len({c.audio.tobytes() for c in still}) == 1 and all(c.events == still[0].events for c in still)
    # a ball has no placement to widen, so its sound is even the classic world's
    ball = dict(duration=3.0, fps=25.0, size=(96, 128), classes=["ball"])
    assert make_clip(4, **ball, looks="classic").audio.tobytes() == \
        make_clip(4, **ball, looks=_plain(clip_look(4, **{k: ball[k] for k in ("duration", "fps", "size")}))).audio.tobytes()


def test_events_pan_where_the_camera_shows_them():
    for seed in range(4):
        look = clip_look(seed, duration=2.0, fps=25.0, size=(64, 150))
        scenes = tuple(dataclasses.replace(s, camera="pan", zoom=(0.7, 0.7), pan=(-1.0, 0.0, 1.0, 0.0)) for s in look.scenes)
        clip = make_clip(seed, duration=2.0, fps=25.0, size=(64, 150), classes=["strike"],
                         looks=dataclasses.replace(look, scenes=scenes))
        for e in clip.events:  # constant-power pan: x = atan2(R, L) / (pi / 2), per event
            s = round(e.time_s * SR)
            left, right = (float(np.abs(clip.audio[ch, s:s + 2000]).sum()) for ch in (0, 1))
            assert abs(np.arctan2(right, left) / (np.pi / 2) - e.x) < 0.05


def test_distractors_make_no_events_and_no_sound():
    kw = dict(duration=2.0, fps=24.0, size=(90, 160), classes=["ball"])
    look = _plain(clip_look(3, **{k: kw[k] for k in ("duration", "fps", "size")}))
    busy = dataclasses.replace(look, scenes=tuple(dataclasses.replace(s, distractors=("drift", "pendulum", "bob", "roller", "spinner"))
                                                  for s in look.scenes))
    quiet, moving = make_clip(3, looks=look, **kw), make_clip(3, looks=busy, **kw)
    assert quiet.audio.tobytes() == moving.audio.tobytes() and quiet.events == moving.events
    motion = np.abs(np.diff(moving.frames.astype(np.int16), axis=0)).sum()
    assert motion > 2 * np.abs(np.diff(quiet.frames.astype(np.int16), axis=0)).sum()


def test_vfr_clip_shows_every_event_frame_and_samples_like_its_frames():
    kw = dict(duration=3.0, fps=30.0, size=(96, 128), classes=["ball", "light"], layout="multi")
    look = _plain(clip_look(2, **{k: kw[k] for k in ("duration", "fps", "size")}))
    cfr, vfr = make_clip(2, looks=look, **kw), make_clip(2, looks=dataclasses.replace(look, vfr=True), **kw)
    assert cfr.timestamps is None and vfr.timestamps is not None
    assert cfr.audio.tobytes() == vfr.audio.tobytes() and cfr.events == vfr.events
    ticks = np.rint(vfr.timestamps * vfr.fps).astype(int)
    np.testing.assert_allclose(vfr.timestamps, ticks / vfr.fps, atol=1e-12)
    assert ticks[0] == 0 and list(ticks[-2:]) == [88, 89] and len(ticks) < 80  # frames are held
    for e in vfr.events:  # every event frame is shown, and shows what the fixed-rate clip shows
        k = round(e.time_s * vfr.fps)
        assert k in set(ticks) and np.array_equal(vfr.frames[k], cfr.frames[k])
    held = np.setdiff1d(np.arange(90), ticks)
    assert all(np.array_equal(vfr.frames[k], vfr.frames[k - 1]) for k in held)
    shown, ts = vfr.shown
    a = frames_from_images(torch.from_numpy(vfr.frames), vfr.fps, 25.0, size=32, duration=vfr.duration)
    b = frames_from_images(torch.from_numpy(shown), vfr.fps, 25.0, size=32, duration=vfr.duration, timestamps=ts)
    c = frames_from_images(torch.from_numpy(shown), None, 25.0, size=32, duration=vfr.duration, timestamps=ts)
    assert a.shape[0] == 75 and torch.equal(a, b) and torch.equal(a, c)


def test_sizes_aspects_and_rates_stay_in_range():
    looks = [clip_look(s, duration=d) for s, d in zip(range(600), np.tile([2.0, 6.0, 12.0], 200))]
    for look, d in zip(looks, np.tile([2.0, 6.0, 12.0], 200)):
        short, long = sorted((look.height, look.width))
        assert 64 <= short <= 1080 and long <= 1920 and look.height % 2 == 0 and look.width % 2 == 0
        assert 9 / 16 * 0.96 <= look.width / look.height <= 21 / 9 * 1.04  # even sides at 64 px: +-3 %
        assert 8.0 <= look.fps <= 60.0
        assert round(d * look.fps) * look.height * look.width * 3 <= MAX_FRAME_BYTES
        assert look.render_height * look.render_width <= RENDER_PIXELS * 1.05
    shorts = np.array([min(lk.height, lk.width) for lk in looks])
    assert shorts.max() >= 720 and np.mean(shorts <= 160) > 0.4  # 1080p-class draws exist but are rare
    assert 0.05 < np.mean([lk.vfr for lk in looks]) < 0.3 and 0.1 < np.mean([lk.crf is not None for lk in looks]) < 0.35
    assert {round(lk.width / lk.height, 2) for lk in looks} >= {0.56, 1.0, 1.78, 2.33}


def test_full_hd_clip_renders_small_and_resizes():
    clip = make_clip(1, duration=0.5, fps=24.0, size=(1080, 1920), classes=["ball"])
    assert clip.frames.shape == (12, 1080, 1920, 3) and clip.frames.dtype == np.uint8
    assert clip.look.render_height * clip.look.render_width <= RENDER_PIXELS * 1.05
    with pytest.raises(ValueError, match="MiB a clip may take"):
        make_clip(1, duration=20.0, fps=60.0, size=(1080, 1920))


def test_sounding_objects_stand_across_a_wide_frame():
    xs = np.array([e.x for s in range(10) for kind in ("strike", "light", "bird")
                   for e in make_clip(s, duration=1.0, fps=12.0, size=(64, 150), classes=[kind]).events[:1]])
    # a centre crop of a 21:9 frame keeps only x in 0.29..0.71
    assert xs.min() < 0.25 and xs.max() > 0.85 and np.mean((xs < 0.29) | (xs > 0.71)) > 0.3


def test_h264_round_trip_keeps_frames_and_lower_crf_is_closer():
    frames = make_clip(0, duration=1.0, fps=25.0, size=(64, 96), classes=["ball"], looks="classic").frames
    fine, coarse = (film.h264_round_trip(frames, 25.0, crf) for crf in (18, 42))
    assert fine.shape == coarse.shape == frames.shape
    err = [np.abs(x.astype(int) - frames).mean() for x in (fine, coarse)]
    assert err[0] < 3 and err[0] < err[1]


def test_eval_splits_use_their_looks():
    (train,), _ = heldout_clips(1, 0, 2.0)
    (held,), _ = heldout_clips(1, 0, 2.0, split="heldout-look")
    (plain,), _ = heldout_clips(1, 0, 2.0, split="classic")
    assert (train.look.family, held.look.family, plain.look.family) == ("train", "heldout", "classic")
    assert train.seed == held.seed == plain.seed >= 1_000_000_000
    with pytest.raises(ValueError, match="split must be one of"):
        heldout_clips(1, 0, 2.0, split="test")


@pytest.mark.parametrize("floor,zoom,pan", [("line", (0.8, 0.8), (-0.7, 0.5, -0.7, 0.5)), ("band", (1.0, 1.0), (0.0,) * 4),
                                            ("plane", (0.75, 0.75), (0.6, -0.4, 0.6, -0.4))])
def test_ball_touches_the_floor_where_the_camera_shows_it(floor, zoom, pan):
    kw = dict(duration=3.0, fps=25.0, size=(96, 160), classes=["ball"])
    look = _plain(clip_look(6, **{k: kw[k] for k in ("duration", "fps", "size")}))
    scenes = tuple(dataclasses.replace(s, floor=floor, zoom=zoom, pan=pan, background="solid") for s in look.scenes)
    clip = make_clip(6, looks=dataclasses.replace(look, scenes=scenes), **kw)
    frames = clip.frames.astype(np.int16)
    moving = np.abs(frames - np.median(frames, axis=0)).sum(-1) > 60  # T H W: the ball (all else is still)
    impacts = [round(e.time_s * 25) for e in clip.events]
    assert len(impacts) >= 2
    for e, k in zip(clip.events, impacts):
        rows = np.flatnonzero(moving[k].any(axis=1))
        assert abs((rows.max() + 1) - e.y * 96) <= 1.5, (k, rows.max(), e.y * 96)  # its bottom is on the floor
    mid = (impacts[0] + impacts[1]) // 2
    assert np.flatnonzero(moving[mid].any(axis=1)).max() + 1 < clip.events[0].y * 96 - 2  # in the air between
