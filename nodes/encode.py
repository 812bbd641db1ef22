"""Encoder nodes: prompt -> text condition; video -> visual + sync condition. Run once per input;
changing sampler settings downstream never re-runs them (ComfyUI caches their outputs)."""
from __future__ import annotations

from . import _comfy
from ._comfy import io
from ._types import CATEGORY, Clip, TextCond, TextEncoder, VideoCond, VisualEncoders


class KlingFoleyTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleyTextEncode", display_name="Kling-Foley Text Encode (T5)", category=CATEGORY,
            description="Encodes what the sound should be (and what it should not be) for the sampler.",
            inputs=[TextEncoder.Input("text_encoder", tooltip="From the Text Encoder Loader."),
                    io.String.Input("prompt", multiline=True, default="",
                                    tooltip="The sound you want, e.g. 'footsteps on gravel, distant birds'. "
                                            "Empty = let the video decide."),
                    io.String.Input("negative_prompt", multiline=True, default="",
                                    tooltip="Sounds to steer away from, e.g. 'music, speech'.")],
            outputs=[TextCond.Output(display_name="text_cond", tooltip="For the Flow Sampler.")])

    @classmethod
    def execute(cls, text_encoder, prompt, negative_prompt):
        from kf_core.pipeline import encode_text
        with _comfy.on_device(text_encoder) as encoder:
            return io.NodeOutput(encode_text(encoder, prompt, negative_prompt))


class KlingFoleyVideoEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleyVideoEncode", display_name="Kling-Foley MetaCLIP/Synchformer Encode",
            category=CATEGORY,
            description="MetaCLIP/Synchformer Encode: reads the video by timestamp (8 fps for what is seen, 25 fps "
                        "for when things happen) and encodes it for the sampler.",
            inputs=[VisualEncoders.Input("visual_encoders", tooltip="From the Visual Encoder Loader."),
                    Clip.Input("video", tooltip="From Kling-Foley Load Video."),
                    io.Float.Input("duration", default=0.0, min=0.0, max=3600.0, step=0.01,
                                   tooltip="Seconds of the video to score, from its start. 0 = all of it.")],
            outputs=[VideoCond.Output(display_name="video_cond",
                                      tooltip="For the Flow Sampler (and Mono2Stereo, so moving sources pan).")])

    @classmethod
    def execute(cls, visual_encoders, video, duration):
        from kf_core.pipeline import encode_video
        with _comfy.on_device(visual_encoders) as encoders:
            return io.NodeOutput(encode_video(encoders, video, duration=duration or None,
                                              check_cancel=_comfy.check_cancel))


NODES = [KlingFoleyTextEncode, KlingFoleyVideoEncode]
