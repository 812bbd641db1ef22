"""BigVGAN-v2: parity with MMAudio's reference (fixture bigvgan_small), weight-norm layouts, filters, loading."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from kf_core.codec import alias_free
from kf_core.codec.alias_free import Activation1d, DownSample2x, Snake, SnakeBeta, UpSample2x, kaiser_sinc_filter
from kf_core.codec.bigvgan import BIGVGAN_PRESETS, BigVGAN, detect_bigvgan_config, fuse_weight_norm
from kf_core.codec.load import load_vocoder
from kf_core.loading import CheckpointError, load_strict, save_state_dict


@pytest.fixture(scope="module")
def fixture(mmaudio_fixtures):
    sd = load_file(str(mmaudio_fixtures / "bigvgan_small.safetensors"))
    vec = load_file(str(mmaudio_fixtures / "bigvgan_small_vectors.safetensors"))
    cfg = json.loads((mmaudio_fixtures / "bigvgan_small.json").read_text())["config_json"]
    return sd, vec, cfg


def _build(sd):
    fused = fuse_weight_norm(sd)
    with torch.device("meta"):
        gen = BigVGAN(detect_bigvgan_config(fused))
    return load_strict(gen, fused).eval()


def _check_waveforms(gen, vec):
    with torch.no_grad():
        torch.testing.assert_close(gen(vec["mel"]), vec["waveform"], atol=2e-4, rtol=0)
        torch.testing.assert_close(gen(vec["mel_b2"]), vec["waveform_b2"], atol=2e-4, rtol=0)


def test_legacy_weight_g_v_matches_reference(fixture):
    sd, vec, _ = fixture
    gen = _build(sd)
    assert gen.cfg.upsample_initial_channel == 64 and gen.hop == 512 and not gen.cfg.use_tanh_at_final
    _check_waveforms(gen, vec)
    fused = gen.state_dict()
    for name in ("ups.4.0", "resblocks.13.convs1.1", "conv_post"):
        torch.testing.assert_close(fused[f"{name}.weight"], vec[f"dbg.{name}.weight_fused"], atol=1e-5, rtol=1e-5)
    # ConvTranspose weight norm is per INPUT channel: g has shape (in, 1, 1) for weight (in, out, k).
    assert sd["ups.4.0.weight_g"].shape == (4, 1, 1) and fused["ups.4.0.weight"].shape == (4, 2, 4)


def test_parametrised_and_fused_layouts_give_the_same_output(fixture):
    sd, vec, _ = fixture
    param = {k.replace(".weight_g", ".parametrizations.weight.original0")
              .replace(".weight_v", ".parametrizations.weight.original1"): v for k, v in sd.items()}
    assert any(".parametrizations.weight.original1" in k for k in param)
    legacy = fuse_weight_norm(sd)
    assert not any("weight_g" in k or "parametrizations" in k for k in legacy)
    # Same tensors from every layout (so the same output); fused weights are not fused again.
    for other in (fuse_weight_norm(param), fuse_weight_norm(legacy)):
        assert other.keys() == legacy.keys() and all(torch.equal(other[k], legacy[k]) for k in legacy)
    with torch.no_grad():
        torch.testing.assert_close(_build(param)(vec["mel"]), vec["waveform"], atol=2e-4, rtol=0)
        torch.testing.assert_close(_build(legacy)(vec["mel"]), vec["waveform"], atol=2e-4, rtol=0)


def test_torch_weight_norm_module_loads_into_our_names():
    # torch's own parametrised weight norm on a ConvTranspose: our fusion gives the weight it computes.
    conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.ConvTranspose1d(6, 3, 4, stride=2), dim=0)
    fused = fuse_weight_norm(conv.state_dict())
    torch.testing.assert_close(fused["weight"], conv.weight.detach())


def test_incomplete_weight_norm_pair_is_reported():
    with pytest.raises(ValueError, match="conv_pre.*only its v"):
        fuse_weight_norm({"conv_pre.weight_v": torch.ones(2, 2, 7)})


def test_output_length_is_frames_times_hop_and_clamped():
    gen = BigVGAN(BIGVGAN_PRESETS["tiny"]).eval()
    for frames in (1, 7, 10):
        with torch.no_grad():
            wave = gen(torch.randn(2, 128, frames))
        assert wave.shape == (2, 1, frames * 512)
        assert wave.abs().max() <= 1.0
    with pytest.raises(ValueError, match=r"\[B, 128, F\]"):
        gen(torch.randn(2, 80, 5))


def test_filter_is_computed_and_matches_the_checkpoint(fixture):
    sd, _, _ = fixture
    ours = kaiser_sinc_filter()
    assert torch.equal(ours, sd["resblocks.0.activations.0.upsample.filter"])
    assert torch.equal(ours, sd["activation_post.downsample.lowpass.filter"])


def test_filter_is_low_pass():
    h = kaiser_sinc_filter()[0, 0].double()
    freqs = torch.linspace(0, 0.5, 501, dtype=torch.float64)           # cycles per sample
    n = torch.arange(h.numel(), dtype=torch.float64)
    resp = (h[None] * torch.exp(-2j * torch.pi * freqs[:, None] * n[None])).sum(-1).abs()
    assert abs(resp[0].item() - 1.0) < 1e-6                            # unit DC gain
    assert (resp[freqs <= 0.08] - 1).abs().max() < 0.02                 # flat passband
    stop = 20 * torch.log10(resp[freqs >= 0.4].max())
    assert stop < -40, f"stopband only {stop:.1f} dB"                    # strong attenuation past cutoff


def test_resampling_keeps_a_low_tone():
    t = torch.arange(256, dtype=torch.float32)
    x = torch.sin(2 * torch.pi * 0.05 * t)[None, None]
    up = UpSample2x()(x)
    # The even-length filter delays the ×2 signal by half of its sample (a quarter input sample) ...
    t2 = torch.arange(512, dtype=torch.float32) / 2 - 0.25
    torch.testing.assert_close(up[0, 0, 40:-40], torch.sin(2 * torch.pi * 0.05 * t2)[40:-40], atol=0.01, rtol=0)
    # ... and the down-sampler's asymmetric padding takes the delay back out.
    torch.testing.assert_close(DownSample2x()(up)[0, 0, 20:-20], x[0, 0, 20:-20], atol=0.01, rtol=0)


def _random_activation(act, channels: int, length: int):
    """-> (Activation1d with random snake parameters, input [1, channels, length]), seeded by length."""
    torch.manual_seed(length)
    mod = Activation1d(act(channels))
    with torch.no_grad():
        for p in mod.act.parameters():
            p.normal_(0, 0.5)
    return mod, 2 * torch.randn(1, channels, length)


@pytest.mark.parametrize("length", [1, 2, 3, 7, 300, 2049])
@pytest.mark.parametrize("act", [SnakeBeta, Snake])
def test_polyphase_activation_is_the_modules_path(length, act, monkeypatch):
    # generation's one-pass polyphase form against up -> act -> down, with blocks of 256 samples so
    # the longer inputs cross block boundaries (halo) and reach both padded ends
    monkeypatch.setattr(alias_free, "POLYPHASE_BLOCK", 3 * 256)
    mod, x = _random_activation(act, 3, length)
    slow = mod(x)                                    # autograd on: the modules' path
    with torch.no_grad():
        fast = mod(x)
    assert fast.shape == slow.shape == x.shape
    torch.testing.assert_close(fast, slow.detach(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("length", [1, 5, 256, 257, 1000])
def test_polyphase_activation_into_its_input_gives_the_same_values(length, monkeypatch):
    # reuse_input writes the result into x's memory, each block after the next one has read its
    # input (the reads reach 6 samples back): the values must be those of the fresh-output pass
    monkeypatch.setattr(alias_free, "POLYPHASE_BLOCK", 2 * 256)
    mod, x = _random_activation(SnakeBeta, 2, length)
    with torch.no_grad():
        fresh = mod(x.clone())
        y = mod(x, reuse_input=True)
    assert y.data_ptr() == x.data_ptr()
    assert torch.equal(y, fresh)


def test_published_44k_size_and_16k_config():
    with torch.device("meta"):
        big = BigVGAN(BIGVGAN_PRESETS["44k"])
    n = sum(p.numel() for p in big.parameters())
    assert abs(n - 122e6) / 122e6 < 0.05, n
    assert big.hop == 512 and BIGVGAN_PRESETS["16k"].hop == 256 and BIGVGAN_PRESETS["16k"].use_tanh_at_final
    with pytest.raises(ValueError, match="divisible"):
        BIGVGAN_PRESETS["44k"].__class__(upsample_initial_channel=100)


def test_load_vocoder_folder_file_and_foreign(fixture, tmp_path, mmaudio_fixtures):
    sd, vec, cfg = fixture
    folder = tmp_path / "bigvgan_v2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    torch.save({"generator": sd}, folder / "bigvgan_generator.pt")
    gen = load_vocoder(folder)
    assert gen.cfg.upsample_rates == (8, 4, 2, 2, 2, 2) and not gen.cfg.use_tanh_at_final
    with torch.no_grad():
        torch.testing.assert_close(gen(vec["mel"]), vec["waveform"], atol=2e-4, rtol=0)
    # a lone file (prefixed, as in combined checkpoints), sized from its shapes
    lone = save_state_dict({f"vocoder.{k}": v for k, v in sd.items()}, tmp_path / "voc.safetensors")
    gen = load_vocoder(lone)
    assert gen.cfg.num_mels == 128 and gen.hop == 512
    with torch.no_grad():
        torch.testing.assert_close(gen(vec["mel"]), vec["waveform"], atol=2e-4, rtol=0)
    with pytest.raises(CheckpointError, match="not a vocoder: it looks like an MMAudio Mel-VAE"):
        load_vocoder(mmaudio_fixtures / "vae_small.safetensors")
    with pytest.raises(CheckpointError, match="Synchformer"):
        load_vocoder(mmaudio_fixtures / "synchformer_small.safetensors")
