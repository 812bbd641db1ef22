"""Watermark Detect: AUDIO -> whether it carries the pack's inaudible watermark, as text."""
from __future__ import annotations

CATEGORY = "audio/Kling-Foley"


class KlingFoleyWatermarkDetect:
    DESCRIPTION = ("Checks audio for the inaudible watermark every Kling-Foley generation carries: says MARKED or "
                   "not marked, the score (a z-score; 'present' means under 1 false alarm in 1000 unmarked clips) "
                   "and the payload (model id and seed). Needs about 3 s of sound; survives AAC/MP3/Opus, "
                   "resampling, trimming and mixing. Connect the text to Preview Any to read it in the graph.")
    CATEGORY = CATEGORY
    FUNCTION = "detect"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("verdict",)
    OUTPUT_TOOLTIPS = ("One line per take: MARKED / not marked, score, payload.",)

    @classmethod
    def INPUT_TYPES(cls):
        from kf_core.watermark import DEFAULT_KEY
        return {"required": {
            "audio": ("AUDIO", {"tooltip": "Any core AUDIO (Load Audio, a video's sound, the Vocoder)."}),
            "key": ("STRING", {"default": DEFAULT_KEY,
                               "tooltip": "The watermark key: the pack's public one unless the audio was made "
                                          "with a private --watermark-key."}),
        }}

    def detect(self, audio, key):
        from kf_core.watermark import detect_watermark
        wave, sr = audio["waveform"], int(audio["sample_rate"])
        lines = [str(detect_watermark(take, sr, key=key)) for take in wave]             # take: C T
        text = "\n".join(lines if len(lines) == 1 else [f"take {i + 1}: {t}" for i, t in enumerate(lines)])
        return {"ui": {"text": [text]}, "result": (text,)}


NODES = {"KlingFoleyWatermarkDetect": ("Kling-Foley Watermark Detect", KlingFoleyWatermarkDetect)}
