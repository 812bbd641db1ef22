"""Encoder nodes: prompt -> text condition; video -> visual + sync condition. Run once per input;
changing sampler settings downstream never re-runs them (ComfyUI caches their outputs)."""
from __future__ import annotations

from . import _comfy

CATEGORY = "audio/Kling-Foley"


class KlingFoleyTextEncode:
    DESCRIPTION = "Encodes what the sound should be (and what it should not be) for the sampler."
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("KLINGFOLEY_TEXT_COND",)
    RETURN_NAMES = ("text_cond",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text_encoder": ("KLINGFOLEY_TEXT_ENCODER", {"tooltip": "From the Text Encoder Loader."}),
            "prompt": ("STRING", {"multiline": True, "default": "",
                                  "tooltip": "The sound you want, e.g. 'footsteps on gravel, distant birds'. "
                                             "Empty = let the video decide."}),
            "negative_prompt": ("STRING", {"multiline": True, "default": "",
                                           "tooltip": "Sounds to steer away from, e.g. 'music, speech'."}),
        }}

    def encode(self, text_encoder, prompt, negative_prompt):
        from kf_core.pipeline import encode_text
        with _comfy.on_device(text_encoder.encoder):
            return (encode_text(text_encoder, prompt, negative_prompt),)


class KlingFoleyVideoEncode:
    DESCRIPTION = ("MetaCLIP/Synchformer Encode: reads the video by timestamp (8 fps for what is seen, 25 fps "
                   "for when things happen) and encodes it for the sampler.")
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("KLINGFOLEY_VIDEO_COND",)
    RETURN_NAMES = ("video_cond",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "visual_encoders": ("KLINGFOLEY_VISUAL_ENCODERS", {"tooltip": "From the Visual Encoder Loader."}),
            "video": ("KLINGFOLEY_VIDEO", {"tooltip": "From Kling-Foley Load Video."}),
            "duration": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 3600.0, "step": 0.01,
                                   "tooltip": "Seconds of the video to score, from its start. 0 = all of it."}),
        }}

    def encode(self, visual_encoders, video, duration):
        from kf_core.pipeline import encode_video
        with _comfy.on_device(visual_encoders.clip, visual_encoders.sync):
            return (encode_video(visual_encoders, video, duration=duration or None,
                                 check_cancel=_comfy.check_cancel),)


NODES = {"KlingFoleyTextEncode": ("Kling-Foley Text Encode (T5)", KlingFoleyTextEncode),
         "KlingFoleyVideoEncode": ("Kling-Foley MetaCLIP/Synchformer Encode", KlingFoleyVideoEncode)}
