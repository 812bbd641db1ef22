"""Audio codec: mel front end, Mel-VAEs, Mono2Stereo, vocoders and the `AudioCodec` bundle.

Imports are lazy so `import kf_core.codec` stays cheap; see docs/ENGINE.md "codec".
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "MelSpectrogram": "mel", "mel_filterbank": "mel", "log_compress": "mel", "log_expand": "mel",
    "GriffinLim": "griffinlim",
    "Mono2Stereo": "mono2stereo", "Mono2StereoConfig": "mono2stereo", "stereo_targets": "mono2stereo",
    "pan_targets": "mono2stereo", "load_mono2stereo": "mono2stereo",
    "AudioCodec": "bundle", "load_audio_codec": "bundle",
    "MelVAE": "mel_vae", "MelVAEConfig": "mel_vae", "MEL_VAE_PRESETS": "mel_vae",
    "MMAudioVAE": "mmaudio_vae", "BigVGAN": "bigvgan", "BigVGANConfig": "bigvgan",
    "Vocos": "vocos", "VocosConfig": "vocos", "VOCOS_PRESETS": "vocos", "STFTFraming": "mel",
    "load_vae": "load", "load_vocoder": "load",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
