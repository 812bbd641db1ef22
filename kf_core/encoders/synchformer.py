"""Synchformer visual encoder: 16-frame 224 px segments -> 8 sync tokens each.

A MotionFormer-style ViT with divided space-time attention (Iashin et al., Synchformer; the
`vfeat_extractor` of MMAudio's Synchformer). Per segment: tubelet Conv3d embedding (2x16x16) ->
CLS + 8x14x14 tokens with separate spatial / temporal position tables -> blocks of
time attention, space attention, MLP -> final LayerNorm -> per time step a pre-norm encoder
layer with its own CLS over the 196 patches -> 8 tokens.

Shape legend: B batch, S segments, F frames per segment (16), T time steps (8),
P patches per frame (196), N = T*P tokens, D width, H heads, d head dim (64), Ls sync tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from ..loading.state import CheckpointError, load_strict, read_state_dict
from .seeded import seeded_init_

__all__ = ["SynchformerConfig", "SYNCHFORMER_PRESETS", "Synchformer", "sync_frames_from_uint8", "motion_frames",
           "remap_synchformer_keys"]

RELEASED_PREFIX = "vfeat_extractor."
FRONTENDS = ("rgb", "motion")
RESIZES = ("crop", "squash")
FRONTEND_KEY = "frontend_code"  # [2] buffer (frontend, resize) indices, present only when not (rgb, crop)
UNUSED_KEYS = ("patch_embed.proj.weight", "patch_embed.proj.bias")  # 2D patch embed, never run


@dataclass(frozen=True)
class SynchformerConfig:
    """Divided space-time ViT over `segment_frames`-frame segments cut with `segment_stride`."""

    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    image_size: int = 224
    patch_size: int = 16
    tubelet: int = 2
    segment_frames: int = 16
    segment_stride: int = 8
    eps: float = 1e-6
    # What the tubelet embedding sees (`motion_frames`): "rgb" (Synchformer's own input, MMAudio) or
    # "motion" (luma, its first and second temporal differences: kf-tiny, so that events and not
    # colours carry the signal), and how frames are fitted to the square input: "crop" (shorter
    # side + centre crop, MMAudio) or "squash" (the whole frame, so an object at the edge of a
    # 21:9 frame is still seen and its x is the frame's x).
    frontend: str = "rgb"
    resize: str = "crop"

    def __post_init__(self) -> None:
        if self.frontend not in FRONTENDS or self.resize not in RESIZES:
            raise ValueError(f"SynchformerConfig: frontend must be one of {FRONTENDS} (got {self.frontend!r}) "
                             f"and resize one of {RESIZES} (got {self.resize!r})")
        if self.width <= 0 or self.depth <= 0 or self.heads <= 0 or self.width % self.heads:
            raise ValueError(f"SynchformerConfig: width ({self.width}) must be a positive multiple of heads "
                             f"({self.heads}) and depth ({self.depth}) positive")
        if self.image_size % self.patch_size:
            raise ValueError(f"SynchformerConfig: image_size {self.image_size} is not a multiple of "
                             f"patch_size {self.patch_size}")
        if self.segment_frames % self.tubelet:
            raise ValueError(f"SynchformerConfig: segment_frames {self.segment_frames} is not a multiple "
                             f"of tubelet {self.tubelet}")
        if not 0 < self.segment_stride <= self.segment_frames:
            raise ValueError(f"SynchformerConfig: segment_stride {self.segment_stride} must be in "
                             f"1..segment_frames ({self.segment_frames})")

    @property
    def time_steps(self) -> int:
        """Tokens per segment on the time axis (= output tokens per segment)."""
        return self.segment_frames // self.tubelet

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def patches(self) -> int:
        return self.grid ** 2

    @property
    def hidden(self) -> int:
        return int(self.width * self.mlp_ratio)

    def segments(self, frames: int) -> int:
        """Number of whole segments in `frames` frames (0 if fewer than one segment)."""
        if frames < self.segment_frames:
            return 0
        return (frames - self.segment_frames) // self.segment_stride + 1


SYNCHFORMER_PRESETS: dict[str, SynchformerConfig] = {
    "synchformer": SynchformerConfig(),                                # MMAudio's, 122 M params
    "fixture-small": SynchformerConfig(width=128, depth=2, heads=2),   # the parity fixture
    "kf-tiny": SynchformerConfig(width=128, depth=2, heads=2),
    # kf-tiny v2: 64 px squashed frames, motion input, 8-px patches (8x8 patches x 8 time steps)
    "kf-tiny-motion": SynchformerConfig(width=128, depth=2, heads=2, image_size=64, patch_size=8,
                                        frontend="motion", resize="squash"),
}


def motion_frames(frames: torch.Tensor) -> torch.Tensor:
    """Frames [B, T, 3, H, W] in [-1, 1] (25 fps, whole stream) -> [B, T, 3, H, W] motion channels.

    Channel 0 is the frame's luma, blurred by a 3x3 binomial filter (sensor noise and compression
    blocks then differ less from frame to frame: on held-out looks the onset probe's AUC rose from
    0.641 to 0.669, `eval sync-probe` with 1000 clips x 600 steps, seed 0), standardised over the
    frame (so a change of light, contrast or colour of the whole picture does not change it), channel 1 its change since the previous frame,
    channel 2 the change of that change (a contact shows as a sudden change of velocity). Each
    difference has its mean over the frame removed, so flicker of the whole frame cancels. The first
    frame's differences are zero. Differences run over the whole stream, before segmenting, so a
    segment's first frames see the frames before it.
    """
    y = 0.299 * frames[:, :, 0] + 0.587 * frames[:, :, 1] + 0.114 * frames[:, :, 2]      # B T H W
    y = _binomial_blur(y)
    mu = y.mean(dim=(-2, -1), keepdim=True)
    sd = y.std(dim=(-2, -1), keepdim=True)
    y = (y - mu) / (sd + 0.02)                                                           # B T H W
    d1 = torch.diff(y, dim=1, prepend=y[:, :1])
    d1 = d1 - d1.mean(dim=(-2, -1), keepdim=True)                                        # B T H W
    d2 = torch.diff(d1, dim=1, prepend=d1[:, :1])
    return torch.stack([0.5 * y, d1, 0.5 * d2], dim=2)                                   # B T 3 H W


def _binomial_blur(y: torch.Tensor) -> torch.Tensor:
    """[..., H, W] -> the same blurred by [1, 2, 1]/4 along each axis (edges replicated)."""
    h, w = y.shape[-2:]
    x = F.pad(y.reshape(-1, 1, h, w), (1, 1, 1, 1), mode="replicate")
    x = 0.25 * x[..., :-2] + 0.5 * x[..., 1:-1] + 0.25 * x[..., 2:]                   # along W
    x = 0.25 * x[..., :-2, :] + 0.5 * x[..., 1:-1, :] + 0.25 * x[..., 2:, :]          # along H
    return x.reshape(y.shape)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention; q is already scaled (the reference scales q before the product)."""
    return F.scaled_dot_product_attention(q, k, v, scale=1.0)


