"""Spectrogram preview: AUDIO -> IMAGE, so people can look at what they hear."""
from __future__ import annotations

CATEGORY = "audio/Kling-Foley"


class KlingFoleySpectrogram:
    DESCRIPTION = ("Draws the audio as a mel spectrogram image (one panel per channel, left on top; time runs "
                   "left to right, pitch bottom to top). Connect to Preview Image.")
    CATEGORY = CATEGORY
    FUNCTION = "draw"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "audio": ("AUDIO", {"tooltip": "Any core AUDIO (from the Vocoder, Load Audio, ...)."}),
            "top_db": ("FLOAT", {"default": 80.0, "min": 10.0, "max": 160.0, "step": 1.0,
                                 "tooltip": "Dynamic range shown: quieter than the loudest point by more "
                                            "than this is black."}),
        }}

    def draw(self, audio, top_db):
        from kf_core.codec.spectrogram import spectrogram_image
        return (spectrogram_image(audio["waveform"], int(audio["sample_rate"]), top_db),)


NODES = {"KlingFoleySpectrogram": ("Kling-Foley Spectrogram Preview", KlingFoleySpectrogram)}
