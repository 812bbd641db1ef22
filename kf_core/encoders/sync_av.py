"""The whole Synchformer (Iashin et al. 2024) as a sync judge: video + audio in, their offset out.

MMAudio's `synchformer_state_dict.pth` (the AudioSet model `24-01-04T16-39-21`, which
av-benchmark loads strictly to compute DeSync) holds all of it; MMAudio itself keeps only the
visual branch. Keys and layout follow that file:
- `vfeat_extractor.*`: the visual encoder (`encoders.synchformer.Synchformer`), 8 tokens per
  16-frame 25 fps segment;
- `afeat_extractor.ast.*`: an AST (ViT-B over a 128-mel × 66-frame log spectrogram of each 0.64 s
  16 kHz segment; 16×16 patches, stride 10 → 12 freq × 6 time; CLS + distillation tokens, pre-norm
  layers, LayerNorm eps 1e-12), then `afeat_extractor.freq_attn_agg.*`: per time step one pre-norm
  encoder layer with its own CLS over the 12 frequency tokens → 6 tokens per segment;
- `vproj`, `aproj`, then `transformer.*`: [OFF, 14·8 visual, MOD, 14·6 audio] + a learned position
  table (198 tokens), 3 minGPT blocks (8 heads), LayerNorm, `off_head` → 21 logits for offsets
  −2.0 … +2.0 s in 0.2 s steps (audio late > 0).
`desync(frames, audio)` is av-benchmark's DeSync: the mean |argmax offset| over the first and the
last 4.8 s (14 segments each); a clip shorter than 4.8 s has none.

Shape legend: B batch, S segments, Tv = 8 visual and Ta = 6 audio tokens per segment, M mel
bins, F spectrogram frames, P patches, D width, K offset classes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..loading.state import CheckpointError, load_strict, read_state_dict
from .synchformer import (SpatialAggregation, Synchformer, SynchformerConfig, detect_synchformer_config,
                          remap_synchformer_keys, sync_frames_from_uint8)

__all__ = ["SyncNetConfig", "SyncNet", "sync_mel_segments", "is_full_synchformer"]

SR = 16000
SEGMENT, STEP = 10240, 5120  # samples: 0.64 s segments every 0.32 s (16 and 8 frames at 25 fps)
N_FFT, WIN, HOP, N_MELS = 1024, 400, 160, 128
SPEC_FRAMES = 66
MEL_MEAN, MEL_STD = -4.2677393, 4.5689974  # AST's AudioSet statistics (Synchformer divides by 2·std)


@dataclass(frozen=True)
class SyncNetConfig:
    """Sizes of the audio branch and the sync head (the released model's by default)."""

    width: int = 768
    ast_depth: int = 12
    ast_heads: int = 12
    ast_hidden: int = 3072
    patch: int = 16
    stride: int = 10
    head_depth: int = 3
    head_heads: int = 8
    segments: int = 14  # per window: 4.8 s
    classes: int = 21
    max_offset_s: float = 2.0
    visual: SynchformerConfig = SynchformerConfig()  # the visual branch (MMAudio's by default)

    def __post_init__(self) -> None:
        if min(self.width, self.ast_depth, self.ast_heads, self.head_depth, self.head_heads, self.segments) <= 0:
            raise ValueError(f"SyncNetConfig needs positive sizes, got {self}")
        if self.width % self.ast_heads or self.width % self.head_heads:
            raise ValueError(f"SyncNetConfig: width {self.width} must divide by ast_heads {self.ast_heads} "
                             f"and head_heads {self.head_heads}")
        if self.classes < 3:
            raise ValueError(f"SyncNetConfig needs >= 3 offset classes, got {self.classes}")

    @property
    def grid(self) -> tuple[int, int]:
        """(frequency, time) patches of one segment's spectrogram: (12, 6)."""
        return ((N_MELS - self.patch) // self.stride + 1, (SPEC_FRAMES - self.patch) // self.stride + 1)

    @property
    def tokens(self) -> int:
        """Sequence length of the sync head: OFF + S·8 visual + MOD + S·6 audio = 198."""
        return 2 + self.segments * (self.visual.time_steps + self.grid[1])

    @property
    def offsets(self) -> torch.Tensor:
        """The class grid in seconds [K]: −2.0 … +2.0."""
        return torch.linspace(-self.max_offset_s, self.max_offset_s, self.classes, dtype=torch.float64)


# ---------------------------------------------------------------- audio front end
def _htk_filterbank() -> torch.Tensor:
    """Triangular HTK-mel filters [M, N_FFT//2 + 1], unnormalised (torchaudio's MelSpectrogram default)."""
    def mel(hz):
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    pts = 700.0 * (10 ** (np.linspace(mel(0.0), mel(SR / 2), N_MELS + 2) / 2595.0) - 1.0)    # M+2
    freqs = np.linspace(0, SR / 2, N_FFT // 2 + 1)                                           # K
    slopes = pts[None, :] - freqs[:, None]                                                   # K M+2
    down = -slopes[:, :-2] / np.diff(pts)[:-1]
    up = slopes[:, 2:] / np.diff(pts)[1:]
    return torch.from_numpy(np.maximum(0.0, np.minimum(down, up)).T.astype(np.float32))      # M K


def sync_mel_segments(audio: torch.Tensor) -> torch.Tensor:
    """16 kHz audio [B, N] -> Synchformer's normalised log-mel segments [B, S, F=66, M=128]."""
    if audio.ndim != 2 or audio.shape[1] < SEGMENT:
        raise ValueError(f"sync_mel_segments needs 16 kHz audio [B, N >= {SEGMENT}], got {tuple(audio.shape)}")
    segs = audio.float().unfold(1, SEGMENT, STEP)                                       # B S N'
    b, s, _ = segs.shape
    window = torch.hann_window(WIN, device=audio.device)
    spec = torch.stft(segs.reshape(b * s, SEGMENT), N_FFT, HOP, WIN, window, center=True, pad_mode="reflect",
                      return_complex=True).abs().pow(2)                                 # BS K F
    mel = torch.log(_htk_filterbank().to(audio.device) @ spec + 1e-6)                   # BS M F
    mel = F.pad(mel, (0, max(0, SPEC_FRAMES - mel.shape[-1])))[..., :SPEC_FRAMES]       # zeros after the log
    mel = (mel - MEL_MEAN) / (2 * MEL_STD)
    return rearrange(mel, "(b s) m f -> b s f m", b=b)                                  # B S F M


# ---------------------------------------------------------------- audio branch (AST)
class _Linear(nn.Module):
    """A `dense` linear under its own name (the HF layout: attention.output.dense, ...)."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)


class _ASTSelfAttention(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))


class _ASTAttention(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.attention = _ASTSelfAttention(width)
        self.output = _Linear(width, width)


class _ASTLayer(nn.Module):
    """Pre-norm ViT layer in Hugging Face's AST key layout."""

    def __init__(self, cfg: SyncNetConfig) -> None:
        super().__init__()
        self.heads = cfg.ast_heads
        self.attention = _ASTAttention(cfg.width)
        self.intermediate = _Linear(cfg.width, cfg.ast_hidden)
        self.output = _Linear(cfg.ast_hidden, cfg.width)
        self.layernorm_before = nn.LayerNorm(cfg.width, eps=1e-12)
        self.layernorm_after = nn.LayerNorm(cfg.width, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sa, h = self.attention.attention, self.layernorm_before(x)
        q, k, v = (rearrange(lin(h), "b n (h d) -> b h n d", h=self.heads) for lin in (sa.query, sa.key, sa.value))
        att = rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)")     # B N D
        x = x + self.attention.output.dense(att)
        return x + self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x))))


