"""MMAudio-format files run through the same pipeline stages and folder detection as kf-tiny."""
from __future__ import annotations

import shutil

import torch

from kf_core.components import _detect_roles, codec_from_roles, dit_from_file
from kf_core.pipeline import TextCondition, decode_mel, sample_latents, to_stereo, vocode


def test_mmaudio_network_vae_and_bigvgan_through_the_stages(mmaudio_fixtures):
    dit = dit_from_file(mmaudio_fixtures / "network_small.safetensors")
    assert dit.info.layout == "mmaudio" and dit.max_duration is None  # no duration embedding
    codec = codec_from_roles({"vae": mmaudio_fixtures / "vae_small.safetensors",
                              "vocoder": mmaudio_fixtures / "bigvgan_small.safetensors"},
                             preset=dit.model.cfg.codec, latent_mean=dit.info.latent_mean,
                             latent_std=dit.info.latent_std)
    # MMAudio text is CLIP's per-token features [B, 77, 1024] with no mask; a negative prompt too
    text = TextCondition(torch.randn(1, 77, 1024), None, torch.randn(1, 77, 1024), None, "x", "y")
    lat = sample_latents(dit, text=text, duration=1.0, steps=2, seed=0)
    assert lat.z.shape == (1, 44, 40) and torch.isfinite(lat.z).all()
    assert torch.equal(lat.latent_mean, dit.info.latent_mean)
    audio = vocode(codec, to_stereo(codec, decode_mel(codec, lat)))
    assert audio.waveform.shape == (1, 2, 44100) and audio.sample_rate == 44100
    assert torch.equal(audio.waveform[:, 0], audio.waveform[:, 1])  # no Mono2Stereo: centred


def test_a_folder_without_manifest_is_recognised_by_content(mmaudio_fixtures, tmp_path):
    names = {"network_small.safetensors": "dit", "vae_small.safetensors": "vae",
             "bigvgan_small.safetensors": "vocoder", "synchformer_small.safetensors": "synchformer"}
    for name in names:
        shutil.copy(mmaudio_fixtures / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a model")
    roles = _detect_roles(tmp_path)
    assert {role: path.name for role, path in roles.items()} == {v: k for k, v in names.items()}
