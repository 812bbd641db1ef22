"""Conditioning encoders (paper §3.1): T5 text, CLIP image frames, Synchformer sync features.

- `T5TextEncoder.encode(prompts) -> (feats [B,Lt,Dt], mask [B,Lt] bool)`
- `ClipVisionEncoder.encode_frames(frames [N,3,H,W]) -> [N,Dv]` (L2-normalised)
- `ClipTextEncoder.encode(prompts) -> [B,77,W]` (MMAudio's per-token CLIP text features)
- `Synchformer.encode_video(frames [B,T,3,224,224] in [-1,1]) -> [B,S*8,Ds]`
Every encoder has `.tiny(seed)` (kf-tiny: widths 128, deterministic random weights) and loads
local files only. `open_clip` and `transformers` are imported when first needed.
"""
from .clip import CLIP_MODELS, ClipSpec, ClipTextEncoder, ClipVisionEncoder, build_clip
from .load import detect_kind, read_keys, require_kind
from .synchformer import SYNCHFORMER_PRESETS, Synchformer, SynchformerConfig, sync_frames_from_uint8
from .t5 import T5TextEncoder

__all__ = ["T5TextEncoder", "ClipVisionEncoder", "ClipTextEncoder", "ClipSpec", "CLIP_MODELS", "build_clip",
           "Synchformer", "SynchformerConfig", "SYNCHFORMER_PRESETS", "sync_frames_from_uint8",
           "detect_kind", "read_keys", "require_kind"]
