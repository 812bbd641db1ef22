"""Kling-Foley Mel-VAE: shapes and rates, odd lengths, the paper's 32-layer encoder, KL margin, training, loading."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kf_core.codec.load import load_vae
from kf_core.codec.mel_vae import (MEL_VAE_PRESETS, DiagonalGaussian, MelVAE, MelVAEConfig, detect_mel_vae_config,
                                   kl_margin_loss)
from kf_core.config import SeqConfig
from kf_core.loading import CheckpointError, save_state_dict

NARROW = MelVAEConfig(width=8, ch_mult=(1, 2), blocks_per_level=1, mid_blocks=1, norm_groups=4)


def test_8_seconds_at_44k_round_trip_shapes():
    seq = SeqConfig(duration=8.0)
    frames = seq.mel_len                                          # 690 mel frames for 8 s (latent_len · 2)
    assert frames == 690 and seq.latent_len == 345
    vae = MelVAE(NARROW).eval()
    mel = torch.randn(2, 128, frames)
    with torch.no_grad():
        post = vae.encode(mel)
        assert post.mean.shape == post.logvar.shape == post.std.shape == (2, 40, 345)
        assert vae.decode(post.sample()).shape == (2, 128, 690)
    assert abs(44100 / 512 / vae.latent_downsample - 43.07) < 0.01  # latent rate


@pytest.mark.parametrize("frames", [5, 33, 101])
def test_odd_lengths_pad_then_crop(frames):
    vae = MelVAE(NARROW).eval()
    mel = torch.randn(1, 128, frames)
    with torch.no_grad():
        post = vae.encode(mel)
        assert post.mean.shape[-1] == (frames + 1) // 2
        assert vae.decode(post.mean).shape[-1] == frames + 1
        rec, _ = vae(mel, sample=False)
    assert rec.shape == mel.shape
    # the padding repeats the last frame: encoding an odd clip equals encoding it with that frame added
    with torch.no_grad():
        padded = vae.encode(torch.cat([mel, mel[..., -1:]], dim=-1)).mean
    torch.testing.assert_close(post.mean, padded)


def test_full_config_has_32_encoder_conv_layers():
    cfg = MEL_VAE_PRESETS["full"]
    with torch.device("meta"):
        vae = MelVAE(cfg)
    convs = [m for m in vae.encoder.modules() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 32 == cfg.encoder_conv_layers
    assert cfg.n_mels == 128 and cfg.latent_channels == 40
    assert any(isinstance(m, torch.nn.ConvTranspose1d) for m in vae.decoder.modules())
    tiny = MEL_VAE_PRESETS["tiny"]
    assert tiny.latent_channels == 16 and tiny.width < cfg.width


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        MelVAEConfig(kernel_size=4)
    with pytest.raises(ValueError, match="blocks_per_level"):
        MelVAEConfig(blocks_per_level=0)


def test_gaussian_and_kl_margin():
    mean, logvar = torch.zeros(2, 4, 3), torch.zeros(2, 4, 3)
    post = DiagonalGaussian(mean, logvar)
    assert kl_margin_loss(post).item() == 0.0                      # N(0, I) has no KL
    post = DiagonalGaussian(torch.full((2, 4, 3), 2.0), torch.full((2, 4, 3), 100.0))
    assert post.logvar.max().item() == 20.0                        # logvar clamped
    post = DiagonalGaussian(torch.full((2, 4, 3), 2.0), torch.zeros(2, 4, 3))
    assert kl_margin_loss(post).item() == pytest.approx(2.0)        # 0.5·mean² per element
    assert kl_margin_loss(post, reduction="frame").item() == pytest.approx(8.0)   # × C channels
    assert kl_margin_loss(post, margin=0.5).item() == pytest.approx(1.5)
    assert kl_margin_loss(post, margin=5.0).item() == 0.0          # below the margin: no pull
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(post.sample(g1), post.sample(g2))
    # reparameterised: gradients reach mean and logvar through the sample
    m = torch.zeros(1, 2, 2, requires_grad=True)
    lv = torch.zeros(1, 2, 2, requires_grad=True)
    DiagonalGaussian(m, lv).sample(torch.Generator().manual_seed(0)).sum().backward()
    assert m.grad is not None and lv.grad is not None and lv.grad.abs().sum() > 0


def _smooth_mels(n: int, g: torch.Generator, bins: int = 128, frames: int = 32) -> torch.Tensor:
    """Log-mel-like clips: a spectral tilt plus three Gaussian blobs (partials / bursts) each."""
    f = torch.linspace(0, 1, bins)[:, None]
    t = torch.linspace(0, 1, frames)[None]
    clips = []
    for _ in range(n):
        x = (-8 + 4 * (1 - f)).expand(bins, frames).clone()
        for _ in range(3):
            c, w = torch.rand(2, generator=g), 0.05 + 0.2 * torch.rand(2, generator=g)
            x = x + 4 * torch.rand(1, generator=g) * torch.exp(-((f - c[0]) / w[0]) ** 2 - ((t - c[1]) / w[1]) ** 2)
        clips.append(x)
    return torch.stack(clips)                                      # B M F


def test_training_lowers_reconstruction_loss():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = _smooth_mels(6, g)
    vae = MelVAE(MelVAEConfig(latent_channels=16, width=16, ch_mult=(1, 2), blocks_per_level=1, mid_blocks=1))
    vae.set_mel_statistics(data.mean((0, 2)), data.std((0, 2)) + 1e-3)

    def recon_mse() -> float:
        with torch.no_grad():
            return F.mse_loss(vae(data, sample=False)[0], data).item()

    before = recon_mse()
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    std = lambda x: (x - vae.mel_mean) / vae.mel_std  # noqa: E731  (loss in the standardised space)
    for _ in range(200):
        rec, post = vae(data, generator=g)
        loss = F.mse_loss(std(rec), std(data)) + 1e-4 * kl_margin_loss(post)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = recon_mse()
    assert after < before / 5, (before, after)


def test_save_detect_and_load(tmp_path, mmaudio_fixtures):
    cfg = MelVAEConfig(latent_channels=16, width=16, ch_mult=(1, 2, 4), blocks_per_level=2, mid_blocks=1)
    vae = MelVAE(cfg).eval()
    vae.set_mel_statistics(torch.linspace(-8, 0, 128), torch.linspace(1, 2, 128))
    assert detect_mel_vae_config(vae.state_dict()) == cfg
    path = save_state_dict(vae.state_dict(), tmp_path / "melvae.safetensors")
    loaded = load_vae(path)
    assert isinstance(loaded, MelVAE) and loaded.cfg == cfg and not loaded.training
    mel = torch.randn(1, 128, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.decode(vae.encode(mel).mean), vae.decode(vae.encode(mel).mean))
    with pytest.raises(CheckpointError, match="not a Mel-VAE: it looks like a Synchformer"):
        load_vae(mmaudio_fixtures / "synchformer_small.safetensors")
    with pytest.raises(ValueError, match=r"\[B, 128, F\]"):
        vae.encode(torch.randn(1, 80, 16))