class DividedAttention(nn.Module):
    """Attention within groups (per time step or per patch) plus the CLS token.

    Patch queries attend to their group and the CLS key/value; the CLS query attends to every token.
    """

    def __init__(self, width: int, heads: int, over: str) -> None:
        super().__init__()
        if over not in ("time", "space"):
            raise ValueError(f"DividedAttention over 'time' or 'space', not {over!r}")
        self.heads, self.over = heads, over
        self.qkv = nn.Linear(width, 3 * width)  # [q; k; v] blocks, heads split as (h d)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, time_steps: int) -> torch.Tensor:
        b = x.shape[0]
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        q = q * q.shape[-1] ** -0.5                                             # B H 1+N d
        cls_out = _attend(q[:, :, :1], k, v)                                     # B H 1 d
        group = ("b h (t p) d -> (b h p) t d" if self.over == "time"
                 else "b h (t p) d -> (b h t) p d")
        qg, kg, vg = (rearrange(z[:, :, 1:], group, t=time_steps) for z in (q, k, v))  # G n d
        reps = kg.shape[0] // (b * self.heads)
        cls_k = repeat(k[:, :, :1], "b h one d -> (b h r) one d", r=reps)       # G 1 d
        cls_v = repeat(v[:, :, :1], "b h one d -> (b h r) one d", r=reps)
        out = _attend(qg, torch.cat([cls_k, kg], 1), torch.cat([cls_v, vg], 1))  # G n d
        ungroup = ("(b h p) t d -> b h (t p) d" if self.over == "time"
                   else "(b h t) p d -> b h (t p) d")
        out = rearrange(out, ungroup, b=b, h=self.heads, t=time_steps)          # B H N d
        out = rearrange(torch.cat([cls_out, out], 2), "b h n d -> b n (h d)")  # B 1+N D
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU, as the reference


