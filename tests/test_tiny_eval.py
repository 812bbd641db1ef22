"""eval tiny's scoring: impact hits within 100 ms against a shifted-time control, on fixed clips in
held-out looks."""
from __future__ import annotations

import numpy as np

from kf_core.eval import sync_metrics as sm
from kf_core.eval.tiny_eval import SHIFT_S, hit_rate, impact_clips, impact_hits


def test_hit_rate_counts_impacts_with_an_onset_within_tolerance():
    events = np.array([0.5, 1.0, 2.0])
    assert hit_rate(events, np.array([0.55, 1.2, 2.0])) == (2, 3)
    assert hit_rate(events, np.array([])) == (0, 3)
    assert hit_rate(np.array([]), np.array([1.0])) == (0, 0)


def test_the_true_audio_hits_and_its_control_does_not():
    clips = impact_clips()[:4]
    assert {c.look.family for c in clips} == {"heldout"}
    assert len({c.frames.shape[1:3] for c in clips} | {(c.fps,) for c in clips}) > 2, "looks should vary"
    r = impact_hits(clips, [c.audio for c in clips], 44100)
    assert r["impacts"] >= 8
    assert r["hits"] / r["impacts"] >= 0.9, r                  # the world's own sound follows its impacts
    assert r["control_hits"] < 0.6 * r["hits"], r              # times shifted by SHIFT_S mostly miss
    silent = impact_hits(clips, [np.zeros_like(c.audio) for c in clips], 44100)
    assert silent["hits"] == 0 and sm.detect_onsets(np.zeros((2, 44100)), 44100).size == 0
    assert SHIFT_S > 0.1
