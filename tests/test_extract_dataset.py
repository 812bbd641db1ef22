"""`extract` at scale (issue 17): long sources become windows with their true place in the source,
shards come with a manifest whose cursor resumes an interrupted run, bad files are listed."""
from __future__ import annotations

import json
import math

import pytest
import torch

from kf_core.config import SeqConfig
from kf_core.io import read_audio, sample_streams, streams_for
from kf_core.train.data import collate
from kf_core.train.extract import extract_dataset
from kf_core.train.features import FeatureShards
from kf_core.train.sources import Windowing, synthetic_clips, video_folder_clips, window_spans
from media import make_video as _make_video
from media import read_index
from test_extract_sources import CODEC, extractor  # noqa: F401  (the fixture)

TOKEN = 1024 / 44100


def make_video(path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    return _make_video(path, **kw)
WIN = Windowing(window=3.0, hop=2.0, min_window=1.0)


def test_window_spans_start_on_whole_tokens_and_cover_the_source():
    spans = window_spans(7.0, WIN, TOKEN)
    assert [round(s / TOKEN, 6) for s, _ in spans] == [0, 86, 172, 258]       # 2 s hops on whole tokens
    assert [round(d, 4) for _, d in spans] == [3.0, 3.0, 3.0, round(7.0 - 258 * TOKEN, 4)]
    assert window_spans(2.5, WIN, TOKEN) == [(0.0, 2.5)]                      # short sources stay whole
    assert len(window_spans(6.5, WIN, TOKEN)) == 3                            # a 0.5 s tail is dropped
    with pytest.raises(ValueError, match="--hop"):
        Windowing(window=3.0, hop=4.0)


def test_a_long_video_gives_windows_at_their_true_place_in_the_source(tmp_path, extractor):
    src = make_video(tmp_path / "long" / "v.mp4", fps=25, seconds=7.0, audio=True)
    clips = list(video_folder_clips(tmp_path / "long", None, extractor, windowing=WIN))
    wave, _ = read_audio(src, sample_rate=44100)
    total = min(7.0, wave.shape[-1] / 44100)
    assert [c.seconds_start for c in clips] == pytest.approx([k * TOKEN for k in (0, 86, 172, 258)])
    assert all(c.seconds_total == pytest.approx(total) for c in clips)
    for c in clips:
        s0 = round(c.seconds_start * 44100)
        seq = SeqConfig(c.duration)
        n = min(seq.decoded_samples, wave.shape[-1] - s0)
        assert torch.equal(c.wave[:, :n], wave[:, s0:s0 + n])                  # the source's audio there
        shown = read_index(c.visual_frames)                                    # frame j at start + j/8 s
        assert shown == [math.floor((c.seconds_start + j / 8) * 25 + 1e-6) for j in range(seq.visual_len)]
        ref = sample_streams(src, streams_for(seq, visual_size=extractor.visual_size, sync_size=extractor.sync_size,
                                              sync_mode=extractor.sync_mode), duration=c.duration, start=c.seconds_start)
        assert torch.equal(c.sync_frames, ref["sync"])
    assert clips[1].source == f"videos/v.mp4@{86 * TOKEN:.3f}"


def test_training_batches_carry_the_window_starts(tmp_path, extractor):
    from kf_core.model import build_model
    from kf_core.train.flow import FlowTrainConfig, FlowTrainer
    make_video(tmp_path / "long" / "v.mp4", fps=25, seconds=7.0, audio=True)
    out = tmp_path / "feats"
    extract_dataset([f"videos:{tmp_path / 'long'}"], out, extractor=extractor, codec=CODEC, windowing=WIN)
    data = FeatureShards([out])
    assert sorted(round(data[i].seconds_start / TOKEN) for i in range(len(data))) == [0, 86, 172, 258]
    trainer = FlowTrainer(build_model("kf-tiny"), FlowTrainConfig(batch_size=4), data, codec=data.codec)
    batch = trainer.next_batch()
    assert (batch.seconds_start > 1.9).sum() == 3 and torch.all(batch.seconds_total > 6.9)
    assert math.isfinite(trainer.train_step()["loss"])


def test_synthetic_long_sources_come_as_windows(extractor):
    clips = list(synthetic_clips(2, seed=0, visual_size=extractor.visual_size, sync_size=extractor.sync_size,
                                 sync_mode=extractor.sync_mode, long_fraction=1.0, long_seconds=(3.5, 4.5), windowing=Windowing(1.5, min_window=0.7)))
    by_source: dict[str, list] = {}
    for c in clips:
        by_source.setdefault(c.source.split("@")[0], []).append(c)
    assert len(by_source) == 2
    for windows in by_source.values():
        total = windows[0].seconds_total
        assert 3.5 <= total <= 4.5 and len(windows) >= 2
        assert windows[0].seconds_start == 0 and windows[1].seconds_start == pytest.approx(65 * TOKEN)
        assert all(w.duration <= 1.5 and w.seconds_total == total for w in windows)
        assert windows[-1].seconds_start + windows[-1].duration == pytest.approx(total)
        seq = SeqConfig(windows[0].duration)
        assert windows[0].sync_frames.shape[0] == seq.sync_frames and windows[0].wave.shape[-1] == seq.decoded_samples


def _folder(tmp_path):
    vids = tmp_path / "vids"
    make_video(vids / "a.mp4", fps=24, seconds=1.5, audio=True)
    make_video(vids / "sub" / "b.mp4", fps=30, seconds=2.0, audio=True)
    make_video(vids / "silent.mp4", fps=25, seconds=1.5)
    (vids / "broken.mp4").write_bytes(b"not a video at all")
    make_video(vids / "c.mp4", fps=25, seconds=1.2, audio=True)
    return vids


def test_manifest_lists_shards_and_bad_files_and_an_interrupted_run_resumes(tmp_path, extractor):
    vids = _folder(tmp_path)
    kw = dict(extractor=extractor, codec=CODEC, shard_size=1)
    full = extract_dataset([f"videos:{vids}"], tmp_path / "full", **kw)
    assert full["done"] and full["items"] == 5 and full["records"] == 3 and len(full["shards"]) == 3
    assert sorted(s["source"] for s in full["skipped"]) == ["videos/broken.mp4", "videos/silent.mp4"]
    assert any("no audio track" in s["reason"] for s in full["skipped"])
    assert json.loads((tmp_path / "full" / "manifest.json").read_text())["cursor"] == 5

    class Stop(Exception):
        pass

    def stop_after_two(done, total):
        if done == 2:
            raise Stop
    with pytest.raises(Stop):
        extract_dataset([f"videos:{vids}"], tmp_path / "cut", progress=stop_after_two, **kw)
    cut = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert (cut["cursor"], cut["done"]) == (2, False)
    assert len(FeatureShards([tmp_path / "cut"])) == 1                      # a.mp4 so far (then broken.mp4)
    resumed = extract_dataset([f"videos:{vids}"], tmp_path / "cut", **kw)
    assert resumed["done"] and resumed["records"] == 3 and len(resumed["skipped"]) == 2
    a, b = FeatureShards([tmp_path / "full"]), FeatureShards([tmp_path / "cut"])
    assert [a[i].source for i in range(3)] == [b[i].source for i in range(3)]
    assert all(torch.equal(a[i].latent_mean, b[i].latent_mean) for i in range(3))
    with pytest.raises(ValueError, match="other data or settings"):
        extract_dataset([f"videos:{vids}"], tmp_path / "cut", windowing=WIN, **kw)


def test_vggsound_csv_and_clips(tmp_path, extractor):
    clips = tmp_path / "clips"
    make_video(clips / "abc_000030.mp4", fps=25, seconds=1.5, audio=True)
    (tmp_path / "vggsound.csv").write_text("abc,30,dog barking,train\nmissing,5,cat,train\nxyz,1,rain,test\n")
    m = extract_dataset([f"vggsound:{tmp_path / 'vggsound.csv'},{clips},train"], tmp_path / "out",
                        extractor=extractor, codec=CODEC)
    data = FeatureShards([tmp_path / "out"])
    assert len(data) == 1 and data[0].caption == "dog barking" and data[0].source == "vggsound/abc_000030.mp4"
    assert [s["source"] for s in m["skipped"]] == ["vggsound/missing_000005"]
    _ = collate([data[0]], data.codec)
