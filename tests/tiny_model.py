"""Test double: a model folder with the kf-tiny *architecture* and random weights.

Used by pipeline, CLI and node tests to exercise the plumbing (loading, durations, stereo,
muxing) without trained weights. It is never shipped and says nothing about sound quality.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from kf_core.codec.bigvgan import BIGVGAN_PRESETS, BigVGAN
from kf_core.codec.mel_vae import MEL_VAE_PRESETS, MelVAE
from kf_core.encoders import ClipVisionEncoder, Synchformer, T5TextEncoder
from kf_core.loading.dit import save_dit
from kf_core.loading.state import save_state_dict
from kf_core.model import build_model


def write_random_tiny_folder(folder: Path, seed: int = 0, *, vocoder: bool = True) -> Path:
    """Write dit/vae/vocoder/encoder files + manifest.json of a random kf-tiny into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    dit = build_model("kf-tiny")
    for p in dit.parameters():  # adaLN-Zero would make a fresh model output exactly zero
        torch.nn.init.normal_(p, std=0.05)
    c = dit.cfg.latent_dim
    save_dit(dit, folder / "dit.safetensors", latent_mean=torch.zeros(c), latent_std=torch.ones(c))
    save_state_dict(MelVAE(MEL_VAE_PRESETS["tiny"]).state_dict(), folder / "vae.safetensors")
    components = {"dit": "dit.safetensors", "vae": "vae.safetensors", "text_encoder": "t5.safetensors",
                  "clip": "clip.safetensors", "synchformer": "synchformer.safetensors", "vocoder": None}
    if vocoder:
        save_state_dict(BigVGAN(BIGVGAN_PRESETS["tiny"]).state_dict(), folder / "vocoder.safetensors")
        components["vocoder"] = "vocoder.safetensors"
    save_state_dict(T5TextEncoder.tiny(seed).model.state_dict(), folder / "t5.safetensors")
    clip = ClipVisionEncoder.tiny(seed)
    save_state_dict({f"visual.{k}": v for k, v in clip.visual.state_dict().items()}, folder / "clip.safetensors")
    save_state_dict(Synchformer.tiny(seed).state_dict(), folder / "synchformer.safetensors")
    manifest = {"name": "kf-tiny-random", "components": components, "codec": "44k",
                "clip_model": "kf-tiny-clip", "text_tokenizer": "byt5"}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder
