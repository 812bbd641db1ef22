"""`extract`'s real-data sources: a folder of videos (+ captions CSV) and audio-caption pairs."""
from __future__ import annotations

import logging

import pytest
import torch

from kf_core.config import CODEC_PRESETS, SeqConfig
from kf_core.io import write_audio
from kf_core.train.extract import audio_caption_clips, extract_dataset, make_extractor, video_folder_clips
from kf_core.train.features import FeatureShards
from media import make_audio_wave, make_video

CFG = CODEC_PRESETS["44k"]
CODEC = {"sample_rate": CFG.sample_rate, "hop": CFG.hop, "latent_downsample": CFG.latent_downsample}


@pytest.fixture(scope="module")
def extractor():
    from kf_core.codec.mel_vae import MEL_VAE_PRESETS, MelVAE
    from kf_core.encoders import ClipVisionEncoder, Synchformer, SynchformerConfig, T5TextEncoder
    from kf_core.encoders.seeded import seeded_init_
    sync = seeded_init_(Synchformer(SynchformerConfig(width=128, depth=2, heads=2, image_size=32)), 0).eval()
    return make_extractor(vae=MelVAE(MEL_VAE_PRESETS["tiny"]).eval(), codec_cfg=CFG, latent_mean=torch.zeros(16),
                          latent_std=torch.ones(16), clip=ClipVisionEncoder.tiny(0), sync=sync,
                          text=T5TextEncoder.tiny(0))


def test_video_folder_gives_timed_clips_with_captions_and_skips_bad_files(tmp_path, extractor, caplog):
    make_video(tmp_path / "a.mp4", fps=24, seconds=1.5, audio=True)
    make_video(tmp_path / "b.mp4", fps=30, seconds=2.0, audio=True)
    make_video(tmp_path / "silent.mp4", fps=25, seconds=1.5)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    (tmp_path / "notes.txt").write_text("ignored: not a video suffix")
    (tmp_path / "captions.csv").write_text("file,caption\na.mp4,a dog barks\nb,rain on a roof\n")
    with caplog.at_level(logging.WARNING):
        clips = list(video_folder_clips(tmp_path, tmp_path / "captions.csv", extractor))
    assert [c.source for c in clips] == ["videos/a.mp4", "videos/b.mp4"]
    assert [c.caption for c in clips] == ["a dog barks", "rain on a roof"]
    skipped = caplog.text
    assert "silent.mp4" in skipped and "no audio track" in skipped and "broken.mp4" in skipped
    for clip, dur in zip(clips, (1.5, 2.0)):
        assert clip.duration == pytest.approx(dur, abs=0.03)
        rec = extractor.record(clip)
        seq = SeqConfig(clip.duration)
        assert rec.latent_mean.shape == (seq.latent_len, 16)
        assert rec.sync.shape == (seq.sync_len, 128) and rec.visual.shape == (seq.visual_len, 128)


def test_empty_or_missing_video_folder_says_what_was_looked_for(tmp_path, extractor):
    with pytest.raises(ValueError, match="no usable video with sound"):
        list(video_folder_clips(tmp_path, None, extractor))
    with pytest.raises(ValueError, match="not a folder"):
        list(video_folder_clips(tmp_path / "nope", None, extractor))


def test_audio_caption_pairs_are_text_only_records(tmp_path, extractor, caplog):
    write_audio(tmp_path / "x.wav", torch.from_numpy(make_audio_wave(1.2)), 44100)
    (tmp_path / "caps.csv").write_text("audiocap_id,caption\nx,a bell rings\nmissing,never found\n")
    with caplog.at_level(logging.WARNING):
        clips = list(audio_caption_clips(tmp_path / "caps.csv", None, extractor))
    assert len(clips) == 1 and "missing" in caplog.text
    rec = extractor.record(clips[0])
    assert rec.visual is None and rec.sync is None and rec.text is not None
    assert rec.duration == pytest.approx(1.2, abs=0.01)
    assert rec.latent_mean.shape == (SeqConfig(rec.duration).latent_len, 16)
    with pytest.raises(ValueError, match="none of its 1 rows"):
        (tmp_path / "bad.csv").write_text("file,caption\nnothing_here,x\n")
        list(audio_caption_clips(tmp_path / "bad.csv", None, extractor))


def test_one_run_mixes_sources_into_shards_training_reads(tmp_path, extractor):
    vids = tmp_path / "vids"
    vids.mkdir()
    make_video(vids / "v.mp4", fps=25, seconds=1.5, audio=True)
    write_audio(tmp_path / "s.wav", torch.from_numpy(make_audio_wave(1.0)), 44100)
    (tmp_path / "caps.csv").write_text("file,caption\ns.wav,a tone\n")
    out = tmp_path / "shards"
    specs = [f"videos:{vids}", f"audiocaps:{tmp_path / 'caps.csv'}", "synthetic:1"]
    extract_dataset(specs, out, extractor=extractor, codec=CODEC, seed=0)
    data = FeatureShards([out])
    assert len(data) == 3
    kinds = sorted((data[i].sync is not None, data[i].text is not None) for i in range(3))
    assert kinds == [(False, True), (True, False), (True, True)]  # audio-text, video only, synthetic
