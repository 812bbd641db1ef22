"""Key remapping from foreign DiT layouts (MMAudio) to KlingFoleyDiT's names: one table.

`MMAUDIO_KEYS` rewrites names (applied in order, each a regex substitution), `MMAUDIO_DROP`
lists non-persistent buffers that old files still carry, `MMAUDIO_EXTRAS` lists tensors that
belong to the codec rather than the network (handed to the caller), and `MMAUDIO_TENSORS`
rewrites tensor layouts (MMAudio's interleaved qkv, gotcha G1).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch

__all__ = ["MMAUDIO_KEYS", "MMAUDIO_DROP", "MMAUDIO_EXTRAS", "MMAUDIO_TENSORS", "remap_mmaudio",
           "deinterleave_qkv"]

HEAD_DIM = 64


def deinterleave_qkv(t: torch.Tensor) -> torch.Tensor:
    """MMAudio qkv rows ((h*64 + d)*3 + j, j in q/k/v innermost) -> our [q; k; v] rows (j, h, d).

    Works for the weight [3D, Din] and the bias [3D].
    """
    rows = t.shape[0]
    heads = rows // (3 * HEAD_DIM)
    return t.reshape(heads, HEAD_DIM, 3, *t.shape[1:]).movedim(2, 0).reshape(t.shape).contiguous()


MMAUDIO_KEYS: list[tuple[str, str]] = [
    (r"^audio_input_proj\.0\.", "audio_in.proj."),
    (r"^audio_input_proj\.2\.", "audio_in.mlp."),
    (r"^sync_input_proj\.0\.", "sync_in.proj."),
    (r"^sync_input_proj\.2\.", "sync_in.mlp."),
    (r"^clip_input_proj\.0\.", "visual_in.proj."),
    (r"^clip_input_proj\.[12]\.", "visual_in.mlp."),   # v1: .1. (no activation), v2: .2.
    (r"^text_input_proj\.0\.", "text_in.proj."),
    (r"^text_input_proj\.[12]\.", "text_in.mlp."),
    (r"^clip_cond_proj\.", "visual_pool_proj."),
    (r"^text_cond_proj\.", "text_pool_proj."),
    (r"^global_cond_mlp\.", "global_mlp."),
    (r"^t_embed\.mlp\.0\.", "t_embed.fc1."),
    (r"^t_embed\.mlp\.2\.", "t_embed.fc2."),
    (r"^final_layer\.adaLN_modulation\.1\.", "final.mod.linear."),
    (r"^final_layer\.conv\.", "final.conv."),
    (r"^joint_blocks\.(\d+)\.latent_block\.", r"joint_blocks.\1.audio."),
    (r"^joint_blocks\.(\d+)\.clip_block\.", r"joint_blocks.\1.visual."),
    (r"^joint_blocks\.(\d+)\.text_block\.", r"joint_blocks.\1.text."),
    (r"^fused_blocks\.(\d+)\.", r"single_blocks.\1."),
    (r"\.adaLN_modulation\.1\.", ".mod.linear."),
    (r"\.attn\.qkv\.", ".qkv."),
    (r"\.attn\.q_norm\.", ".q_norm."),
    (r"\.attn\.k_norm\.", ".k_norm."),
    (r"\.linear1\.", ".out."),
    (r"\.ffn\.", ".mlp."),
    (r"^empty_clip_feat$", "empty_visual"),
    (r"^empty_sync_feat$", "empty_sync"),
    (r"^empty_string_feat$", "empty_text"),
]
MMAUDIO_DROP = ("t_embed.freqs", "latent_rot", "clip_rot")
MMAUDIO_EXTRAS = ("latent_mean", "latent_std")
MMAUDIO_TENSORS: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [
    (r"\.qkv\.(weight|bias)$", deinterleave_qkv),
]
_KEYS = [(re.compile(p), r) for p, r in MMAUDIO_KEYS]
_TENSORS = [(re.compile(p), f) for p, f in MMAUDIO_TENSORS]


def remap_mmaudio(sd: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """MMAudio network state dict -> (our state dict, extras {latent_mean, latent_std})."""
    out, extras = {}, {}
    for key, value in sd.items():
        if key in MMAUDIO_DROP:
            continue
        if key in MMAUDIO_EXTRAS:
            extras[key] = value
            continue
        new = key
        for pattern, repl in _KEYS:
            new = pattern.sub(repl, new)
        for pattern, fn in _TENSORS:
            if pattern.search(new):
                value = fn(value)
        out[new] = value
    return out, extras
