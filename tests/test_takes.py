"""Best of N (kf_core.takes): the weight-free sync score ranks an aligned take above a shifted one,
and generate_takes returns the best-scoring take, deterministically per seed, on the shipped kf-tiny."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kf_core.__main__ import main
from kf_core.data.synthetic import make_clip
from kf_core.takes import TakeScore, generate_takes, rank, rank_takes, score_take, visual_events
from kf_core.spatial import video_frames
from media import make_video


@pytest.fixture(scope="module")
def ball():
    return make_clip(7, duration=4.0, fps=25, size=64, classes=["ball"])


def test_aligned_audio_outscores_the_same_audio_shifted(ball):
    frames = torch.from_numpy(ball.frames)
    events = visual_events(*video_frames(frames, ball.fps))
    assert events.times.size >= 3  # the bounces are seen
    mono = ball.audio.mean(0)
    aligned = score_take(mono, ball.sample_rate, events)
    for shift_s in (0.12, 0.3):
        shifted = score_take(np.roll(mono, int(shift_s * ball.sample_rate)), ball.sample_rate, events)
        assert aligned.score > shifted.score + 0.1, (shift_s, aligned, shifted)
    assert aligned.f1 > 0.6
    waves = torch.from_numpy(np.stack([np.roll(mono, 8000), mono]))[:, None]  # take 1 is the aligned one
    ranking = rank_takes(waves, ball.sample_rate, frames, fps=ball.fps)
    assert ranking.best == 1 and "take 1 (best)" in ranking.report()


def test_rank_is_by_score_then_index_and_desync_first_when_every_take_has_it():
    s = [TakeScore(0.5, 0.5, 0.0, 3, 3), TakeScore(0.9, 0.9, 0.0, 3, 3), TakeScore(0.9, 0.9, 0.0, 3, 3)]
    assert rank(s) == (1, 2, 0)
    d = [TakeScore(0.9, 0.9, 0, 3, 3, desync_s=0.4), TakeScore(0.1, 0.1, 0, 3, 3, desync_s=0.0),
         TakeScore(0.5, 0.5, 0, 3, 3, desync_s=0.0)]
    assert rank(d) == (2, 1, 0)


def test_rank_takes_refuses_what_is_not_a_batch_of_takes(ball):
    with pytest.raises(ValueError, match=r"\[N, C, T\]"):
        rank_takes(torch.zeros(44100), 44100, torch.from_numpy(ball.frames), fps=ball.fps)


def test_best_of_n_on_kf_tiny_returns_the_top_score_and_repeats_per_seed(ball):
    from kf_core.pipeline import load_pipeline
    pipe = load_pipeline()
    frames = torch.from_numpy(ball.frames[:20])  # 0.8 s (the sync stream needs 0.64 s)
    kw = dict(fps=ball.fps, prompt=ball.caption, steps=2, stereo=False)
    a = generate_takes(pipe, frames, 2, seed=5, **kw)
    assert a.waveforms.shape == (2, 1, 35280)
    assert not torch.allclose(a.waveforms[0], a.waveforms[1])  # two noises, two takes
    best = max(range(2), key=lambda i: (a.ranking.scores[i].score, -i))
    assert a.best == best == a.ranking.order[0]
    b = generate_takes(pipe, frames, 2, seed=5, **kw)
    assert torch.equal(a.waveforms, b.waveforms) and a.ranking == b.ranking
    with pytest.raises(ValueError, match="takes"):
        generate_takes(pipe, frames, 0, seed=5, **kw)


def test_cli_takes_prints_every_score_and_writes_the_best_stereo_take_beside_existing(tmp_path, tiny_folder,
                                                                                       capsys):
    src = make_video(tmp_path / "in.mp4", fps=25, seconds=0.8, width=64, height=48)
    (tmp_path / "best.wav").write_bytes(b"keep me")
    assert main(["generate", "--video", str(src), "--audio-out", str(tmp_path / "best.wav"), "--model",
                 str(tiny_folder), "--steps", "2", "--takes", "2"]) == 0
    out = capsys.readouterr().out
    assert "take 0" in out and "take 1" in out and out.count("(best)") == 1 and "score" in out
    assert (tmp_path / "best.wav").read_bytes() == b"keep me"
    assert "best_00001.wav (2 ch, 0.800 s" in out
    assert main(["generate", "--audio-out", str(tmp_path / "x.wav"), "--takes", "2"]) == 2
    assert "--takes" in capsys.readouterr().err
