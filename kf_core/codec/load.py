"""Codec weight files -> ready modules: `load_vae(path)` and `load_vocoder(path_or_dir)`.

Both read the file with `kf_core.loading.state.read_state_dict`, tell from key names and tensor
shapes which architecture and size it holds, build it on the `meta` device and load strictly.
- VAE: our `MelVAE` (keys `mel_mean`, `encoder.levels.*`) or MMAudio's MP VAE (keys `data_mean`,
  `encoder.learnable_gain`; 16 k / 44.1 k / other sizes from conv shapes; raw MP weights are
  normalised once, see `mmaudio_vae`).
- Vocoder: our Vocos-style iSTFT vocoder (keys `istft_head.*`, `framing`; sized from its shapes),
  or a BigVGAN (v1/v2) generator in any of three weight-norm layouts, either optionally wrapped as
  `{"generator": ...}` or prefixed (e.g. `vocoder.` in combined files); a folder with NVIDIA's
  `config.json` + `bigvgan_generator.pt` uses that config, a lone BigVGAN file is sized from its shapes.
A file of another kind raises CheckpointError saying what it looks like.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import torch

from ..loading.state import WEIGHT_SUFFIXES, CheckpointError, load_strict, read_state_dict
from .bigvgan import BigVGAN, bigvgan_config_from_json, detect_bigvgan_config, fuse_weight_norm
from .mel_vae import MelVAE, detect_mel_vae_config
from .mmaudio_vae import MMAudioVAE, load_mmaudio_state_dict
from .vocos import Vocos, detect_vocos_config, is_vocos_state_dict

__all__ = ["load_vae", "load_vocoder", "describe_state_dict"]

log = logging.getLogger(__name__)

# (key fragment, what a file holding it is), checked in order.
_SIGNATURES: tuple[tuple[str, str], ...] = (
    ("encoder.learnable_gain", "an MMAudio Mel-VAE"),
    ("mel_mean", "a Kling-Foley Mel-VAE"),
    ("conv_pre.", "a BigVGAN vocoder"),
    ("istft_head.", "a Kling-Foley Vocos vocoder"),
    ("joint_blocks.", "a flow network (DiT / MMAudio network) checkpoint"),
    ("fused_blocks.", "an MMAudio flow network checkpoint"),
    ("vfeat_extractor.", "a Synchformer sync encoder"),
    ("SelfAttention.", "a T5 text encoder"),
    ("visual.transformer.", "a CLIP image-text model (open_clip)"),
    ("vision_model.", "a CLIP/SigLIP vision model (transformers)"),
    ("text_model.", "a CLIP text model (transformers)"),
    ("model.diffusion_model.", "an image diffusion model (e.g. Stable Diffusion)"),
)


def describe_state_dict(sd: Mapping[str, torch.Tensor]) -> str:
    """State dict -> a short phrase naming what kind of model it looks like ("an unrecognised ...")."""
    for fragment, what in _SIGNATURES:
        if any(fragment in k for k in sd):
            return what
    sample = ", ".join(list(sd)[:4])
    return f"an unrecognised model (first keys: {sample})"


def load_vae(path: str | Path, *, device: str | torch.device | None = None,
             dtype: torch.dtype | None = None) -> MelVAE | MMAudioVAE:
    """Mel-VAE weight file -> MelVAE or MMAudioVAE in eval mode, on `device` in `dtype` (default: CPU, fp32)."""
    path = Path(path)
    sd = read_state_dict(path)
    if "encoder.learnable_gain" in sd or "decoder.learnable_gain" in sd:
        if "encoder.conv_in.weight" not in sd:
            raise CheckpointError(
                f"{path.name} is a decoder-only MMAudio VAE; this loader needs the full VAE file "
                "(v1-16.pth / v1-44.pth with encoder and decoder)")
        vae: MelVAE | MMAudioVAE = load_mmaudio_state_dict(sd, what=path.name)
    elif "mel_mean" in sd and "encoder.conv_in.weight" in sd:
        with torch.device("meta"):
            vae = MelVAE(detect_mel_vae_config(sd))
        load_strict(vae, sd, what=path.name)
    else:
        raise CheckpointError(
            f"{path.name} is not a Mel-VAE: it looks like {describe_state_dict(sd)}. Give the VAE file "
            "(a Kling-Foley Mel-VAE export, or MMAudio's v1-44.pth / v1-16.pth)")
    log.info("loaded %s from %s (%s)", type(vae).__name__, path.name, vae.cfg)
    return vae.to(device=device, dtype=dtype).eval()


_GENERATOR_NAMES = ("vocoder.safetensors", "bigvgan_generator.safetensors", "bigvgan_generator.pt",
                    "generator.safetensors", "best_netG.pt", "g.pt")


def _find_generator(folder: Path) -> Path:
    for name in _GENERATOR_NAMES:
        if (folder / name).is_file():
            return folder / name
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in WEIGHT_SUFFIXES and p.is_file())
    if len(files) == 1:
        return files[0]
    listing = ", ".join(p.name for p in folder.iterdir()) or "nothing"
    raise CheckpointError(
        f"{folder} holds no single vocoder weight file (found: {listing}); expected config.json plus "
        "bigvgan_generator.pt as in nvidia/bigvgan_v2_44khz_128band_512x")


def _strip_prefix(sd: dict[str, torch.Tensor], anchor: str) -> dict[str, torch.Tensor]:
    """Keys under whatever prefix precedes `anchor` (combined files: `vocoder.` ...) -> unprefixed."""
    pre = next((k for k in sd if k.endswith(anchor)), None)
    if pre is None:
        return sd
    prefix = pre[:-len(anchor)]
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)} if prefix else sd


def _bigvgan_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for anchor in ("conv_pre.weight", "conv_pre.weight_v", "conv_pre.bias", "conv_pre.parametrizations.weight.original1"):
        if any(k.endswith(anchor) for k in sd):
            return _strip_prefix(sd, anchor)
    return sd


def _load_vocos(sd: dict[str, torch.Tensor], name: str) -> Vocos:
    try:
        cfg = detect_vocos_config(sd)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{name} looks like a Vocos vocoder but its tensors do not fit one ({e}); "
                              "re-export it with `python -m kf_core train vocoder`") from e
    with torch.device("meta"):
        gen = Vocos(cfg)
    load_strict(gen, sd, what=name)
    log.info("loaded Vocos from %s (%d Hz, hop %d, %d mels, width %d x %d blocks)", name, cfg.sample_rate,
             cfg.hop, cfg.n_mels, cfg.dim, cfg.layers)
    return gen


def load_vocoder(path_or_dir: str | Path, *, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None) -> BigVGAN | Vocos:
    """Vocoder weight file (Vocos or BigVGAN) or NVIDIA-style BigVGAN folder -> module in eval mode.

    The module maps log-mel [N,M,F] -> wave [N,1,F·hop]. Vocos files stored in float16 are
    computed in float32 unless `dtype` says otherwise.
    """
    path = Path(path_or_dir)
    if path.is_dir():
        folder, weights = path, _find_generator(path)
    else:
        folder, weights = path.parent, path
    sd = read_state_dict(weights)
    vocos_sd = _strip_prefix(sd, "istft_head.weight")
    if is_vocos_state_dict(vocos_sd):
        gen = _load_vocos(vocos_sd, weights.name)
        return gen.to(device=device, dtype=dtype or torch.float32).eval()
    sd = _bigvgan_prefix(sd)
    if not any(k.startswith("conv_pre.") for k in sd) or not any(k.startswith("ups.") for k in sd):
        raise CheckpointError(
            f"{weights.name} is not a vocoder: it looks like {describe_state_dict(sd)}. Give a Vocos file "
            "(from `python -m kf_core train vocoder`) or BigVGAN's bigvgan_generator.pt (or its folder "
            "with config.json)")
    try:
        sd = fuse_weight_norm(sd)
    except ValueError as e:
        raise CheckpointError(f"{weights.name}: {e}") from e
    cfg = detect_bigvgan_config(sd)
    cfg_file = folder / "config.json"
    if cfg_file.is_file():
        try:
            raw = json.loads(cfg_file.read_text())
            # Only a vocoder config counts; a config.json of some other model beside a lone file does not.
            if isinstance(raw, dict) and "upsample_rates" in raw:
                cfg = bigvgan_config_from_json(raw)
        except (json.JSONDecodeError, TypeError, ValueError) as e:
            raise CheckpointError(f"{cfg_file} is not a usable BigVGAN config ({e})") from e
    with torch.device("meta"):
        gen = BigVGAN(cfg)
    load_strict(gen, sd, what=weights.name)
    log.info("loaded BigVGAN from %s (hop %d, %d mels)", weights.name, cfg.hop, cfg.num_mels)
    return gen.to(device=device, dtype=dtype).eval()
