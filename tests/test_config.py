import json

import pytest

from kf_core.config import CODEC_PRESETS, CodecConfig, SeqConfig


def test_seq_lengths_match_mmaudio_tables(mmaudio_fixtures):
    rows = json.loads((mmaudio_fixtures / "sequence_tables.json").read_text())["rows"]
    for r in rows:
        s = SeqConfig(r["duration_s"])
        assert s.latent_len == r["latent_seq_len"], r["duration_s"]
        assert s.visual_len == r["clip_seq_len"], r["duration_s"]
        assert s.sync_len == r["sync_seq_len"], r["duration_s"]
        assert s.decoded_samples == r["num_audio_samples"], r["duration_s"]
        assert s.mel_len == r["mel_frames"], r["duration_s"]


def test_rates_of_the_44k_codec():
    s = SeqConfig(8.0)
    assert s.latent_len == 345 and s.visual_len == 64 and s.sync_len == 192
    assert abs(s.latent_rate - 43.066) < 1e-3
    assert s.samples == 352800 <= s.decoded_samples
    assert CODEC_PRESETS["44k"].samples_per_latent == 1024


@pytest.mark.parametrize("duration", [1.0, 2.5, 7.3, 16.0, 29.97])
def test_exact_output_length(duration):
    s = SeqConfig(duration)
    assert s.samples == round(duration * 44100)
    assert s.decoded_samples >= s.samples
    assert s.sync_frames <= duration * 25 + 1e-9


def test_impossible_durations_say_what_to_do():
    with pytest.raises(ValueError, match="shorter than one sync segment"):
        SeqConfig(0.5)
    with pytest.raises(ValueError, match="finite"):
        SeqConfig(float("nan"))
    with pytest.raises(ValueError, match="fmax"):
        CodecConfig(fmax=30000.0)
