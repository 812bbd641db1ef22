"""Flow Sampler: conditions -> audio latents. Only this node re-runs when steps/sampler/cfg change."""
from __future__ import annotations

from . import _comfy
from ._comfy import io
from ._types import CATEGORY, Latent, Model, TextCond, VideoCond


def _choices():
    from kf_core.sampling import SAMPLERS, SCHEDULES
    return list(SAMPLERS), list(SCHEDULES)


class KlingFoleySampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        samplers, schedules = _choices()
        return io.Schema(
            node_id="KlingFoleySampler", display_name="Kling-Foley Flow Sampler", category=CATEGORY,
            description="Flow Sampler: generates the audio latent from noise, guided by the video and text "
                        "conditions. The duration is the video's unless no video is connected.",
            inputs=[
                Model.Input("model", tooltip="From the Model Loader."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed; the same seed gives the same sound on the same device."),
                io.Int.Input("steps", default=20, min=0, max=1000,
                             tooltip="Sampling steps (the paper: 20 Euler steps). 0 = the loaded model's default."),
                io.Float.Input("cfg", default=4.5, min=0.0, max=30.0, step=0.1,
                               tooltip="Guidance: how strongly to follow the conditions (1 = no guidance). "
                                       "0 = the loaded model's default."),
                io.Combo.Input("sampler", options=samplers, default="euler", tooltip="ODE/SDE solver for the flow."),
                io.Combo.Input("schedule", options=schedules, default="uniform",
                               tooltip="How the steps are spaced in time."),
                io.Float.Input("duration", default=0.0, min=0.0, max=3600.0, step=0.01,
                               tooltip="Seconds of audio. 0 = the video's duration (8 s without a video). With a "
                                       "video connected it must match the video."),
                io.Float.Input("shift", default=0.0, min=0.0, max=100.0, step=0.01,
                               tooltip="Time shift of the sd3 schedule (> 1 spends more steps near noise). 0 = its "
                                       "default; other schedules ignore it."),
                io.Int.Input("batch_size", default=1, min=1, max=64,
                             tooltip="Takes generated at once (different noise, same conditions)."),
                TextCond.Input("text_cond", optional=True, tooltip="From Text Encode. None = no prompt."),
                VideoCond.Input("video_cond", optional=True,
                                tooltip="From MetaCLIP/Synchformer Encode. None = text-to-audio."),
                io.Float.Input("window", default=0.0, min=0.0, max=600.0, step=0.5, optional=True,
                               tooltip="Longer clips are generated in overlapping windows of this many seconds, "
                                       "crossfaded. 0 = the longest the model takes at once."),
            ],
            outputs=[Latent.Output(display_name="latent", tooltip="For Mel-VAE Decode.")])

    @classmethod
    def execute(cls, model, seed, steps, cfg, sampler, schedule, duration, shift, batch_size,
                text_cond=None, video_cond=None, window=0.0):
        from kf_core.pipeline import sample_latents
        total = steps or model.value.sampling_defaults.steps  # 0 = the model's own default (None)
        with _comfy.on_device(model) as dit:
            lat = sample_latents(dit, text=text_cond, video=video_cond, duration=duration or None, steps=steps or None,
                                 sampler=sampler, schedule=schedule, cfg=cfg or None, shift=shift or None, seed=seed,
                                 batch_size=batch_size, callback=_comfy.progress(total), window=window or None,
                                 check_cancel=_comfy.check_cancel)
        return io.NodeOutput(lat)


NODES = [KlingFoleySampler]
