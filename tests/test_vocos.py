"""Vocos vocoder: exact F·hop length and frame alignment, determinism, the exact inverse framing,
loading by content (float16 storage, prefixes, a model folder's manifest) and clear errors."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as Fn

from kf_core.codec.bundle import load_audio_codec
from kf_core.codec.load import load_vocoder
from kf_core.codec.mel import MelSpectrogram, STFTFraming
from kf_core.codec.mel_vae import MelVAE, MelVAEConfig
from kf_core.codec.vocos import VOCOS_PRESETS, Vocos, VocosConfig, detect_vocos_config, vocos_config_for
from kf_core.config import CODEC_PRESETS
from kf_core.encoders.load import detect_kind
from kf_core.loading import CheckpointError, save_state_dict

CFG = CODEC_PRESETS["44k"]
SMALL = VocosConfig(dim=32, mlp_dim=64, layers=2)


def _small(seed: int = 0) -> Vocos:
    torch.manual_seed(seed)
    return Vocos(SMALL).eval()


@pytest.mark.parametrize("frames", [3, 17, 64])
def test_output_has_exactly_frames_times_hop_samples(frames):
    with torch.no_grad():
        wave = _small()(torch.randn(2, 128, frames))
    assert wave.shape == (2, 1, frames * CFG.hop)
    assert wave.abs().max() <= 1.0


def test_inverse_stft_undoes_the_front_end_framing():
    """A consistent spectrogram (the front end's own STFT of a wave) comes back as that wave."""
    front = MelSpectrogram(CFG)
    wave = 0.3 * torch.randn(2, 40 * CFG.hop, generator=torch.Generator().manual_seed(0))
    x = Fn.pad(wave[:, None], (front.pad, front.pad), mode="reflect")[:, 0]
    spec = torch.stft(x, CFG.n_fft, CFG.hop, CFG.win, window=torch.hann_window(CFG.win), center=False,
                      return_complex=True)
    torch.testing.assert_close(STFTFraming(CFG.n_fft, CFG.hop).istft(spec), wave, atol=1e-5, rtol=0)


def test_a_frame_sounds_where_the_mel_frame_is():
    """Energy in one mel frame only comes out centred on sample f·hop + hop/2 (the front end's frame centre)."""
    voc = _small()
    with torch.no_grad():
        spec = torch.zeros(1, SMALL.bins, 21, dtype=torch.complex64)
        spec[0, 40, 10] = 500.0
        wave = voc.transform.istft(spec)[0]
    centre = float((wave.square() * torch.arange(wave.numel())).sum() / wave.square().sum())
    assert abs(centre - (10 * CFG.hop + CFG.hop / 2)) < CFG.hop / 8


def test_magnitude_starts_from_the_filterbank_pseudo_inverse():
    """With a zero head the predicted |S| is Griffin-Lim's starting magnitude: pinv(basis)·exp(mel)."""
    voc = _small()
    torch.nn.init.zeros_(voc.istft_head.weight)
    front = MelSpectrogram(CFG)
    mel = front(0.2 * torch.randn(1, 30 * CFG.hop, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        mag = voc.spectrum(mel).abs()
    torch.testing.assert_close(mag, front.mel_to_linear(mel).clamp_min(1e-5), rtol=1e-4, atol=1e-6)


def test_shifting_the_mel_by_whole_frame_periods_shifts_the_wave():
    """Away from the edges the vocoder is shift-equivariant for shifts of n_fft/hop frames (its
    frame-position vectors repeat with that period): dropping 4 mel frames drops 4 hops of samples."""
    voc, hop = _small(), CFG.hop
    mel = torch.randn(1, 128, 48, generator=torch.Generator().manual_seed(2)) - 4.0
    with torch.no_grad():
        a, b = voc(mel)[0, 0], voc(mel[..., 4:])[0, 0]
    assert a.abs().max() < 1.0                                   # not clipped
    torch.testing.assert_close(b[12 * hop:28 * hop], a[16 * hop:32 * hop], atol=2e-5, rtol=0)


def test_deterministic_and_batch_independent():
    mel = torch.randn(3, 128, 20)
    with torch.no_grad():
        a, b = _small()(mel), _small()(mel)
        single = _small()(mel[1:2])
    assert torch.equal(a, b)
    torch.testing.assert_close(a[1:2], single, atol=1e-5, rtol=0)


def test_config_validation_and_codec_fit():
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        VocosConfig(kernel_size=4)
    with pytest.raises(ValueError, match="n_fft - hop even"):
        VocosConfig(n_fft=2048, hop=511)
    cfg16 = vocos_config_for(CODEC_PRESETS["16k"])
    assert (cfg16.n_mels, cfg16.n_fft, cfg16.hop, cfg16.sample_rate) == (80, 1024, 256, 16000)
    with pytest.raises(ValueError, match="win 1024 < n_fft 2048"):
        vocos_config_for(replace(CFG, win=1024))
    tiny = VOCOS_PRESETS["tiny"]
    with torch.device("meta"):
        n = sum(p.numel() for p in Vocos(tiny).parameters())
    assert n * 2 < 5e6  # float16 storage under 5 MB


def test_loads_by_content_in_float16_and_with_a_prefix(tmp_path):
    voc = _small(3)
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in voc.state_dict().items()}
    path = save_state_dict(sd, tmp_path / "voc.safetensors")
    loaded = load_vocoder(path)
    assert isinstance(loaded, Vocos) and loaded.cfg == SMALL
    assert next(loaded.parameters()).dtype == torch.float32
    assert detect_kind(sd) == "vocoder" and detect_vocos_config(sd) == SMALL
    mel = torch.randn(1, 128, 12)
    with torch.no_grad():
        ref = Vocos(SMALL).eval()
        ref.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
        torch.testing.assert_close(loaded(mel), ref(mel))
    prefixed = save_state_dict({f"vocoder.{k}": v for k, v in sd.items()}, tmp_path / "combined.safetensors")
    assert isinstance(load_vocoder(prefixed), Vocos)


def test_wrong_files_say_what_they_are(tmp_path):
    vae = save_state_dict(MelVAE(MelVAEConfig(width=8, ch_mult=(1,), norm_groups=4)).state_dict(),
                          tmp_path / "vae.safetensors")
    with pytest.raises(CheckpointError, match="not a vocoder: it looks like a Kling-Foley Mel-VAE"):
        load_vocoder(vae)
    sd = _small().state_dict()
    sd["framing"] = torch.tensor([44100, 1024, 256, 0, 0, 0, 0])   # head has 2·1025 outputs, framing says 1024
    bad = save_state_dict(sd, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="tensors do not fit"):
        load_vocoder(bad)
    sd = _small().state_dict()
    sd.pop("blocks.1.gamma")
    missing = save_state_dict(sd, tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="blocks.1.gamma"):
        load_vocoder(missing)


def test_model_folder_manifest_role_uses_the_vocoder(tmp_path):
    vae_cfg = MelVAEConfig(latent_channels=16, width=8, ch_mult=(1,), norm_groups=4)
    save_state_dict(MelVAE(vae_cfg).state_dict(), tmp_path / "vae.safetensors")
    save_state_dict(_small().state_dict(), tmp_path / "vocoder.safetensors")
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"components": {"vae": "vae.safetensors", "vocoder": "vocoder.safetensors"}, "codec": "44k"}))
    codec = load_audio_codec(tmp_path)
    assert isinstance(codec.vocoder, Vocos)
    with torch.no_grad():
        wave = codec.decode_latents(torch.randn(1, 10, 16), stereo=True)
    assert wave.shape == (1, 2, 20 * CFG.hop) and math.isfinite(float(wave.abs().sum()))
