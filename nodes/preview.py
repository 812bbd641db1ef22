"""Spectrogram preview: AUDIO -> IMAGE, so people can look at what they hear."""
from __future__ import annotations

from ._comfy import io
from ._types import CATEGORY


class KlingFoleySpectrogram(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleySpectrogram", display_name="Kling-Foley Spectrogram Preview", category=CATEGORY,
            description="Draws the audio as a mel spectrogram image (one panel per channel, left on top; time runs "
                        "left to right, pitch bottom to top). Connect to Preview Image.",
            inputs=[io.Audio.Input("audio", tooltip="Any core AUDIO (from the Vocoder, Load Audio, ...)."),
                    io.Float.Input("top_db", default=80.0, min=10.0, max=160.0, step=1.0,
                                   tooltip="Dynamic range shown: quieter than the loudest point by more than this "
                                           "is black.")],
            outputs=[io.Image.Output(display_name="image", tooltip="The spectrogram, [1, H, W, 3].")])

    @classmethod
    def execute(cls, audio, top_db):
        from kf_core.codec.spectrogram import spectrogram_image
        return io.NodeOutput(spectrogram_image(audio["waveform"], int(audio["sample_rate"]), top_db))


NODES = [KlingFoleySpectrogram]
