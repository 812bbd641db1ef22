"""Codec nodes: latent -> mono mel (Mel-VAE) -> stereo mel (Mono2Stereo) -> AUDIO (vocoder)."""
from __future__ import annotations

from . import _comfy
from ._comfy import io
from ._types import CATEGORY, Codec, Latent, Mel, VideoCond

LEVELS = ["limit", "normalize", "clip"]  # kf_core.codec.limiter.MODES, in widget order


def _codec_input():
    return Codec.Input("codec", tooltip="From the Codec Loader.")


def _mel_input():
    return Mel.Input("mel", tooltip="A mel spectrogram from Mel-VAE Decode or Mono2Stereo.")


class KlingFoleyDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleyDecode", display_name="Kling-Foley Mel-VAE Decode", category=CATEGORY,
            description="Mel-VAE Decode: audio latent -> mono mel spectrogram.",
            inputs=[_codec_input(), Latent.Input("latent", tooltip="From the Flow Sampler.")],
            outputs=[Mel.Output(display_name="mel", tooltip="Mono mel, for Mono2Stereo or the Vocoder.")])

    @classmethod
    def execute(cls, codec, latent):
        from kf_core.pipeline import decode_mel
        with _comfy.on_device(codec, "vae") as c:
            return io.NodeOutput(decode_mel(c, latent))


class KlingFoleyMono2Stereo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleyMono2Stereo", display_name="Kling-Foley Mono2Stereo", category=CATEGORY,
            description="Mono2Stereo: spreads the mono mel into left/right by predicted panning (energy-preserving); "
                        "with the video condition connected, on-screen positions steer the pan.",
            inputs=[_codec_input(), _mel_input(),
                    VideoCond.Input("video_cond", optional=True,
                                    tooltip="The video condition, so moving sources pan.")],
            outputs=[Mel.Output(display_name="mel", tooltip="Stereo mel, for the Vocoder.")])

    @classmethod
    def execute(cls, codec, mel, video_cond=None):
        from kf_core.pipeline import to_stereo
        with _comfy.on_device(codec, "mono2stereo") as c:
            return io.NodeOutput(to_stereo(c, mel, video_cond))


class KlingFoleyVocoder(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleyVocoder", display_name="Kling-Foley Vocoder", category=CATEGORY,
            description="Vocoder: mel -> waveform, as a core AUDIO (connect Preview Audio, Save Audio, Mux Audio or "
                        "any video combiner). Its length is exactly the video's duration; its peaks stay under "
                        "the ceiling. An inaudible watermark marks it as generated.",
            inputs=[_codec_input(), _mel_input(),
                    io.Combo.Input("level", options=LEVELS, default="limit", optional=True,
                                   tooltip="Keeps the sound inside full scale. limit: a peak limiter holds peaks at "
                                           "the ceiling and leaves quieter audio untouched; normalize: each take's "
                                           "peak is set to the ceiling (quiet takes get louder); clip: hard clip "
                                           "at 0 dBFS (distorts loud takes)."),
                    io.Float.Input("ceiling_db", default=-1.0, min=-24.0, max=0.0, step=0.1, optional=True,
                                   tooltip="Highest peak in dBFS for limit/normalize (-1 leaves room for AAC)."),
                    io.Boolean.Input("watermark", default=True, optional=True,
                                     tooltip="Embed the inaudible watermark that says this sound was generated "
                                             "(paper §8; check with Kling-Foley Watermark Detect). It goes in "
                                             "before the level, so peaks still stay under the ceiling. Off: the "
                                             "audio is exactly what the vocoder and level made.")],
            outputs=[io.Audio.Output(display_name="audio", tooltip="Core AUDIO: waveform [takes, 2, samples].")])

    @classmethod
    def execute(cls, codec, mel, level="limit", ceiling_db=-1.0, watermark=True):
        from kf_core.pipeline import Watermark, vocode
        # the Vocoder sees neither model nor seed: the payload says "made in ComfyUI"
        mark = Watermark(model="comfyui") if watermark else None
        with _comfy.on_device(codec, "vocoder") as c:
            audio = vocode(c, mel, level=level, ceiling_db=ceiling_db, watermark=mark)
        return io.NodeOutput({"waveform": audio.waveform.cpu(), "sample_rate": audio.sample_rate})


NODES = [KlingFoleyDecode, KlingFoleyMono2Stereo, KlingFoleyVocoder]