class _ASTEmbeddings(nn.Module):
    def __init__(self, cfg: SyncNetConfig) -> None:
        super().__init__()
        f, t = cfg.grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.distillation_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.position_embeddings = nn.Parameter(torch.zeros(1, 2 + f * t, cfg.width))
        self.patch_embeddings = nn.Module()
        self.patch_embeddings.projection = nn.Conv2d(1, cfg.width, cfg.patch, stride=cfg.stride)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """spec [B, F, M] -> tokens [B, 2 + P, D], patches frequency-major (f, t)."""
        patches = self.patch_embeddings.projection(spec.transpose(1, 2)[:, None])            # B D f t
        x = rearrange(patches, "b d f t -> b (f t) d")
        aux = torch.cat([self.cls_token, self.distillation_token], 1).expand(x.shape[0], -1, -1)
        return torch.cat([aux, x], 1) + self.position_embeddings                             # B 2+P D


class _AST(nn.Module):
    def __init__(self, cfg: SyncNetConfig) -> None:
        super().__init__()
        self.embeddings = _ASTEmbeddings(cfg)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(_ASTLayer(cfg) for _ in range(cfg.ast_depth))
        self.layernorm = nn.LayerNorm(cfg.width, eps=1e-12)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(spec)
        for layer in self.encoder.layer:
            x = layer(x)                                                                     # B 2+P D
        return self.layernorm(x)


