"""Transformer blocks: adaLN modulation, one stream of a block, joint attention, the final layer.

Shapes: B batch, L tokens of one stream, S tokens of all streams together, D width, H heads,
hd head dim (64), C latent channels. Conditioning c is [B, 1, D] (global) or [B, L, D] (per token).

Padding: a stream's mask [B, L] (True = real token) or None. Attention hides masked keys; every
time conv (kernel > 1) reads its input with the padding zeroed (`zero_padding`), so a clip in a
padded batch computes exactly what it computes alone. None takes the unmasked path unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .embeddings import ChannelLastConv1d, SwiGLU, zero_padding
from .rope import apply_rope

__all__ = ["ModulationOut", "Modulation", "StreamBlock", "JointBlock", "FinalLayer", "joint_attention",
           "modulate", "layer_norm"]


@dataclass
class ModulationOut:
    shift: torch.Tensor
    scale: torch.Tensor
    gate: torch.Tensor | None = None


def modulate(x: torch.Tensor, m: ModulationOut) -> torch.Tensor:
    return x * (1 + m.scale) + m.shift


def layer_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Affine-free LayerNorm computed in float32 (eps 1e-5, gotcha G8)."""
    return F.layer_norm(x.float(), x.shape[-1:], eps=eps).to(x.dtype)


def rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-head RMSNorm in float32 with eps = machine epsilon of x's dtype (MMAudio's eps=None, G9)."""
    eps = torch.finfo(x.dtype).eps
    return F.rms_norm(x.float(), x.shape[-1:], weight.float(), eps=eps).to(x.dtype)


class Modulation(nn.Module):
    """c [B, L|1, D] -> one or two ModulationOut (attention, then MLP): Linear(SiLU(c)) chunked
    in the order shift, scale, gate (gotcha G10)."""

    def __init__(self, dim: int, double: bool, gated: bool = True, device=None, dtype=None):
        super().__init__()
        self.double, self.gated = double, gated
        self.chunks = (3 if gated else 2) * (2 if double else 1)
        self.linear = nn.Linear(dim, self.chunks * dim, device=device, dtype=dtype)

    def forward(self, c: torch.Tensor) -> tuple[ModulationOut, ModulationOut | None]:
        parts = self.linear(F.silu(c)).chunk(self.chunks, dim=-1)       # chunks x [B L|1 D]
        per = 3 if self.gated else 2
        first = ModulationOut(*parts[:per])
        second = ModulationOut(*parts[per:2 * per]) if self.double else None
        return first, second


class StreamBlock(nn.Module):
    """One stream of an MM-DiT block (also the whole of an audio-only block).

    `pre_attention` gives q, k, v [B, H, L, hd]; attention happens outside (joint over streams);
    `post_attention` applies the gated residuals. A `pre_only` stream only supplies keys/values.
    """

    def __init__(self, dim: int, heads: int, mlp_hidden: int, kernel: int, *, pre_only: bool = False,
                 device=None, dtype=None):
        super().__init__()
        f = dict(device=device, dtype=dtype)
        self.heads, self.pre_only, self.kernel = heads, pre_only, kernel
        self.mod = Modulation(dim, double=not pre_only, gated=not pre_only, **f)
        self.qkv = nn.Linear(dim, 3 * dim, **f)                          # rows: [q; k; v], heads (h hd)
        self.q_norm = nn.RMSNorm(dim // heads, **f)
        self.k_norm = nn.RMSNorm(dim // heads, **f)
        if not pre_only:
            self.out = nn.Linear(dim, dim, **f) if kernel == 1 else ChannelLastConv1d(dim, dim, kernel, **f)
            self.mlp = SwiGLU(dim, mlp_hidden, kernel, **f)

    def pre_attention(self, x: torch.Tensor, c: torch.Tensor, rot: torch.Tensor | None):
        """x [B, L, D], c [B, L|1, D] -> (q, k, v [B, H, L, hd], modulation for post_attention)."""
        m_attn, m_mlp = self.mod(c)
        h = modulate(layer_norm(x), m_attn)                              # B L D
        q, k, v = self.qkv(h).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)  # 3 x B H L hd
        q, k = rms_norm(q, self.q_norm.weight), rms_norm(k, self.k_norm.weight)
        if rot is not None:
            q, k = apply_rope(q, rot), apply_rope(k, rot)
        return q, k, v, (m_attn, m_mlp)

    def post_attention(self, x: torch.Tensor, o: torch.Tensor, mods,
                       mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, L, D], attention output o [B, L, D], mask [B, L] or None -> [B, L, D]."""
        m_attn, m_mlp = mods
        if mask is not None and self.kernel > 1:
            o = zero_padding(o, mask)
        x = x + self.out(o) * m_attn.gate                                # B L D
        return x + self.mlp(modulate(layer_norm(x), m_mlp), mask) * m_mlp.gate  # B L D

    def forward(self, x: torch.Tensor, c: torch.Tensor, rot: torch.Tensor | None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Audio-only (single) block: self-attention over x [B, L, D] -> [B, L, D]; mask [B, L]
        hides padded keys and keeps them out of the convs."""
        q, k, v, mods = self.pre_attention(x, c, rot)
        return self.post_attention(x, joint_attention([q], [k], [v], mask)[0], mods, mask)


def joint_attention(qs: list[torch.Tensor], ks: list[torch.Tensor], vs: list[torch.Tensor],
                    key_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
    """One attention over streams concatenated on the sequence axis, split back.

    qs/ks/vs: per stream [B, H, L_i, hd]; key_mask [B, S] bool (True = attend) or None.
    -> per stream [B, L_i, H*hd].
    """
    lengths = [q.shape[2] for q in qs]
    q, k, v = torch.cat(qs, dim=2), torch.cat(ks, dim=2), torch.cat(vs, dim=2)   # B H S hd
    mask = None if key_mask is None else key_mask[:, None, None, :]              # B 1 1 S
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)                  # B H S hd
    o = o.transpose(1, 2).flatten(2)                                             # B S D
    return list(o.split(lengths, dim=1))


class JointBlock(nn.Module):
    """MM-DiT block over [audio, visual, text] (SD3 style), one attention for all three streams.

    Audio is modulated by the per-token condition (global + align feature), visual and text by
    the global condition. In a `pre_only` block visual/text only supply keys and values.
    """

    def __init__(self, dim: int, heads: int, mlp_hidden: int, *, audio_kernel: int, visual_kernel: int,
                 text_kernel: int, pre_only: bool, device=None, dtype=None):
        super().__init__()
        f = dict(device=device, dtype=dtype)
        self.pre_only = pre_only
        self.audio = StreamBlock(dim, heads, mlp_hidden, audio_kernel, **f)
        self.visual = StreamBlock(dim, heads, mlp_hidden, visual_kernel, pre_only=pre_only, **f)
        self.text = StreamBlock(dim, heads, mlp_hidden, text_kernel, pre_only=pre_only, **f)

    def forward(self, a: torch.Tensor, v: torch.Tensor, t: torch.Tensor, c_audio: torch.Tensor,
                c_global: torch.Tensor, rot_a: torch.Tensor, rot_v: torch.Tensor,
                key_mask: torch.Tensor | None, masks: tuple = (None, None, None)):
        """a [B, La, D], v [B, Lv, D], t [B, Lt, D] -> the same three (v, t unchanged if pre_only).

        key_mask [B, La+Lv+Lt] or None; masks: the (audio, visual, text) masks for the convs."""
        qa, ka, va, ma = self.audio.pre_attention(a, c_audio, rot_a)
        qv, kv, vv, mv = self.visual.pre_attention(v, c_global, rot_v)
        qt, kt, vt, mt = self.text.pre_attention(t, c_global, None)
        oa, ov, ot = joint_attention([qa, qv, qt], [ka, kv, kt], [va, vv, vt], key_mask)
        am, vm, tm = masks
        a = self.audio.post_attention(a, oa, ma, am)                     # B La D
        if not self.pre_only:
            v = self.visual.post_attention(v, ov, mv, vm)                # B Lv D
            t = self.text.post_attention(t, ot, mt, tm)                  # B Lt D
        return a, v, t


class FinalLayer(nn.Module):
    """[B, La, D] + condition [B, La|1, D] -> velocity [B, La, C]: adaLN (shift, scale) + conv."""

    def __init__(self, dim: int, out_dim: int, kernel: int, device=None, dtype=None):
        super().__init__()
        self.mod = Modulation(dim, double=False, gated=False, device=device, dtype=dtype)
        self.conv = ChannelLastConv1d(dim, out_dim, kernel, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        m, _ = self.mod(c)
        h = modulate(layer_norm(x), m)                                   # B La D
        if mask is not None and self.conv.kernel_size[0] > 1:
            h = zero_padding(h, mask)
        return self.conv(h)                                              # B La C