class DividedBlock(nn.Module):
    """Time attention (norm3) -> space attention (norm1) -> MLP (norm2), each pre-norm + residual."""

    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.eps)
        self.attn = DividedAttention(cfg.width, cfg.heads, "space")
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.eps)
        self.mlp = Mlp(cfg.width, cfg.hidden)
        self.norm3 = nn.LayerNorm(cfg.width, eps=cfg.eps)
        self.timeattn = DividedAttention(cfg.width, cfg.heads, "time")

    def forward(self, x: torch.Tensor, time_steps: int) -> torch.Tensor:
        x = x + self.timeattn(self.norm3(x), time_steps)  # B 1+N D
        x = x + self.attn(self.norm1(x), time_steps)      # B 1+N D
        return x + self.mlp(self.norm2(x))                # B 1+N D


class PackedSelfAttention(nn.Module):
    """Multi-head self-attention with a packed [q; k; v] input projection (torch MHA key names)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = rearrange(qkv, "b n (three h d) -> three b h n d", three=3, h=self.heads)
        out = F.scaled_dot_product_attention(q, k, v)                            # B H n d
        return self.out_proj(rearrange(out, "b h n d -> b n (h d)"))


class SpatialAggregation(nn.Module):
    """Per time step: [CLS, P patches] through one pre-norm encoder layer; the CLS output is kept."""

    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.self_attn = PackedSelfAttention(cfg.width, cfg.heads)
        self.linear1 = nn.Linear(cfg.width, cfg.hidden)
        self.linear2 = nn.Linear(cfg.hidden, cfg.width)
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.eps)
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [G, P, D] (G = segments x time steps) -> [G, D]."""
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], 1)  # G 1+P D
        x = x + self.self_attn(self.norm1(x))
        x = x + self.linear2(F.gelu(self.linear1(self.norm2(x))))
        return x[:, 0]                                                                 # G D


