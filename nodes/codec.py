"""Codec nodes: latent -> mono mel (Mel-VAE) -> stereo mel (Mono2Stereo) -> AUDIO (vocoder)."""
from __future__ import annotations

from . import _comfy

CATEGORY = "audio/Kling-Foley"
_CODEC = ("KLINGFOLEY_CODEC", {"tooltip": "From the Codec Loader."})
_MEL = ("KLINGFOLEY_MEL", {"tooltip": "A mel spectrogram from Mel-VAE Decode or Mono2Stereo."})


class KlingFoleyDecode:
    DESCRIPTION = "Mel-VAE Decode: audio latent -> mono mel spectrogram."
    CATEGORY = CATEGORY
    FUNCTION = "decode"
    RETURN_TYPES = ("KLINGFOLEY_MEL",)
    RETURN_NAMES = ("mel",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"codec": _CODEC,
                             "latent": ("KLINGFOLEY_LATENT", {"tooltip": "From the Flow Sampler."})}}

    def decode(self, codec, latent):
        from kf_core.pipeline import decode_mel
        with _comfy.on_device(codec.vae):
            return (decode_mel(codec, latent),)


class KlingFoleyMono2Stereo:
    DESCRIPTION = ("Mono2Stereo: spreads the mono mel into left/right by predicted panning (energy-preserving); "
                   "with the video condition connected, on-screen positions steer the pan.")
    CATEGORY = CATEGORY
    FUNCTION = "stereo"
    RETURN_TYPES = ("KLINGFOLEY_MEL",)
    RETURN_NAMES = ("mel",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"codec": _CODEC, "mel": _MEL},
                "optional": {"video_cond": ("KLINGFOLEY_VIDEO_COND",
                                            {"tooltip": "The video condition, so moving sources pan."})}}

    def stereo(self, codec, mel, video_cond=None):
        from kf_core.pipeline import to_stereo
        with _comfy.on_device(codec.mono2stereo):
            return (to_stereo(codec, mel, video_cond),)


class KlingFoleyVocoder:
    DESCRIPTION = ("Vocoder: mel -> waveform, as a core AUDIO (connect Preview Audio, Save Audio, Mux Audio or "
                   "any video combiner). Its length is exactly the video's duration. An inaudible watermark "
                   "marks it as generated (check with Kling-Foley Watermark Detect).")
    CATEGORY = CATEGORY
    FUNCTION = "vocode"
    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"codec": _CODEC, "mel": _MEL,
                             "watermark": ("BOOLEAN", {"default": True, "tooltip": (
                                 "Embed the inaudible watermark that says this sound was generated (paper §8). "
                                 "Off: the audio is exactly what the vocoder made.")})}}

    def vocode(self, codec, mel, watermark=True):
        from kf_core.pipeline import vocode, watermark_audio
        with _comfy.on_device(codec.vocoder):
            audio = vocode(codec, mel)
        if watermark:  # the Vocoder sees neither model nor seed: the payload says "made in ComfyUI"
            audio = watermark_audio(audio, model="comfyui")
        return ({"waveform": audio.waveform.cpu(), "sample_rate": audio.sample_rate},)


NODES = {"KlingFoleyDecode": ("Kling-Foley Mel-VAE Decode", KlingFoleyDecode),
         "KlingFoleyMono2Stereo": ("Kling-Foley Mono2Stereo", KlingFoleyMono2Stereo),
         "KlingFoleyVocoder": ("Kling-Foley Vocoder", KlingFoleyVocoder)}
