"""A 30 s video through an MMAudio-architecture network: 8 s windows at the trained configuration,
the exact length, seams as loud as their neighbours, and frames decoded / encoded a piece at a time."""
from __future__ import annotations

import json
import math
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from kf_core.components import TextEncoder, VisualEncoders, codec_from_roles, dit_from_file
from kf_core.config import SeqConfig
from kf_core.encoders import ClipTextEncoder, ClipVisionEncoder, Synchformer, SynchformerConfig
from kf_core.long_video import plan_windows
from kf_core.pipeline import decode_mel, encode_text, encode_video, open_video, sample_latents, vocode
from tests.media import make_video
from tests.mmaudio_hashed import TINY_CLIP, clip_state, mmaudio_network_state

FIX = Path(__file__).resolve().parent / "fixtures" / "mmaudio_pipeline"
CLIP_DIM, SYNC_DIM = 128, 64  # kf-tiny's 64 px CLIP; a 64 px, one-block Synchformer (fast on CPU)


def _network(tmp_path: Path):
    """The parity fixture's MMAudio network layout (hashed weights), re-sized for these encoders."""
    shapes = {k: tuple(v) for k, v in json.loads((FIX / "reference.json").read_text())["network_shapes"].items()}
    d = shapes["audio_input_proj.0.bias"][0]
    shapes.update({"clip_input_proj.0.weight": (d, CLIP_DIM), "empty_clip_feat": (1, CLIP_DIM),
                   "sync_input_proj.0.weight": (d, SYNC_DIM, 7), "sync_pos_emb": (1, 1, 8, SYNC_DIM),
                   "empty_sync_feat": (1, SYNC_DIM)})
    save_file(mmaudio_network_state(shapes), str(tmp_path / "net.safetensors"))
    return dit_from_file(tmp_path / "net.safetensors")


def _db(a: torch.Tensor, b: torch.Tensor) -> float:
    return 20 * math.log10(float(a.pow(2).mean().sqrt()) / float(b.pow(2).mean().sqrt()))


def _parts(tmp_path: Path):
    dit = _network(tmp_path)
    clip = open_clip.CLIP(**TINY_CLIP)
    text = TextEncoder(ClipTextEncoder.from_state_dict(clip_state(
        {k: tuple(v.shape) for k, v in clip.state_dict().items()}), TINY_CLIP), "clip")
    sync = Synchformer.build(SynchformerConfig(width=SYNC_DIM, depth=1, heads=1, image_size=64)).eval()
    encoders = VisualEncoders(ClipVisionEncoder.tiny(), sync, timing=dit.frame_timing)
    calls = []
    real_encode = encoders.encode

    def counting(visual_u8, sync_u8):
        calls.append((visual_u8.shape[0], sync_u8.shape[0]))
        return real_encode(visual_u8, sync_u8)

    encoders.encode = counting
    return dit, text, encoders, calls


def test_a_short_odd_clip_runs_at_whole_sync_segments_and_keeps_its_length(tmp_path):
    dit, text, encoders, calls = _parts(tmp_path)
    path = make_video(tmp_path / "short.mp4", fps=30, seconds=5.1, width=64, height=48)
    video = encode_video(encoders, open_video(path))
    lat = sample_latents(dit, text=encode_text(text, "", ""), video=video, steps=1)
    assert lat.seq.duration == pytest.approx(5.1) and lat.z.shape[1] == SeqConfig(5.1).latent_len == 220
    padded = video.windows[(0.0, 5.12)]                                   # 15 whole segments cover 5.12 s
    assert padded.duration == 5.12 and padded.sync.shape[1] == 120 and padded.visual.shape[1] == 40
    assert calls == [(40, 120), (40, 128)]                               # 5.1 s, then the padded 5.12 s


def test_30s_video_windows_at_8s_exact_length_even_seams_bounded_frames(tmp_path, mmaudio_fixtures):
    dit, text, encoders, calls = _parts(tmp_path)
    path = make_video(tmp_path / "long.mp4", fps=10, seconds=30.0, width=64, height=48, bits=9)
    video = encode_video(encoders, open_video(path))
    assert video.duration == pytest.approx(30.0) and video.visual.shape[1] == 240 and video.sync.shape[1] == 736
    whole_clip_calls = len(calls)
    lat = sample_latents(dit, text=encode_text(text, "", ""), video=video, steps=2, seed=3)

    seq, windows = plan_windows(dit, 30.0, dit.window, 1.0)
    assert lat.z.shape == (1, seq.latent_len, 40) and seq.latent_len == 1292
    assert len(windows) == 5 and all(w.length == 345 and w.span == 8.0 for w in windows)   # 345 / 64 / 192
    assert [w.start for w in windows] == [0, 237, 474, 710, 947]
    assert min(a.start + a.length - b.start for a, b in zip(windows, windows[1:])) >= round(1.0 * seq.latent_rate)
    # flat memory: no encoder call ever saw more than 8 s of frames (4 whole-clip pieces + 5 windows)
    assert whole_clip_calls == 4 and len(calls) == 4 + 5
    assert max(v for v, _ in calls) <= 64 and max(s for _, s in calls) <= 200
    assert calls[whole_clip_calls:] == [(64, 200)] * 5

    codec = codec_from_roles({"vae": mmaudio_fixtures / "vae_small.safetensors"}, preset="44k",
                             latent_mean=dit.info.latent_mean, latent_std=dit.info.latent_std)
    mel = decode_mel(codec, lat)
    assert vocode(codec, mel).waveform.shape == (1, 1, 30 * 44100)  # mono: exactly 30 s
    # random weights make a loud signal: measure before the output clamp
    wave = codec.vocode(mel.mel)[0, 0]                                                    # T'
    hop = seq.hop * seq.latent_downsample                                                 # samples per token
    levels = []
    for a, b in zip(windows, windows[1:]):
        lo, hi = b.start * hop, (a.start + a.length) * hop                                # the crossfade
        n = hi - lo
        before, fade, after = wave[lo - n:lo], wave[lo:hi], wave[hi:hi + n]
        levels.append(round(_db(fade, torch.cat([before, after])), 2))   # the seam against its neighbours
    assert all(abs(x) < 1.0 for x in levels), levels
