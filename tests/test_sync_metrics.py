"""Weight-free sync metrics on constructed cases: they must reward alignment and punish its absence."""
from __future__ import annotations

import numpy as np
import pytest

from kf_core.data.synthetic import CLASSES, make_clip
from kf_core.eval import sync_metrics as sm
from kf_core.eval.classifier import SpectralClassifier, window_features

SR = 44100


def _shift(audio: np.ndarray, seconds: float) -> np.ndarray:
    k = int(round(seconds * SR))
    out = np.zeros_like(audio)
    if k >= 0:
        out[:, k:] = audio[:, : audio.shape[1] - k]
    else:
        out[:, :k] = audio[:, -k:]
    return out


def test_onset_scores_perfect_empty_and_tolerance():
    ref = np.array([0.5, 1.0, 2.0])
    s = sm.onset_scores(ref, ref.copy())
    assert s["f1"] == 1.0 and s["abs_errors"].max() == 0.0
    assert sm.onset_scores(ref, np.zeros(0))["f1"] == 0.0
    late = sm.onset_scores(ref, ref + 0.06, tol=0.05)
    assert late["tp"] == 0 and late["fp"] == 3 and late["fn"] == 3
    # One-to-one: two detections near one onset give one hit and one false positive.
    s = sm.onset_scores(np.array([1.0]), np.array([0.99, 1.01]))
    assert (s["tp"], s["fp"]) == (1, 1)
    # Unmatched detections inside a texture span (rain) are not errors.
    assert sm.onset_scores(ref, np.concatenate([ref, [3.5]]), ignore=[(3.0, 4.0)])["fp"] == 0


def test_ground_truth_scores_perfectly_and_silence_scores_zero():
    clip = make_clip(21, duration=4.0, fps=25.0, size=64, classes=["ball"])
    s = sm.onset_scores(clip.onset_times, sm.detect_onsets(clip.audio, SR))
    assert s["f1"] == 1.0 and s["abs_errors"].mean() < 0.006
    silent = np.zeros_like(clip.audio)
    assert sm.detect_onsets(silent, SR).size == 0
    assert sm.onset_scores(clip.onset_times, sm.detect_onsets(silent, SR))["f1"] == 0.0
    assert np.isnan(sm.desync_offsets(clip.onset_times, silent, SR, clip.duration)).all()


@pytest.mark.parametrize("kind,lag", [("ball", 0.3), ("bird", -0.5), ("strike", 0.0)])
def test_desync_recovers_a_known_lag(kind, lag):
    clip = make_clip(31, duration=6.0, fps=25.0, size=64, classes=[kind])
    lags = sm.desync_offsets(clip.onset_times, _shift(clip.audio, lag), SR, clip.duration)
    assert lags.size == 2  # 4.8 s windows at the start and end of a 6 s clip
    defined = lags[~np.isnan(lags)]
    assert defined.size and np.abs(defined - lag).max() < 0.012, lags


def test_stereo_correlation_high_for_ground_truth_undefined_for_mono():
    pairs = np.concatenate([sm.stereo_pairs(c.events, c.audio, SR) for c in
                            (make_clip(40 + s, duration=3.0, fps=12.0, size=64, classes=[k])
                             for s, k in enumerate(["strike", "bird", "footsteps", "ball", "light", "bird"]))])
    assert sm.stereo_correlation(pairs) > 0.9
    clip = make_clip(41, duration=3.0, fps=12.0, size=64, classes=["footsteps"])
    mono = np.repeat(clip.audio.mean(axis=0, keepdims=True), 2, axis=0)
    assert np.isnan(sm.stereo_correlation(sm.stereo_pairs(clip.events, mono, SR)))
    with pytest.raises(ValueError, match=r"audio \[2, N\]"):
        sm.stereo_pairs(clip.events, clip.audio[:1], SR)


def test_frechet_zero_for_same_set_and_large_for_silence():
    clip = make_clip(50, duration=3.0, fps=12.0, size=64, classes=["rain"])
    feats = window_features(clip.audio, SR)
    assert abs(sm.frechet_distance(feats, feats)) < 1e-3
    other = window_features(make_clip(51, duration=3.0, fps=12.0, size=64, classes=["bird"]).audio, SR)
    silent = window_features(np.zeros_like(clip.audio), SR)
    assert sm.frechet_distance(feats, silent) > 3 * sm.frechet_distance(feats, other) > 0
    with pytest.raises(ValueError, match="equal D"):
        sm.frechet_distance(feats, feats[:, :3])


def test_classifier_on_heldout_ground_truth(tmp_path):
    train = [make_clip(1000 + i, duration=2.0, fps=12.0, size=64, classes=[CLASSES[i % 9]]) for i in range(9 * 5)]
    test = [make_clip(9000 + i, duration=3.0, fps=12.0, size=64, classes=[CLASSES[i % 9]]) for i in range(18)]
    clf = SpectralClassifier.fit([c.audio for c in train], [c.labels[0] for c in train], SR)
    pred = clf.predict([c.audio for c in test])
    acc = np.mean([p == c.labels[0] for p, c in zip(pred, test)])
    assert acc >= 0.8, acc
    clf.save(tmp_path / "clf.npz")
    again = SpectralClassifier.load(tmp_path / "clf.npz")
    np.testing.assert_allclose(again.predict_proba([test[0].audio]), clf.predict_proba([test[0].audio]))
    np.savez(tmp_path / "bad.npz", weight=np.zeros(2))
    with pytest.raises(ValueError, match="not a SpectralClassifier"):
        SpectralClassifier.load(tmp_path / "bad.npz")


def test_eval_cli_ranks_ground_truth_above_baselines(tmp_path, capsys):
    import argparse
    import json

    from kf_core.eval import synthetic_eval

    parser = argparse.ArgumentParser()
    synthetic_eval.add_arguments(parser)
    args = parser.parse_args(["--n", "3", "--duration", "2.5", "--train-per-class", "1", "--steps", "2",
                              "--json", str(tmp_path / "r.json")])
    assert synthetic_eval.main(args) == 0
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    gt, silence, shuffled = rows["ground truth"], rows["silence"], rows["shuffled"]
    assert gt["onset_f1_50ms"] > 0.9 and silence["onset_f1_50ms"] == 0.0
    assert gt["onset_f1_50ms"] > shuffled["onset_f1_50ms"]
    assert silence["frechet"] > gt["frechet"]
    assert {"generated (video)", "generated (text only)", "generated (contradicting prompt)"} <= set(rows)
    assert "ground truth" in capsys.readouterr().out
