"""The pack's own socket types (one home for their names) and its menu category.

Core types (AUDIO, VIDEO, IMAGE, FLOAT, STRING) come from `io` directly; these are the objects
only Kling-Foley nodes make and take. Loader outputs are `_comfy.Loaded` handles.
"""
from __future__ import annotations

from ._comfy import io

CATEGORY = "audio/Kling-Foley"

Model = io.Custom("KLINGFOLEY_MODEL")                      # Loaded(DiT)
TextEncoder = io.Custom("KLINGFOLEY_TEXT_ENCODER")         # Loaded(TextEncoder)
VisualEncoders = io.Custom("KLINGFOLEY_VISUAL_ENCODERS")   # Loaded(VisualEncoders)
Codec = io.Custom("KLINGFOLEY_CODEC")                      # Loaded(AudioCodec)
Clip = io.Custom("KLINGFOLEY_VIDEO")                       # kf_core.pipeline.VideoClip
TextCond = io.Custom("KLINGFOLEY_TEXT_COND")               # kf_core.pipeline.TextCondition
VideoCond = io.Custom("KLINGFOLEY_VIDEO_COND")             # kf_core.pipeline.VideoCondition
Latent = io.Custom("KLINGFOLEY_LATENT")                    # kf_core.pipeline.Latents
Mel = io.Custom("KLINGFOLEY_MEL")                          # kf_core.pipeline.Mel
VHSVideoInfo = io.Custom("VHS_VIDEOINFO")                  # VideoHelperSuite's video info (a Mapping)
