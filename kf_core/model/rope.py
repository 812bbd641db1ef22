"""Aligned rotary position embeddings (paper §3.4): pure float32 functions.

Pairs are ADJACENT dims (2i, 2i+1) over the full head dim (FLUX / MMAudio layout, gotcha G2).
Audio token i sits at position i; visual frame j sits at position j * La / Lv, so a frame and
the audio token at the same instant get the same angle. Text gets no RoPE.

Shapes: L tokens, P = head_dim / 2 rotation pairs; rotations are [L, P, 2, 2] = [[cos, -sin], [sin, cos]].
"""
from __future__ import annotations

import torch

__all__ = ["rope_rotations", "apply_rope", "aligned_rotations", "per_clip_visual_rotations"]


def rope_rotations(length: int, head_dim: int, *, theta: float = 10000.0, scale: float = 1.0,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Positions 0..length-1 (times `scale` in frequency) -> rotation matrices [L, P, 2, 2] float32."""
    pos = torch.arange(length, dtype=torch.float32, device=device)                      # L
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    freqs = freqs * scale                                                                # P
    ang = pos[:, None] * freqs[None]                                                     # L P
    cos, sin = torch.cos(ang), torch.sin(ang)
    return torch.stack([cos, -sin, sin, cos], dim=-1).view(length, head_dim // 2, 2, 2)  # L P 2 2


def aligned_rotations(audio_len: int, visual_len: int, head_dim: int, *, theta: float = 10000.0,
                      device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (audio [La, P, 2, 2], visual [Lv, P, 2, 2]) with visual positions scaled by La / Lv."""
    audio = rope_rotations(audio_len, head_dim, theta=theta, device=device)
    visual = rope_rotations(visual_len, head_dim, theta=theta, scale=audio_len / max(visual_len, 1),
                            device=device)
    return audio, visual


def per_clip_visual_rotations(visual_len: int, audio_lens: list[int], visual_lens: list[int], head_dim: int, *,
                              theta: float = 10000.0, device=None) -> torch.Tensor:
    """Clips of a padded batch -> visual rotations [B, Lv, P, 2, 2], clip b's scaled by its own La_b / Lv_b.

    A clip alone gets La / Lv from its own lengths (`aligned_rotations`); padded to the longest
    clip it must keep that scale, or its frames would drift against its audio.
    """
    table: dict[tuple[int, int], torch.Tensor] = {}
    for la, lv in set(zip(audio_lens, visual_lens)):
        table[la, lv] = rope_rotations(visual_len, head_dim, theta=theta, scale=la / max(lv, 1), device=device)
    return torch.stack([table[k] for k in zip(audio_lens, visual_lens)])               # B Lv P 2 2


def apply_rope(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """x [B, H, L, hd] rotated by rot [L, hd/2, 2, 2] (or per clip [B, L, hd/2, 2, 2]) in float32,
    returned in x's dtype."""
    if rot.ndim == 5:
        rot = rot[:, None]                                           # B 1 L P 2 2
    xf = x.float().unflatten(-1, (-1, 1, 2))                        # B H L P 1 2
    out = rot[..., 0] * xf[..., 0] + rot[..., 1] * xf[..., 1]       # B H L P 2
    return out.flatten(-2).to(x.dtype)                              # B H L hd
