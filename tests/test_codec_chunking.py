"""Chunked decoding: vocoders give the whole-input result, long clips stream with exact length."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from kf_core.codec import bundle
from kf_core.codec.bigvgan import BIGVGAN_PRESETS, BigVGAN, BigVGANConfig
from kf_core.codec.bundle import AudioCodec
from kf_core.codec.chunking import ChunkPlan, Tape, chunked
from kf_core.codec.griffinlim import GriffinLim
from kf_core.codec.mel_vae import MEL_VAE_PRESETS, MelVAE
from kf_core.codec.mono2stereo import Mono2Stereo, interpolate_span
from kf_core.codec.vocos import Vocos, VocosConfig
from kf_core.config import CODEC_PRESETS


def _chunked_vocode(voc, mel, plan, offset_aware=False):
    def fn(x, off):
        with torch.inference_mode():
            return voc(x, frame_offset=off) if offset_aware else voc(x)
    return torch.cat(list(chunked(fn, lambda a, b: mel[..., a:b], mel.shape[-1], plan, ratio=voc.hop)), dim=-1)


def test_griffin_lim_in_chunks_equals_one_piece():
    gl = GriffinLim(CODEC_PRESETS["44k"], n_iter=6)
    mel = torch.randn(1, 128, 120) - 4.0                                       # B M F
    with torch.inference_mode():
        whole = gl(mel)                                                        # B 1 F·hop
    got = _chunked_vocode(gl, mel, ChunkPlan(chunk=32, context=gl.context_frames), offset_aware=True)
    assert got.shape == whole.shape
    assert (got - whole).abs().max() < 1e-5
    # the test can fail: without the receptive field as context, the cut edges differ
    short = _chunked_vocode(gl, mel, ChunkPlan(chunk=32, context=2), offset_aware=True)
    assert (short - whole).abs().max() > 1e-3


@pytest.mark.parametrize("cfg", [BIGVGAN_PRESETS["tiny"],
                                 # the 44.1 kHz v2 AMP blocks (kernels 3/7/11, dilations 1/3/5) and first
                                 # two upsamplers, narrow (the full 512x model is too slow for a unit test)
                                 BigVGANConfig(upsample_rates=(8, 4), upsample_kernel_sizes=(16, 8),
                                               upsample_initial_channel=16)])
def test_bigvgan_in_chunks_equals_one_piece(cfg):
    torch.manual_seed(0)
    voc = BigVGAN(cfg).eval()
    for p in voc.parameters():                                                 # random, not the inits
        p.data.normal_(0, 0.3 if p.dim() > 1 else 0.5)
    mel = torch.randn(1, cfg.num_mels, 2 * voc.context_frames + 31)        # a middle chunk far from both ends
    with torch.inference_mode():
        whole = voc(mel)
    got = _chunked_vocode(voc, mel, ChunkPlan(chunk=30, context=voc.context_frames))
    assert got.shape == whole.shape and (got - whole).abs().max() < 1e-5
    short = _chunked_vocode(voc, mel, ChunkPlan(chunk=30, context=1))
    assert (short - whole).abs().max() > 1e-4


@pytest.mark.parametrize("projections", [0, 2])
def test_vocos_in_chunks_equals_one_piece(projections):
    torch.manual_seed(0)
    voc = Vocos(VocosConfig(dim=32, mlp_dim=64, layers=2, projections=projections)).eval()
    for p in voc.parameters():                                                 # random, not the inits
        p.data.normal_(0, 0.3 if p.dim() > 1 else 0.5)
    mel = torch.randn(1, 128, 2 * voc.context_frames + 31) - 4.0               # a middle chunk far from both ends
    with torch.inference_mode():
        whole = voc(mel)
    got = _chunked_vocode(voc, mel, ChunkPlan(chunk=30, context=voc.context_frames), offset_aware=True)
    assert got.shape == whole.shape and (got - whole).abs().max() < 1e-5
    # the frame-position vectors must follow the clip's frame index, and the context must be the whole field
    unplaced = _chunked_vocode(voc, mel, ChunkPlan(chunk=30, context=voc.context_frames + 1))
    assert (unplaced - whole).abs().max() > 1e-4
    short = _chunked_vocode(voc, mel, ChunkPlan(chunk=30, context=2), offset_aware=True)
    assert (short - whole).abs().max() > 1e-4


def test_crossfaded_chunks_keep_a_constant_and_the_length():
    x = torch.full((1, 3, 101), 2.5)
    plan = ChunkPlan(chunk=30, overlap=6, context=4)
    out = torch.cat(list(chunked(lambda y, off: y.repeat_interleave(2, -1), lambda a, b: x[..., a:b], 101, plan,
                                 ratio=2)), dim=-1)
    assert out.shape == (1, 3, 202) and torch.allclose(out, torch.full_like(out, 2.5))


def test_tape_drops_released_frames():
    tape = Tape(iter(torch.arange(40.0).split(7)), 40)
    assert tape.read(3, 12).tolist() == list(range(3, 12))
    tape.release(10)
    assert tape.read(10, 40)[0] == 10
    with pytest.raises(ValueError, match="released"):
        tape.read(9, 12)


def test_visual_for_a_span_matches_whole_interpolation():
    v = torch.randn(2, 5, 37)
    whole = F.interpolate(v, size=400, mode="linear", align_corners=False)
    for start, count in [(0, 400), (123, 77), (393, 7)]:
        torch.testing.assert_close(interpolate_span(v, 400, start, count), whole[..., start:start + count],
                                   atol=2e-5, rtol=0)


def _codec(vocoder):
    cfg = replace(CODEC_PRESETS["44k"], latent_channels=MEL_VAE_PRESETS["tiny"].latent_channels)
    torch.manual_seed(1)
    m2s = Mono2Stereo(128, visual_dim=8, hidden=16, layers=2)
    torch.nn.init.normal_(m2s.pan_net.conv_out.weight, std=0.1)                # a pan that moves
    return AudioCodec(cfg, MelVAE(MEL_VAE_PRESETS["tiny"]).eval(), vocoder=vocoder, mono2stereo=m2s).eval()


def test_long_clip_streams_the_stage_by_stage_result(monkeypatch):
    # chunks of 0.4 s (mel) / 0.2 s (vocoder) make this 1.9 s clip a long one
    monkeypatch.setattr(bundle, "DECODE_CHUNK_S", 0.4)
    monkeypatch.setattr(bundle, "DECODE_OVERLAP_S", 0.1)
    monkeypatch.setattr(bundle, "DECODE_CONTEXT_S", 0.05)
    monkeypatch.setattr(bundle, "VOCODE_CHUNK_S", 0.2)
    codec = _codec(GriffinLim(CODEC_PRESETS["44k"], n_iter=2))
    z, visual = torch.randn(1, 82, 16), torch.randn(1, 15, 8)                  # 82 tokens = 1.9 s
    n = 83_800
    with torch.inference_mode():
        staged = codec.vocode(codec.to_stereo(codec.latents_to_mel(z), visual))
    blocks = list(codec.stream_waveform(z, visual=visual, num_samples=n))
    assert len(blocks) > 5 and all(b.shape[:2] == (1, 2) for b in blocks)
    streamed = torch.cat(blocks, dim=-1)
    assert streamed.shape == (1, 2, n)
    torch.testing.assert_close(streamed, staged.clamp(-1, 1)[..., :n], atol=1e-5, rtol=0)
    assert not torch.equal(streamed[:, 0], streamed[:, 1])                    # really panned


def test_short_clip_is_decoded_in_one_piece_as_before():
    codec = _codec(GriffinLim(CODEC_PRESETS["44k"], n_iter=2))
    z, visual = torch.randn(1, 40, 16), torch.randn(1, 7, 8)
    with torch.inference_mode():
        raw = (z * codec.latent_std + codec.latent_mean).transpose(1, 2)
        mel = codec.vae.decode(raw)
        torch.testing.assert_close(codec.latents_to_mel(z), mel, atol=0, rtol=0)
        torch.testing.assert_close(codec.to_stereo(mel, visual), codec.mono2stereo(mel, visual), atol=0, rtol=0)


def test_a_centred_mel_is_vocoded_once():
    voc = BigVGAN(BIGVGAN_PRESETS["tiny"]).eval()
    codec = AudioCodec(CODEC_PRESETS["44k"], MelVAE(MEL_VAE_PRESETS["tiny"]).eval(), vocoder=voc).eval()
    seen = []
    voc.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    mel = torch.randn(1, 128, 24) - 4.0
    with torch.inference_mode():
        centred = codec.vocode(torch.stack([mel, mel], 1))                    # B 2 M F, as without Mono2Stereo
        alone = codec.vocode(mel[:, None])                                     # B 1 M F
    assert seen[0] == 1 and centred.shape[1] == 2                              # one channel's work, two channels out
    torch.testing.assert_close(centred, alone.expand_as(centred), atol=0, rtol=0)
    seen.clear()
    with torch.inference_mode():
        codec.vocode(torch.stack([mel, mel + 0.1], 1))                         # two different channels: both vocoded
    assert seen[0] == 2
