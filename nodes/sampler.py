"""Flow Sampler: conditions -> audio latents. Only this node re-runs when steps/sampler/cfg change."""
from __future__ import annotations

from . import _comfy

CATEGORY = "audio/Kling-Foley"


def _choices():
    from kf_core.sampling import SAMPLERS, SCHEDULES
    return list(SAMPLERS), list(SCHEDULES)


class KlingFoleySampler:
    DESCRIPTION = ("Flow Sampler: generates the audio latent from noise, guided by the video and text "
                   "conditions. The duration is the video's unless no video is connected.")
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("KLINGFOLEY_LATENT",)
    RETURN_NAMES = ("latent",)

    @classmethod
    def INPUT_TYPES(cls):
        samplers, schedules = _choices()
        return {
            "required": {
                "model": ("KLINGFOLEY_MODEL", {"tooltip": "From the Model Loader."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                                 "tooltip": "Noise seed; the same seed gives the same sound on the same device."}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 1000,
                                  "tooltip": "Sampling steps (the paper: 20 Euler steps)."}),
                "cfg": ("FLOAT", {"default": 4.5, "min": 0.0, "max": 30.0, "step": 0.1,
                                  "tooltip": "Guidance: how strongly to follow the conditions (1 = no guidance)."}),
                "sampler": (samplers, {"default": "euler", "tooltip": "ODE/SDE solver for the flow."}),
                "schedule": (schedules, {"default": "uniform", "tooltip": "How the steps are spaced in time."}),
                "duration": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 3600.0, "step": 0.01,
                                       "tooltip": "Seconds of audio. 0 = the video's duration (8 s without a "
                                                  "video). With a video connected it must match the video."}),
                "shift": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.01,
                                    "tooltip": "Time shift of the sd3 schedule (> 1 spends more steps near "
                                               "noise). 0 = its default; other schedules ignore it."}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 64,
                                       "tooltip": "Takes generated at once (different noise, same conditions)."}),
            },
            "optional": {
                "text_cond": ("KLINGFOLEY_TEXT_COND", {"tooltip": "From Text Encode. None = no prompt."}),
                "video_cond": ("KLINGFOLEY_VIDEO_COND", {"tooltip": "From MetaCLIP/Synchformer Encode. None = "
                                                                    "text-to-audio."}),
                "window": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 600.0, "step": 0.5,
                                     "tooltip": "Longer clips are generated in overlapping windows of this many "
                                                "seconds, crossfaded. 0 = the longest the model takes at once."}),
            },
        }

    def sample(self, model, seed, steps, cfg, sampler, schedule, duration, shift, batch_size,
               text_cond=None, video_cond=None, window=0.0):
        from kf_core.pipeline import sample_latents
        with _comfy.on_device(model.model):
            lat = sample_latents(model, text=text_cond, video=video_cond, duration=duration or None, steps=steps,
                                 sampler=sampler, schedule=schedule, cfg=cfg, shift=shift or None, seed=seed,
                                 batch_size=batch_size, callback=_comfy.progress(steps), window=window or None,
                                 check_cancel=_comfy.check_cancel)
        return (lat,)


NODES = {"KlingFoleySampler": ("Kling-Foley Flow Sampler", KlingFoleySampler)}
