"""MMAudio's MP Mel-VAE: parity with the reference (fixture vae_small), normalise-once, loading."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from kf_core.codec.load import load_vae
from kf_core.codec.mmaudio_vae import (MMAUDIO_VAE_PRESETS, NORMALIZED_FLAG, MMAudioVAE, MMAudioVAEConfig,
                                       load_mmaudio_state_dict,
                                       mp_normalize_weight)
from kf_core.loading import CheckpointError, read_state_dict, save_state_dict


@pytest.fixture(scope="module")
def fixture(mmaudio_fixtures):
    sd = load_file(str(mmaudio_fixtures / "vae_small.safetensors"))
    vec = load_file(str(mmaudio_fixtures / "vae_small_vectors.safetensors"))
    return sd, vec


def _close(a, b, atol):
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-5)


def test_keys_are_mmaudios(fixture):
    sd, _ = fixture
    assert len(sd) == 57
    vae = load_mmaudio_state_dict(sd)
    assert set(vae.state_dict()) - {NORMALIZED_FLAG} == set(sd)
    assert (vae.cfg.data_dim, vae.cfg.embed_dim, vae.cfg.hidden_dim) == (128, 40, 16)
    assert (vae.cfg.n_mels, vae.cfg.latent_channels) == (128, 40)     # the names MelVAEConfig uses


def test_decode_and_encode_match_reference(fixture):
    sd, vec = fixture
    vae = load_mmaudio_state_dict(sd)
    with torch.no_grad():
        _close(vae.decode(vec["latent"]), vec["decoded_mel"], 5e-5)
        post = vae.encode(vec["mel_in"])
        assert post.mean.shape == (2, 40, 16)
        _close(post.mean, vec["posterior_mean"], 1e-5)
        _close(post.logvar, vec["posterior_logvar"], 1e-5)
        _close(post.std, vec["posterior_std"], 1e-5)
        _close(vae.decode(post.mean), vec["recon_mel_from_mean"], 5e-5)


def test_weights_normalised_once_per_output_channel(fixture):
    sd, vec = fixture
    vae = load_mmaudio_state_dict(sd)
    own = vae.state_dict()
    for key in (k for k in vec if k.startswith("dbg.normalized.")):
        _close(own[key[len("dbg.normalized."):]], vec[key], 1e-5)
    # The caller's raw tensors are untouched, so loading the same dict again gives the same model.
    again = load_mmaudio_state_dict(sd)
    assert torch.equal(again.decoder.conv_in.weight, vae.decoder.conv_in.weight)
    with pytest.raises(RuntimeError, match="already normalised"):
        vae.normalize_weights_()


def test_saved_module_is_not_normalised_again(fixture, tmp_path):
    sd, vec = fixture
    vae = load_mmaudio_state_dict(sd)
    path = save_state_dict(vae.state_dict(), tmp_path / "vae.safetensors")
    reloaded = load_vae(path)
    assert isinstance(reloaded, MMAudioVAE) and reloaded.weights_normalized
    assert torch.equal(reloaded.encoder.conv_out.weight, vae.encoder.conv_out.weight)
    with torch.no_grad():
        _close(reloaded.decode(vec["latent"]), vec["decoded_mel"], 5e-5)
    # What double normalisation would have done (gotcha G15): a visible change.
    twice = mp_normalize_weight(vae.encoder.conv_out.weight.detach())
    assert (twice - vae.encoder.conv_out.weight).abs().max() > 1e-6


def test_raw_module_refuses_to_run():
    vae = MMAudioVAE(MMAudioVAEConfig(data_dim=80, embed_dim=20, hidden_dim=8))
    with pytest.raises(RuntimeError, match="raw magnitude-preserving"):
        vae.decode(torch.zeros(1, 20, 4))


def test_load_vae_detects_and_rejects(mmaudio_fixtures, fixture):
    sd, vec = fixture
    vae = load_vae(mmaudio_fixtures / "vae_small.safetensors")
    assert isinstance(vae, MMAudioVAE) and not vae.training
    with torch.no_grad():
        _close(vae.decode(vec["latent"]), vec["decoded_mel"], 5e-5)
    with pytest.raises(CheckpointError, match="not a Mel-VAE: it looks like a flow network"):
        load_vae(mmaudio_fixtures / "network_small.safetensors")
    with pytest.raises(CheckpointError, match="not a Mel-VAE: it looks like a BigVGAN vocoder"):
        load_vae(mmaudio_fixtures / "bigvgan_small.safetensors")


def test_real_44k_size_on_meta():
    with torch.device("meta"):
        vae = MMAudioVAE(MMAUDIO_VAE_PRESETS["44k"])
    assert abs(sum(p.numel() for p in vae.parameters()) / 1e6 - 305.48) < 0.01


def test_mis_shaped_file_names_the_keys(fixture):
    sd, _ = fixture
    bad = dict(sd)
    bad["decoder.up.1.upsample.conv.weight"] = torch.zeros(32, 32, 5)
    with pytest.raises(CheckpointError, match="upsample.conv.weight"):
        load_mmaudio_state_dict(bad)


def test_fixture_file_roundtrip_is_raw(mmaudio_fixtures):
    assert NORMALIZED_FLAG not in read_state_dict(mmaudio_fixtures / "vae_small.safetensors")
