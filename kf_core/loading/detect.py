"""Which DiT does a state dict hold? `detect_config(sd)` infers layout and ModelConfig from shapes.

Recognises our own layout (any Kling-Foley preset or custom size) and every MMAudio flow network
(small_16k, small_44k, medium_44k, large_44k, large_44k_v2 and v1/v2 custom sizes, MMAUDIO.md
§1.6). Anything else raises CheckpointError saying what the file looks like.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..model.config import HEAD_DIM, PRESETS, ModelConfig, swiglu_hidden
from .state import CheckpointError

__all__ = ["DetectedDiT", "detect_config", "MMAUDIO_VARIANTS"]

# (latent C, width D, joint, fused, v2) -> released name. Only large_44k_v2 uses the v2 layout
# (the parameter totals of MMAUDIO.md §1.1 confirm it: the others have a 256-wide t_embed).
MMAUDIO_VARIANTS = {
    (20, 448, 4, 8, False): "small_16k", (40, 448, 4, 8, False): "small_44k",
    (40, 896, 4, 8, False): "medium_44k", (40, 896, 7, 14, False): "large_44k",
    (40, 896, 7, 14, True): "large_44k_v2",
}


@dataclass(frozen=True)
class DetectedDiT:
    layout: str          # "kling-foley" (our keys) or "mmaudio"
    variant: str         # preset / released-network name, or a description of a custom size
    config: ModelConfig


def _count(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    pat = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    ids = {int(m.group(1)) for k in sd if (m := pat.match(k))}
    if ids and ids != set(range(len(ids))):
        raise CheckpointError(f"{prefix} indices are not contiguous: {sorted(ids)}")
    return len(ids)


def _kernel(w: torch.Tensor) -> int:
    return 1 if w.ndim == 2 else int(w.shape[-1])


def _multiple_for(dim: int, hidden: int) -> int:
    for m in (256, 128, 64, 32, 16, 8, 4, 2, 1):
        if swiglu_hidden(dim, 4.0, m) == hidden:
            return m
    raise CheckpointError(f"MLP hidden width {hidden} is not a SwiGLU width for D={dim} (4D*2/3 rounded up)")


def _need(sd: Mapping[str, torch.Tensor], keys: list[str], what: str) -> None:
    missing = [k for k in keys if k not in sd]
    if missing:
        raise CheckpointError(f"{what}: missing keys {', '.join(missing)}; the file is incomplete or not a DiT")


def _heads(d: int) -> int:
    if d % HEAD_DIM:
        raise CheckpointError(f"width D={d} is not a multiple of the head dim {HEAD_DIM}")
    return d // HEAD_DIM


def _detect_mmaudio(sd: Mapping[str, torch.Tensor]) -> DetectedDiT:
    _need(sd, ["audio_input_proj.0.bias", "audio_input_proj.2.w1.weight", "t_embed.mlp.0.weight",
               "clip_input_proj.0.weight", "sync_input_proj.0.weight", "text_input_proj.0.weight",
               "final_layer.conv.weight", "empty_string_feat", "sync_pos_emb",
               "joint_blocks.0.latent_block.linear1.weight", "joint_blocks.0.text_block.linear1.weight"],
          "MMAudio network")
    d = int(sd["audio_input_proj.0.bias"].shape[0])
    c = int(sd["audio_input_proj.0.weight"].shape[1])
    v2 = "clip_input_proj.2.w1.weight" in sd
    if not v2 and "clip_input_proj.1.w1.weight" not in sd:
        raise CheckpointError("MMAudio network: clip_input_proj has neither the v1 (.1.w1) nor the v2 (.2.w1) MLP")
    f_dim = int(sd["t_embed.mlp.0.weight"].shape[1])
    joint, fused = _count(sd, "joint_blocks"), _count(sd, "fused_blocks")
    last = f"joint_blocks.{joint - 1}.clip_block"
    cfg = ModelConfig(
        name="mmaudio", latent_dim=c, num_heads=_heads(d), num_joint=joint, num_single=fused,
        text_dim=int(sd["text_input_proj.0.weight"].shape[1]),
        visual_dim=int(sd["clip_input_proj.0.weight"].shape[1]),
        sync_dim=int(sd["sync_input_proj.0.weight"].shape[1]),
        text_len=int(sd["empty_string_feat"].shape[0]),
        sync_tokens_per_segment=int(sd["sync_pos_emb"].shape[2]),
        mlp_multiple=_multiple_for(d, int(sd["audio_input_proj.2.w1.weight"].shape[0])),
        audio_in_kernel=_kernel(sd["audio_input_proj.0.weight"]),
        sync_in_kernel=_kernel(sd["sync_input_proj.0.weight"]),
        visual_kernel=_kernel(sd["joint_blocks.0.clip_block.linear1.weight"]),
        audio_kernel=_kernel(sd["joint_blocks.0.latent_block.linear1.weight"]),
        text_kernel=_kernel(sd["joint_blocks.0.text_block.linear1.weight"]),
        final_kernel=_kernel(sd["final_layer.conv.weight"]),
        input_activation="silu" if v2 else "selu", linear_proj_activation=v2,
        t_freq_dim=f_dim, t_max_period=1.0 if v2 else 10000.0,
        text_pool="mean", text_attention_mask=False, final_cond="global", duration_embedding=False,
        sync_upsample="nearest-exact",
        empty_text_len=int(sd["empty_string_feat"].shape[0]),
        pre_only_last_joint=f"{last}.linear1.weight" not in sd,
        codec="16k" if c == 20 else "44k")
    name = MMAUDIO_VARIANTS.get((c, d, joint, fused, v2))
    variant = name or f"mmaudio-{'v2' if v2 else 'v1'} custom (C={c}, D={d}, {joint} joint + {fused} fused)"
    return DetectedDiT("mmaudio", variant, cfg.with_(name=f"mmaudio-{name}" if name else "mmaudio-custom"))


def _detect_ours(sd: Mapping[str, torch.Tensor]) -> DetectedDiT:
    _need(sd, ["audio_in.proj.bias", "audio_in.mlp.w1.weight", "t_embed.fc1.weight", "visual_in.proj.weight",
               "sync_in.proj.weight", "text_in.proj.weight", "final.conv.weight", "empty_text", "sync_pos_emb",
               "joint_blocks.0.audio.out.weight", "joint_blocks.0.text.out.weight"], "Kling-Foley DiT")
    d = int(sd["audio_in.proj.bias"].shape[0])
    joint, single = _count(sd, "joint_blocks"), _count(sd, "single_blocks")
    has_duration = "seconds_start.table.weight" in sd
    fields = dict(
        latent_dim=int(sd["audio_in.proj.weight"].shape[1]), num_heads=_heads(d), num_joint=joint,
        num_single=single, text_dim=int(sd["text_in.proj.weight"].shape[1]),
        visual_dim=int(sd["visual_in.proj.weight"].shape[1]), sync_dim=int(sd["sync_in.proj.weight"].shape[1]),
        sync_tokens_per_segment=int(sd["sync_pos_emb"].shape[2]),
        mlp_multiple=_multiple_for(d, int(sd["audio_in.mlp.w1.weight"].shape[0])),
        audio_in_kernel=_kernel(sd["audio_in.proj.weight"]), sync_in_kernel=_kernel(sd["sync_in.proj.weight"]),
        visual_kernel=_kernel(sd["joint_blocks.0.visual.out.weight"]),
        audio_kernel=_kernel(sd["joint_blocks.0.audio.out.weight"]),
        text_kernel=_kernel(sd["joint_blocks.0.text.out.weight"]),
        final_kernel=_kernel(sd["final.conv.weight"]), t_freq_dim=int(sd["t_embed.fc1.weight"].shape[1]),
        duration_embedding=has_duration, empty_text_len=int(sd["empty_text"].shape[0]),
        pre_only_last_joint=f"joint_blocks.{joint - 1}.visual.out.weight" not in sd)
    if has_duration:
        fields["max_seconds"] = int(sd["seconds_start.table.weight"].shape[0]) - 1
    for name, preset in PRESETS.items():
        if all(getattr(preset, k) == v for k, v in fields.items()):
            return DetectedDiT("kling-foley", name, preset)
    # Options that shapes cannot show (text pooling, final-layer condition, ...) take the
    # Kling-Foley defaults; save_dit records the exact config in the file's metadata.
    cfg = ModelConfig(name="kf-custom", sync_upsample="segments", **fields)
    return DetectedDiT("kling-foley", f"kf-custom (D={d}, {joint} joint + {single} single)", cfg)


_FOREIGN = [  # (key test, what it is, what to do)
    (lambda ks: any(k.startswith(("shared.", "encoder.block.")) for k in ks), "a T5 text encoder",
     "load it with the text encoder loader"),
    (lambda ks: any(k.startswith("vfeat_extractor.") for k in ks), "a Synchformer (sync encoder)",
     "load it with the sync encoder loader"),
    (lambda ks: any("activation_post" in k or k.startswith("conv_pre.") for k in ks), "a BigVGAN vocoder",
     "load it with the vocoder loader"),
    (lambda ks: any(k.startswith(("encoder.", "decoder.")) for k in ks), "an audio VAE / codec (encoder.* and decoder.* keys)",
     "load it with the codec (Mel-VAE) loader"),
    (lambda ks: any(k.startswith("visual.transformer.") or k == "token_embedding.weight" for k in ks),
     "an open_clip CLIP model", "load it with the visual encoder loader"),
]


def detect_config(sd: Mapping[str, torch.Tensor]) -> DetectedDiT:
    """Flow-network state dict -> DetectedDiT(layout, variant, config), or CheckpointError."""
    keys = list(sd)
    if "audio_input_proj.0.weight" in sd:
        return _detect_mmaudio(sd)
    if "audio_in.proj.weight" in sd:
        return _detect_ours(sd)
    for test, what, todo in _FOREIGN:
        if test(keys):
            raise CheckpointError(f"this file is not a flow DiT: it looks like {what} "
                                  f"(keys such as {', '.join(keys[:4])}); {todo}")
    raise CheckpointError("this file is not a Kling-Foley or MMAudio flow network: expected the key "
                          f"'audio_in.proj.weight' or 'audio_input_proj.0.weight', found {', '.join(keys[:6])}"
                          + (f", ... ({len(keys)} keys)" if len(keys) > 6 else ""))