class AudioBranch(nn.Module):
    """Log-mel segments [B, S, F, M] -> audio tokens [B, S, Ta, D]."""

    def __init__(self, cfg: SyncNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.ast = _AST(cfg)
        agg = replace(cfg.visual, width=cfg.width, heads=cfg.ast_heads, mlp_ratio=cfg.ast_hidden / cfg.width)
        self.freq_attn_agg = SpatialAggregation(agg)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        b, s = spec.shape[:2]
        f, t = self.cfg.grid
        x = self.ast(rearrange(spec, "b s f m -> (b s) f m").to(self.ast.layernorm.weight.dtype))[:, 2:]
        x = rearrange(x, "bs (f t) d -> (bs t) f d", f=f, t=t)                               # BS*Ta f D
        return rearrange(self.freq_attn_agg(x), "(b s t) d -> b s t d", b=b, s=s)           # B S Ta D


# ---------------------------------------------------------------- sync head
class _HeadAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.key, self.query, self.value, self.proj = (nn.Linear(width, width) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (rearrange(lin(x), "b n (h d) -> b h n d", h=self.heads) for lin in (self.query, self.key, self.value))
        return self.proj(rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)"))


class _HeadBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = _HeadAttention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class SyncHead(nn.Module):
    """Visual [B, S·Tv, D] + audio [B, S·Ta, D] tokens -> offset logits [B, K]."""

    def __init__(self, cfg: SyncNetConfig) -> None:
        super().__init__()
        self.vis_in_lnorm, self.aud_in_lnorm = nn.LayerNorm(cfg.width), nn.LayerNorm(cfg.width)
        self.OFF_tok = nn.Parameter(torch.zeros(1, 1, cfg.width))  # noqa: N815 (the file's name)
        self.MOD_tok = nn.Parameter(torch.zeros(1, 1, cfg.width))  # noqa: N815
        self.pos_emb_cfg = nn.Module()
        self.pos_emb_cfg.pos_emb = nn.Parameter(torch.zeros(1, cfg.tokens, cfg.width))
        self.blocks = nn.Sequential(*(_HeadBlock(cfg.width, cfg.head_heads) for _ in range(cfg.head_depth)))
        self.ln_f = nn.LayerNorm(cfg.width)
        self.off_head = nn.Linear(cfg.width, cfg.classes)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        b = v.shape[0]
        x = torch.cat([self.OFF_tok.expand(b, -1, -1), self.vis_in_lnorm(v),
                       self.MOD_tok.expand(b, -1, -1), self.aud_in_lnorm(a)], 1)             # B 198 D
        x = self.ln_f(self.blocks(x + self.pos_emb_cfg.pos_emb))
        return self.off_head(x[:, 0])                                                        # B K


# ---------------------------------------------------------------- the whole model
def is_full_synchformer(keys) -> bool:
    """True when state-dict keys hold the audio branch and the sync head too (not only the visual)."""
    keys = set(keys)
    return any(k.startswith("afeat_extractor.") for k in keys) and "transformer.off_head.weight" in keys


class SyncNet(nn.Module):
    """The whole Synchformer: visual branch, audio branch, projections and sync head."""

    def __init__(self, cfg: SyncNetConfig = SyncNetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.vfeat_extractor = Synchformer(cfg.visual)
        self.afeat_extractor = AudioBranch(cfg)
        self.vproj, self.aproj = nn.Linear(cfg.width, cfg.width), nn.Linear(cfg.width, cfg.width)
        self.transformer = SyncHead(cfg)

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], *, device=None, dtype=None,
                        what: str = "Synchformer checkpoint") -> SyncNet:
        """The released file's state dict (or one saved from this class) -> model (strict)."""
        if not is_full_synchformer(sd):
            raise CheckpointError(
                f"{what} holds only a Synchformer visual encoder (or something else), not the whole Synchformer "
                "with its audio branch and sync head that DeSync needs; give MMAudio's synchformer_state_dict.pth "
                "(907 MB), which has all of it")
        vis = {f"vfeat_extractor.{k}": v for k, v in remap_synchformer_keys(
            {k: v for k, v in sd.items() if k.startswith("vfeat_extractor.")}).items()}
        sd = {**{k: v for k, v in sd.items() if not k.startswith("vfeat_extractor.")}, **vis}
        with torch.device("meta"):
            model = cls(_detect(sd))
        load_strict(model, sd, what=what)
        return model.to(device=device or "cpu", dtype=dtype).eval()

    @classmethod
    def from_file(cls, path, *, device=None, dtype=None) -> SyncNet:
        """synchformer_state_dict.pth (or .safetensors) -> model; a file without the audio branch
        raises CheckpointError saying so."""
        return cls.from_state_dict(read_state_dict(path), device=device, dtype=dtype, what=str(path))

    def visual_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """Sync frames [B, S, 16, 3, H, W] in [-1, 1] -> projected visual tokens [B, S·Tv, D]."""
        return rearrange(self.vproj(self.vfeat_extractor.encode_segments(frames)), "b s t d -> b (s t) d")

    def audio_tokens(self, spec: torch.Tensor) -> torch.Tensor:
        """Mel segments [B, S, F, M] -> projected audio tokens [B, S·Ta, D]."""
        return rearrange(self.aproj(self.afeat_extractor(spec)), "b s t d -> b (s t) d")

    def logits(self, frames: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        """One window (S = cfg.segments): frames [B, S, 16, 3, H, W] + mel [B, S, F, M] -> logits [B, K]."""
        return self.transformer(self.visual_tokens(frames), self.audio_tokens(spec))

    @torch.inference_mode()
    def desync(self, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """uint8 frames [T, 3, H, W] at 25 fps (H = W = the visual branch's image size) + 16 kHz audio
        [B, N] of the same clip -> DeSync [B] (s): mean |predicted offset| over the first and the last
        4.8 s; NaN when the clip is shorter. The video is encoded once for all B takes."""
        cfg, seg = self.cfg, self.vfeat_extractor.cfg
        n_aud = (audio.shape[-1] - SEGMENT) // STEP + 1 if audio.shape[-1] >= SEGMENT else 0
        n = min(seg.segments(frames.shape[0]), n_aud)
        if n < cfg.segments:
            return torch.full((audio.shape[0],), math.nan)
        p = next(self.parameters())
        spec = sync_mel_segments(audio.to(p.device))                                             # B S F M
        span = seg.segment_frames + (cfg.segments - 1) * seg.segment_stride                     # 120 frames
        out = []
        for start in sorted({0, n - cfg.segments}):  # both streams' segments start every 0.32 s
            first = start * seg.segment_stride
            clip = sync_frames_from_uint8(frames[first:first + span]).to(device=p.device, dtype=p.dtype)
            clip = self.vfeat_extractor.frontend(clip[None])[0]                                 # 120 3 H W
            vis = clip.unfold(0, seg.segment_frames, seg.segment_stride).permute(0, 4, 1, 2, 3)  # S 16 3 H W
            v = self.visual_tokens(vis[None]).expand(audio.shape[0], -1, -1)                     # B S·Tv D
            logits = self.transformer(v, self.audio_tokens(spec[:, start:start + cfg.segments]))  # B K
            out.append(cfg.offsets.to(logits.device)[logits.argmax(-1)].abs())                  # B
        if len(out) == 1:  # exactly 4.8 s: the first and the last window are the same
            out.append(out[0])
        return torch.stack(out, 1).mean(1).float().cpu()


def _detect(sd: dict[str, torch.Tensor]) -> SyncNetConfig:
    """State dict -> SyncNetConfig from tensor shapes (heads: width / 64 for the AST, as released)."""
    try:
        width = sd["afeat_extractor.ast.embeddings.cls_token"].shape[-1]
        ast_depth = len({k.split(".")[4] for k in sd if k.startswith("afeat_extractor.ast.encoder.layer.")})
        head_depth = len({k.split(".")[2] for k in sd if k.startswith("transformer.blocks.")})
        hidden = sd["afeat_extractor.ast.encoder.layer.0.intermediate.dense.weight"].shape[0]
        classes = sd["transformer.off_head.weight"].shape[0]
        patch = sd["afeat_extractor.ast.embeddings.patch_embeddings.projection.weight"].shape[-1]
        tokens = sd["transformer.pos_emb_cfg.pos_emb"].shape[1]
    except KeyError as err:
        raise CheckpointError(f"not a whole Synchformer: missing {err}") from None
    visual = detect_synchformer_config({k[len("vfeat_extractor."):]: v for k, v in sd.items()
                                        if k.startswith("vfeat_extractor.")}, what="its visual branch")
    base = SyncNetConfig(visual=visual)
    cfg = replace(base, width=width, ast_depth=ast_depth, ast_heads=max(1, width // 64), ast_hidden=hidden,
                  head_depth=head_depth, head_heads=max(1, width // 96), classes=classes, patch=patch)
    per_segment = visual.time_steps + cfg.grid[1]
    return replace(cfg, segments=(tokens - 2) // per_segment)
