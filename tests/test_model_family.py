"""What a network's family decides: sampling defaults, frame timing, windows and padded lengths."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from kf_core.components import DiT, SamplingDefaults, VisualEncoders
from kf_core.config import SeqConfig
from kf_core.encoders import ClipVisionEncoder, Synchformer, SynchformerConfig


def _dit(layout: str, duration_embedding: bool = False) -> DiT:
    model = SimpleNamespace(cfg=SimpleNamespace(duration_embedding=duration_embedding, max_seconds=30))
    return DiT(model, SimpleNamespace(layout=layout))


def test_mmaudio_and_kling_foley_defaults():
    mm, kf = _dit("mmaudio"), _dit("kling-foley", duration_embedding=True)
    assert mm.family == "mmaudio" and kf.family == "kling-foley"
    assert mm.sampling_defaults == SamplingDefaults(25, 4.5) and kf.sampling_defaults == SamplingDefaults(20, 4.5)
    assert (mm.frame_timing, kf.frame_timing) == ("mmaudio", "on_screen")
    assert (mm.window, mm.max_duration) == (8.0, None) and (kf.window, kf.max_duration) == (30.0, 30.0)
    with pytest.raises(ValueError, match="steps"):
        SamplingDefaults(0, 4.5)


@pytest.mark.parametrize("duration,run", [(8.0, 8.0), (7.96, 8.0), (5.1, 5.12), (5.0, 5.12), (0.64, 0.64),
                                          (2.37, 2.56), (1.0, 1.28)])
def test_mmaudio_runs_short_clips_at_whole_sync_segments(duration, run):
    assert _dit("mmaudio").network_duration(duration) == pytest.approx(run, abs=1e-9)
    seq, padded = SeqConfig(duration), SeqConfig(run)
    assert padded.sync_frames == round(run * 25)                 # sync tokens cover the audio exactly
    assert padded.latent_len >= seq.latent_len and run - duration < 0.32 + 1e-9
    assert _dit("kling-foley").network_duration(duration) == duration


def test_frame_timing_follows_the_clip_model_unless_told():
    sync = Synchformer.build(SynchformerConfig(width=64, depth=1, heads=1, image_size=64))
    tiny = ClipVisionEncoder.tiny()
    assert VisualEncoders(tiny, sync).timing == "on_screen"
    tiny.name = "ViT-H-14-378-quickgelu"                         # DFN5B: MMAudio's CLIP
    assert VisualEncoders(tiny, sync).timing == "mmaudio"
    assert VisualEncoders(tiny, sync, timing="on_screen").timing == "on_screen"
    with pytest.raises(ValueError, match="timing"):
        VisualEncoders(tiny, sync, timing="late")


def test_cli_steps_and_cfg_default_to_the_models():
    import argparse

    from kf_core.cli_generate import add_arguments
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args([])
    assert args.steps is None and args.cfg is None
    assert p.parse_args(["--steps", "10", "--cfg", "3"]).steps == 10
