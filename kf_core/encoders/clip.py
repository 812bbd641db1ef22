"""CLIP encoders through `open_clip`: per-frame image embeddings and MMAudio's per-token text.

- `ClipVisionEncoder`: frames -> one L2-normalised embedding per frame (paper §3.1: MetaCLIP
  ViT-bigG-14-quickgelu, 1280-d; MMAudio: DFN5B ViT-H-14-378-quickgelu, 1024-d).
- `ClipTextEncoder`: prompts -> MMAudio's per-token text features (no projection, no pooling).
Models are built from open_clip's config for the name (or our tiny config) on `meta` and loaded
strictly from a local file; nothing is ever downloaded. A full CLIP checkpoint feeds both
encoders: each keeps its tower's keys, the other tower and `logit_scale` / `logit_bias` (shape
() or (1,)) are dropped.

Shape legend: N frames, B prompts, Lt text tokens (77), D embedding dim, W text width.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..loading.state import CheckpointError, load_strict, read_state_dict
from .seeded import seeded_init_

__all__ = ["ClipSpec", "CLIP_MODELS", "clip_config", "build_clip", "split_clip_state", "detect_clip_name",
           "ClipVisionEncoder", "ClipTextEncoder"]

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # MetaCLIP and DFN5B use the OpenAI statistics
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_DROPPED = ("logit_scale", "logit_bias")


@dataclass(frozen=True)
class ClipSpec:
    """How frames reach a CLIP model: squash-resize to `resize_to`, keep the top-left `image_size`."""

    image_size: int
    resize_to: int | None = None  # None: resize straight to image_size
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD

    def __post_init__(self) -> None:
        if self.image_size <= 0 or (self.resize_to is not None and self.resize_to < self.image_size):
            raise ValueError(f"ClipSpec: need image_size > 0 and resize_to >= image_size, got "
                             f"{self.image_size} / {self.resize_to}")


CLIP_MODELS: dict[str, ClipSpec] = {
    "ViT-bigG-14-quickgelu": ClipSpec(image_size=224),                 # MetaCLIP (the paper's)
    # MMAudio resizes frames to 384 and feeds them to the 378-px model; the stride-14 patch conv
    # never reads the last 6 rows/columns, so cropping the top-left 378 is the same computation.
    "ViT-H-14-378-quickgelu": ClipSpec(image_size=378, resize_to=384),  # DFN5B (MMAudio's)
    "kf-tiny-clip": ClipSpec(image_size=64),
}
_TINY_CONFIG = dict(
    embed_dim=128, quick_gelu=True,
    vision_cfg=dict(image_size=64, layers=2, width=128, head_width=64, patch_size=8),
    text_cfg=dict(context_length=77, vocab_size=49408, width=128, heads=2, layers=2),
)


def clip_config(name: str | dict) -> dict:
    """Model name (or a constructor-argument dict) -> open_clip CLIP constructor arguments (a copy)."""
    if isinstance(name, dict):
        return copy.deepcopy(name)
    if name == "kf-tiny-clip":
        return copy.deepcopy(_TINY_CONFIG)
    import open_clip
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ValueError(f"unknown CLIP model {name!r}; use one of {', '.join(CLIP_MODELS)} "
                         "or another name from open_clip.list_models()")
    unsupported = sorted(set(cfg) - {"embed_dim", "quick_gelu", "vision_cfg", "text_cfg", "init_logit_bias"})
    if unsupported or cfg.get("custom_text"):
        raise ValueError(f"CLIP model {name!r} needs open_clip features kf_core does not build "
                         f"({', '.join(unsupported) or 'custom_text'}); use a plain CLIP model")
    return copy.deepcopy(cfg)


def build_clip(name: str | dict, *, device=None, dtype=None) -> nn.Module:
    """Model name or config dict -> an open_clip CLIP with untrained weights (device "meta" to load into)."""
    import open_clip
    with torch.device(device or "cpu"):
        model = open_clip.CLIP(**clip_config(name))
    return model.to(dtype=dtype) if dtype is not None else model


def split_clip_state(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """CLIP state dict -> (vision keys without `visual.`, text keys); logit scale/bias dropped."""
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    vision = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
    text = {k: v for k, v in sd.items() if not k.startswith("visual.") and k not in _DROPPED}
    return vision, text


def detect_clip_name(vision: dict[str, torch.Tensor]) -> str | None:
    """Vision-tower state dict -> the name in CLIP_MODELS whose shapes it has, else None."""
    if "conv1.weight" not in vision or "positional_embedding" not in vision:
        return None
    depth = len({k.split(".")[2] for k in vision if k.startswith("transformer.resblocks.")})
    for name in CLIP_MODELS:
        v = clip_config(name)["vision_cfg"]
        grid = v["image_size"] // v["patch_size"]
        if (tuple(vision["conv1.weight"].shape) == (v["width"], 3, v["patch_size"], v["patch_size"])
                and vision["positional_embedding"].shape[0] == grid * grid + 1 and depth == v["layers"]):
            return name
    return None


def _read_clip_file(path: str | Path) -> dict[str, torch.Tensor]:
    from .load import require_kind
    sd = read_state_dict(path)
    require_kind(sd, "clip", path)
    return sd


class ClipVisionEncoder(nn.Module):
    """Frames [N, 3, H, W] -> L2-normalised image embeddings [N, D] (open_clip's encode_image)."""

    def __init__(self, visual: nn.Module, spec: ClipSpec, name: str = "") -> None:
        super().__init__()
        self.visual, self.spec, self.name = visual.eval(), spec, name

    @property
    def dim(self) -> int:
        return self.visual.output_dim

    @classmethod
    def build(cls, name: str, *, seed: int = 0, device=None, dtype=None) -> ClipVisionEncoder:
        """Name -> encoder with seeded random weights; device "meta" leaves them unallocated (to load)."""
        spec = CLIP_MODELS.get(name) or ClipSpec(image_size=clip_config(name)["vision_cfg"]["image_size"])
        visual = build_clip(name, device="meta").visual  # the text tower is never allocated
        if str(device) != "meta":
            visual = seeded_init_(visual.to_empty(device="cpu"), seed).to(device=device or "cpu")
        enc = cls(visual, spec, name)
        return enc.to(dtype=dtype) if dtype is not None else enc

    @classmethod
    def tiny(cls, seed: int = 0, *, device=None, dtype=None) -> ClipVisionEncoder:
        """kf-tiny's visual encoder: ViT width 128, 64 px, embed 128, seeded random weights."""
        return cls.build("kf-tiny-clip", seed=seed, device=device, dtype=dtype)

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], name: str | None = None, *, device=None, dtype=None,
                        what: str = "CLIP checkpoint") -> ClipVisionEncoder:
        """Full CLIP or `visual.*`-only state dict -> encoder (the name is detected when not given)."""
        vision, _ = split_clip_state(sd)
        if not vision:
            raise CheckpointError(f"{what} has no `visual.*` keys: it holds no CLIP image tower")
        name = name or detect_clip_name(vision)
        if name is None:
            raise CheckpointError(f"{what}: the image tower matches none of {', '.join(CLIP_MODELS)}; "
                                  "pass the open_clip model name explicitly")
        enc = cls.build(name, device="meta", dtype=dtype)
        load_strict(enc.visual, vision, what=what)
        return enc.to(device=device or "cpu")

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None, *, device=None, dtype=None) -> ClipVisionEncoder:
        """Local weight file -> encoder. Other kinds of file raise CheckpointError."""
        return cls.from_state_dict(_read_clip_file(path), name, device=device, dtype=dtype, what=str(path))

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [N, 3, H, W] uint8 or float in [0, 1] -> normalised model input [N, 3, S, S]."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"encode_frames expects [N, 3, H, W] frames, got {tuple(frames.shape)}")
        x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
        size, crop = self.spec.resize_to or self.spec.image_size, self.spec.image_size
        if x.shape[-2:] != (size, size):  # squash, as MMAudio's Resize((s, s))
            x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
            x = x.clamp(0.0, 1.0)  # bicubic overshoots
        x = x[..., :crop, :crop]
        mean = x.new_tensor(self.spec.mean).view(1, 3, 1, 1)
        std = x.new_tensor(self.spec.std).view(1, 3, 1, 1)
        return (x - mean) / std                                                  # N 3 S S

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
        """Frames [N, 3, H, W] (uint8 or float in [0, 1]) -> [N, D] float32, unit L2 norm.

        At most `batch_size` frames are resized and encoded at a time, bounding memory.
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        p = next(self.visual.parameters())
        outs = []
        for chunk in frames.split(batch_size):
            x = self.preprocess(chunk.to(p.device)).to(p.dtype)                 # n 3 S S
            outs.append(F.normalize(self.visual(x).float(), dim=-1))            # n D
        return torch.cat(outs) if outs else frames.new_zeros(0, self.dim, dtype=torch.float32)

    forward = encode_frames


class ClipTextEncoder(nn.Module):
    """Prompts -> per-token CLIP text features [B, 77, W], L2-normalised per token (MMAudio's)."""

    def __init__(self, name: str | dict, *, device="meta") -> None:
        super().__init__()
        from open_clip.tokenizer import SimpleTokenizer
        model = build_clip(name, device="meta")
        self.name = name if isinstance(name, str) else "custom"
        self.token_embedding, self.positional_embedding = model.token_embedding, model.positional_embedding
        self.transformer, self.ln_final = model.transformer, model.ln_final
        self.text_projection = model.text_projection  # kept so full checkpoints load strictly; unused
        # The BPE vocabulary ships inside the open_clip package: no download.
        self.tokenizer = SimpleTokenizer(context_length=model.context_length)
        self._empty: tuple | None = None  # (weights key, CLIP('') features): see empty()
        if str(device) != "meta":
            self.to_empty(device=device)

    @property
    def dim(self) -> int:
        return self.token_embedding.weight.shape[1]

    @classmethod
    def tiny(cls, name: str | dict = "kf-tiny-clip", seed: int = 0, *, device=None, dtype=None) -> ClipTextEncoder:
        """Text tower of `name` with seeded random weights (for tests and tiny models)."""
        enc = cls(name, device="cpu")
        seeded_init_(enc, seed)
        return enc.to(device=device or "cpu", dtype=dtype).eval()

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], name: str | dict, *, device=None, dtype=None,
                        what: str = "CLIP checkpoint") -> ClipTextEncoder:
        """Full CLIP state dict -> text encoder of model `name` (strict on the text keys)."""
        _, text = split_clip_state(sd)
        enc = cls(name)
        if dtype is not None:
            enc = enc.to(dtype=dtype)
        load_strict(enc, text, what=what)
        return enc.to(device=device or "cpu").eval()

    @classmethod
    def from_file(cls, path: str | Path, name: str, *, device=None, dtype=None) -> ClipTextEncoder:
        return cls.from_state_dict(_read_clip_file(path), name, device=device, dtype=dtype, what=str(path))

    @property
    def max_tokens(self) -> int:
        """Tokens a prompt may have (start and end markers included); longer prompts are cut."""
        return self.tokenizer.context_length

    def count_tokens(self, prompt: str) -> int:
        """A prompt -> how many tokens it has (with the start and end markers), before any cut."""
        return len(self.tokenizer.encode(prompt)) + 2

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> [B, 77, W] float32: tokens + positions -> causal transformer -> ln_final -> L2 norm."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError("ClipTextEncoder.encode takes a list of strings")
        w = self.token_embedding.weight
        ids = self.tokenizer(list(prompts)).to(w.device)                         # B Lt
        n = ids.shape[1]
        causal = torch.full((n, n), float("-inf"), device=w.device, dtype=w.dtype).triu_(1)
        x = self.token_embedding(ids) + self.positional_embedding.to(w.dtype)   # B Lt W
        x = self.transformer(x, attn_mask=causal)                                # B Lt W
        x = self.ln_final(x)                                                     # B Lt W
        return F.normalize(x.float(), dim=-1)                                    # B Lt W

    def empty(self) -> torch.Tensor:
        """CLIP('') features [1, 77, W] float32, computed once per weights/device/dtype.

        MMAudio's inference encodes '' for an empty prompt and for the unconditional branch (its
        negative prompt defaults to ''), rather than using the network's stored `empty_string_feat`.
        """
        w = self.token_embedding.weight
        key = (w.device, w.dtype, w.data_ptr(), w._version)
        if self._empty is None or self._empty[0] != key:
            self._empty = (key, self.encode([""]))
        return self._empty[1]

    forward = encode
