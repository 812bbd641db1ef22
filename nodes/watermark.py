"""Watermark Detect: AUDIO -> whether it carries the pack's inaudible watermark, as text."""
from __future__ import annotations

from ._comfy import io
from ._types import CATEGORY


class KlingFoleyWatermarkDetect(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        from kf_core.watermark import DEFAULT_KEY
        return io.Schema(
            node_id="KlingFoleyWatermarkDetect", display_name="Kling-Foley Watermark Detect", category=CATEGORY,
            description="Checks audio for the inaudible watermark every Kling-Foley generation carries: says MARKED "
                        "or not marked, the score (a z-score; 'present' means under 1 false alarm in 1000 unmarked "
                        "clips) and the payload (model id and seed). Needs about 3 s of sound; survives AAC/MP3/Opus, "
                        "resampling, trimming and mixing. The verdict shows on the node; its text output can go "
                        "to Preview Any.",
            is_output_node=True,
            inputs=[io.Audio.Input("audio", tooltip="Any core AUDIO (Load Audio, a video's sound, the Vocoder)."),
                    io.String.Input("key", default=DEFAULT_KEY,
                                    tooltip="The watermark key: the pack's public one unless the audio was made "
                                            "with a private --watermark-key.")],
            outputs=[io.String.Output(display_name="verdict",
                                      tooltip="One line per take: MARKED / not marked, score, payload.")])

    @classmethod
    def execute(cls, audio, key):
        from kf_core.watermark import detect_watermark
        wave, sr = audio["waveform"], int(audio["sample_rate"])
        if not key:
            raise ValueError("the watermark key is empty: type the key the audio was made with "
                             "(the pack's public key is 'kling-foley')")
        lines = [str(detect_watermark(take, sr, key=key)) for take in wave]             # take: C T
        text = "\n".join(lines if len(lines) == 1 else [f"take {i + 1}: {t}" for i, t in enumerate(lines)])
        return io.NodeOutput(text, ui={"text": [text]})


NODES = [KlingFoleyWatermarkDetect]
