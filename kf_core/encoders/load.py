"""What does an encoder weight file hold? Detection from key names, and clear wrong-kind errors.

`detect_kind(keys)` names the model family a state dict belongs to (our encoders, and the other
files users mix them up with: MMAudio / Kling-Foley networks, VAEs, vocoders). `require_kind`
raises `CheckpointError` saying what the file is and what the loader wanted. `read_keys(path)`
lists a file's keys without loading a multi-GB tensor payload (safetensors headers only).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from ..loading.state import CheckpointError, read_state_dict

__all__ = ["detect_kind", "require_kind", "read_keys", "KIND_NAMES"]

KIND_NAMES = {
    "t5": "a T5 text encoder",
    "clip": "an open_clip CLIP model (MetaCLIP / DFN5B)",
    "synchformer": "a Synchformer visual encoder",
    "flow_network": "a flow network (MMAudio / Kling-Foley DiT)",
    "vae": "an audio VAE",
    "vocoder": "a vocoder (BigVGAN-style generator or Vocos)",
}
_HINT = {
    "t5": "a T5 checkpoint (keys shared.weight, encoder.block.*) with its tokenizer folder",
    "clip": "an open_clip checkpoint (keys visual.conv1.weight, visual.transformer.*, ...)",
    "synchformer": "synchformer_state_dict.pth (keys vfeat_extractor.*) or a file saved by kf_core",
}


def _has(keys: set[str], *needles: str) -> bool:
    return any(any(n in k for k in keys) for n in needles)


def detect_kind(keys: Iterable[str]) -> str | None:
    """State-dict keys -> "t5" | "clip" | "synchformer" | "flow_network" | "vae" | "vocoder" | None."""
    keys = set(keys)
    if _has(keys, "patch_embed_3d.proj.weight") and _has(keys, "temp_embed"):
        return "synchformer"
    if _has(keys, "SelfAttention.q.weight", "DenseReluDense"):
        return "t5"
    if "visual.conv1.weight" in keys or "visual.class_embedding" in keys or \
            ("token_embedding.weight" in keys and "ln_final.weight" in keys):
        return "clip"
    if _has(keys, "joint_blocks.", "fused_blocks.", "audio_input_proj", "empty_clip_feat", "t_embed."):
        return "flow_network"
    if _has(keys, "conv_pre.", "ups.0", "resblocks.0.convs1", "activation_post.", "istft_head."):
        return "vocoder"
    if _has(keys, "encoder.conv_in", "decoder.conv_out", "quant_conv", "encoder.down."):
        return "vae"
    return None


def read_keys(path: str | Path) -> list[str]:
    """Weight file -> its key names (safetensors: header only; pickles are loaded)."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors" and path.is_file():
        from safetensors import SafetensorError, safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                return list(f.keys())
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{path.name} is not a readable safetensors file ({e})") from e
    return list(read_state_dict(path))


def require_kind(sd_or_keys: dict[str, torch.Tensor] | Iterable[str], kind: str, path: str | Path) -> None:
    """Raise CheckpointError unless the keys belong to `kind`; the message says what the file is."""
    keys = list(sd_or_keys)
    found = detect_kind(keys)
    if found == kind:
        return
    name = Path(path).name
    what = KIND_NAMES.get(found, "an unrecognised model")
    sample = ", ".join(sorted(keys)[:4])
    raise CheckpointError(f"{name} holds {what} (keys like {sample}), not {KIND_NAMES[kind]}. "
                          f"Give this loader {_HINT[kind]}.")