class TubeletEmbed(nn.Module):
    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        k = (cfg.tubelet, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(3, cfg.width, kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 3, F, H, W] -> [B, T*P, D], time-major (t, h, w)."""
        return rearrange(self.proj(x), "b d t h w -> b (t h w) d")


def sync_frames_from_uint8(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames [..., 3, 224, 224] -> float in [-1, 1]: u8 / 255, then mean 0.5 / std 0.5.

    This is MMAudio's real preprocessing (the fixture uses (u8 - 128) / 128 instead).
    """
    if frames.dtype != torch.uint8:
        raise TypeError(f"sync_frames_from_uint8 expects uint8 frames, got {frames.dtype}")
    return (frames.float() / 255.0 - 0.5) / 0.5


def remap_synchformer_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A released Synchformer file or our own file -> our key names.

    Released files hold the whole Synchformer (audio branch etc.): only `vfeat_extractor.*` is
    kept. The unused 2D patch embedding is dropped. Everything else passes through unchanged so
    that a strict load reports it.
    """
    if any(k.startswith(RELEASED_PREFIX) for k in sd):
        sd = {k[len(RELEASED_PREFIX):]: v for k, v in sd.items() if k.startswith(RELEASED_PREFIX)}
    return {k: v for k, v in sd.items() if k not in UNUSED_KEYS}


class Synchformer(nn.Module):
    """Synchformer visual encoder (frames in [-1, 1] -> 8 tokens per 16-frame segment)."""

    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed_3d = TubeletEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.patches, cfg.width))   # spatial table
        self.temp_embed = nn.Parameter(torch.zeros(1, cfg.time_steps, cfg.width))   # temporal table
        self.blocks = nn.ModuleList(DividedBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width, eps=cfg.eps)
        self.spatial_attn_agg = SpatialAggregation(cfg)
        if (cfg.frontend, cfg.resize) != ("rgb", "crop"):  # travels with the weights; MMAudio's files have none
            code = torch.tensor([FRONTENDS.index(cfg.frontend), RESIZES.index(cfg.resize)], dtype=torch.float32)
            self.register_buffer(FRONTEND_KEY, code)

    # ---- construction and loading -------------------------------------------------------------
    @classmethod
    def build(cls, preset_or_cfg: str | SynchformerConfig = "synchformer", *, device=None,
              dtype=None) -> Synchformer:
        """Preset name or config -> a model with untrained weights (use device="meta" before loading)."""
        cfg = SYNCHFORMER_PRESETS[preset_or_cfg] if isinstance(preset_or_cfg, str) else preset_or_cfg
        with torch.device(device or "cpu"):
            model = cls(cfg)
        return model.to(dtype=dtype) if dtype is not None else model

    @classmethod
    def tiny(cls, seed: int = 0, *, device=None, dtype=None) -> Synchformer:
        """The kf-tiny encoder: width 128, 2 heads, depth 2, deterministic random weights."""
        model = seeded_init_(cls(SYNCHFORMER_PRESETS["kf-tiny"]), seed)
        return model.to(device=device, dtype=dtype).eval()

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], *, device=None, dtype=None,
                        what: str = "Synchformer checkpoint") -> Synchformer:
        """State dict (released `vfeat_extractor.*` or ours) -> model; the config is read from shapes."""
        sd = remap_synchformer_keys(sd)
        model = cls.build(detect_synchformer_config(sd, what=what), device="meta", dtype=dtype)
        load_strict(model, sd, what=what)
        return model.to(device=device or "cpu").eval()

    @classmethod
    def from_file(cls, path, *, device=None, dtype=None) -> Synchformer:
        """Weight file (.safetensors / .pth) -> model. Other kinds of file raise CheckpointError."""
        from .load import require_kind
        sd = read_state_dict(path)
        require_kind(sd, "synchformer", path)
        return cls.from_state_dict(sd, device=device, dtype=dtype, what=str(path))

    # ---- forward ------------------------------------------------------------------------------
    def encode_segments(self, x: torch.Tensor) -> torch.Tensor:
        """Segments x [B, S, F, 3, H, W] in [-1, 1] -> [B, S, T, D]."""
        cfg = self.cfg
        if x.ndim != 6 or tuple(x.shape[2:]) != (cfg.segment_frames, 3, cfg.image_size, cfg.image_size):
            raise ValueError(f"Synchformer.encode_segments expects [B, S, {cfg.segment_frames}, 3, "
                             f"{cfg.image_size}, {cfg.image_size}], got {tuple(x.shape)}")
        b, s = x.shape[:2]
        x = rearrange(x, "b s f c h w -> (b s) c f h w").to(self.pos_embed.dtype)
        tokens = self.patch_embed_3d(x)                                                # BS N D
        pos = self.pos_embed[:, 1:].repeat(1, cfg.time_steps, 1)                       # 1 N D
        pos = pos + self.temp_embed.repeat_interleave(cfg.patches, dim=1)              # 1 N D
        cls = self.cls_token + self.pos_embed[:, :1]                                   # 1 1 D
        h = torch.cat([cls.expand(tokens.shape[0], -1, -1), tokens + pos], 1)          # BS 1+N D
        for block in self.blocks:
            h = block(h, cfg.time_steps)                                               # BS 1+N D
        h = self.norm(h[:, 1:])                                                        # BS N D
        h = rearrange(h, "bs (t p) d -> (bs t) p d", t=cfg.time_steps)                 # BS*T P D
        out = self.spatial_attn_agg(h)                                                 # BS*T D
        return rearrange(out, "(b s t) d -> b s t d", b=b, s=s)                        # B S T D

    def frontend(self, frames: torch.Tensor) -> torch.Tensor:
        """Whole-stream frames [B, T, 3, H, W] in [-1, 1] -> what `encode_segments` reads (config.frontend)."""
        return motion_frames(frames) if self.cfg.frontend == "motion" else frames

    def encode_video(self, frames: torch.Tensor, *, batch_size: int = 8) -> torch.Tensor:
        """Frames [B, T, 3, H, W] in [-1, 1] (25 fps) -> [B, S*8, D], S = (T - 16) // 8 + 1.

        Segments of 16 frames with stride 8 are encoded at most `batch_size` at a time, after the
        configured frontend (`motion_frames` for motion-input models) ran over the whole stream.
        """
        cfg = self.cfg
        if frames.ndim != 5:
            raise ValueError(f"Synchformer.encode_video expects [B, T, 3, H, W], got {tuple(frames.shape)}")
        n = cfg.segments(frames.shape[1])
        if n == 0:
            raise ValueError(f"Synchformer needs at least {cfg.segment_frames} frames "
                             f"({cfg.segment_frames / 25:.2f} s at 25 fps), got {frames.shape[1]}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        frames = self.frontend(frames)
        b = frames.shape[0]
        per = max(1, batch_size // b)                                                  # segments per call
        segs = frames.unfold(1, cfg.segment_frames, cfg.segment_stride)                # B S 3 H W F (a view)
        outs = [self.encode_segments(segs[:, i:i + per].permute(0, 1, 5, 2, 3, 4))     # B s T D
                for i in range(0, n, per)]
        return rearrange(torch.cat(outs, 1), "b s t d -> b (s t) d")                   # B Ls D

    forward = encode_video


def detect_synchformer_config(sd: dict[str, torch.Tensor], *, what: str = "checkpoint") -> SynchformerConfig:
    """Our-named state dict -> SynchformerConfig inferred from tensor shapes (heads = width / 64)."""
    need = ("patch_embed_3d.proj.weight", "pos_embed", "temp_embed")
    absent = [k for k in need if k not in sd]
    if absent:
        raise CheckpointError(f"{what} is not a Synchformer visual encoder: no {', '.join(absent)}")
    width, _, tubelet, patch, _ = sd["patch_embed_3d.proj.weight"].shape
    grid = math.isqrt(sd["pos_embed"].shape[1] - 1)
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    if depth == 0:
        raise CheckpointError(f"{what} has no `blocks.*` keys; it is not a Synchformer visual encoder")
    time_steps = sd["temp_embed"].shape[1]
    hidden = sd["blocks.0.mlp.fc1.weight"].shape[0] if "blocks.0.mlp.fc1.weight" in sd else 4 * width
    base = SynchformerConfig()
    frontend, resize = "rgb", "crop"
    if FRONTEND_KEY in sd:
        code = [int(round(float(v))) for v in sd[FRONTEND_KEY].flatten()]
        if len(code) != 2 or not (0 <= code[0] < len(FRONTENDS) and 0 <= code[1] < len(RESIZES)):
            raise CheckpointError(f"{what}: unknown Synchformer frontend code {code}; the file was written by "
                                  "a newer kf_core, or is damaged")
        frontend, resize = FRONTENDS[code[0]], RESIZES[code[1]]
    return replace(base, width=width, depth=depth, heads=max(width // 64, 1), mlp_ratio=hidden / width,
                   image_size=grid * patch, patch_size=patch, tubelet=tubelet,
                   segment_frames=time_steps * tubelet, frontend=frontend, resize=resize)
