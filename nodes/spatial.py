"""Weight-free helpers for any audio: stereo that follows the video, and the best of a batch of takes.

Both work on core AUDIO from any node (this pack's Vocoder, MMAudio's, a loaded file) and the
Kling-Foley video handle (Load Video takes a file, a core VIDEO or IMAGE frames + fps).
Best Take ranks a batch: set the Flow Sampler's batch_size to N for N takes of one generation.
"""
from __future__ import annotations

import contextlib

from . import _comfy
from ._comfy import io
from ._types import CATEGORY, Clip

SyncJudge = io.Custom("KLINGFOLEY_SYNC_JUDGE")  # _comfy.Loaded(kf_core.encoders.sync_av.SyncNet)
LICENCE_SYNCHFORMER = "MIT (Synchformer, Iashin et al. 2024; the AudioSet model MMAudio redistributes)"


class KlingFoleyStereoFromVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleyStereoFromVideo", display_name="Kling-Foley Stereo From Video", category=CATEGORY,
            description="Turns mono (or centred) audio into stereo that follows the video: it finds where on screen "
                        "the motion that matches the sound's onsets is, and pans there with level and time "
                        "differences. No model weights; the mono mix of the result is the input.",
            inputs=[io.Audio.Input("audio", tooltip="Any core AUDIO; a batch of takes is panned take by take."),
                    Clip.Input("video", tooltip="From Kling-Foley Load Video (file, core VIDEO or IMAGE + fps)."),
                    io.Float.Input("width", default=1.0, min=0.0, max=1.0, step=0.05,
                                   tooltip="Stereo spread: 1 = a source at the frame's edge is fully in one "
                                           "speaker, 0.5 = half way, 0 = centred (the input unchanged)."),
                    io.Float.Input("itd_ms", default=0.6, min=0.0, max=1.0, step=0.05,
                                   tooltip="Time difference between the ears for a source at the edge, in ms "
                                           "(people hear up to ~0.7 ms). 0 = level differences only.")],
            outputs=[io.Audio.Output(display_name="audio", tooltip="Stereo AUDIO [takes, 2, samples], same length.")])

    @classmethod
    def execute(cls, audio, video, width=1.0, itd_ms=0.6):
        from kf_core.spatial import StereoConfig, stereo_from_video
        sr = int(audio["sample_rate"])
        wave = stereo_from_video(audio["waveform"], sr, video, cfg=StereoConfig(width=width, max_itd_ms=itd_ms))
        return io.NodeOutput({"waveform": wave, "sample_rate": sr})


class KlingFoleySyncJudgeLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleySyncJudgeLoader", display_name="Kling-Foley Sync Judge Loader (Synchformer)",
            category=CATEGORY,
            description="Loads the whole Synchformer (video and audio branches and its offset head) so Best Take "
                        "can rank takes by DeSync. MMAudio's synchformer_state_dict.pth holds all of it.",
            inputs=[io.Combo.Input("synchformer_name", options=[_comfy.NONE, *_comfy.model_files()],
                                   tooltip="synchformer_state_dict.pth in models/kling_foley/ (907 MB; press R "
                                           "after adding it). A file with only the visual encoder is refused.")],
            outputs=[SyncJudge.Output(display_name="sync_judge", tooltip="For Kling-Foley Best Take."),
                     io.String.Output(display_name="licence", tooltip="The licence the loaded weights carry.")])

    @classmethod
    def execute(cls, synchformer_name):
        from kf_core.encoders.sync_av import SyncNet
        if synchformer_name == _comfy.NONE:
            raise FileNotFoundError("no Synchformer picked: put MMAudio's synchformer_state_dict.pth into "
                                    "models/kling_foley/, press R and pick it (or leave Best Take's sync_judge empty)")
        net = SyncNet.from_file(_comfy.model_path(synchformer_name), device=_comfy.offload_device())
        return io.NodeOutput(_comfy.Loaded(_Judge(net), ("net",), LICENCE_SYNCHFORMER), LICENCE_SYNCHFORMER)


class _Judge:
    """The loaded SyncNet under the one part name `_comfy.Loaded` moves to the GPU."""

    def __init__(self, net) -> None:
        self.net = net


class KlingFoleyBestTake(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleyBestTake", display_name="Kling-Foley Best Take (sync score)", category=CATEGORY,
            description="Ranks a batch of takes by how well each one's sound follows the video and keeps the best: "
                        "audio onsets against the picture's motion changes (weight-free, like AV-Align), and "
                        "DeSync when a Sync Judge is connected. Make the takes with the Flow Sampler's batch_size.",
            inputs=[io.Audio.Input("audio", tooltip="A batch of takes [N, channels, samples] of the same video."),
                    Clip.Input("video", tooltip="From Kling-Foley Load Video: the video the takes are for."),
                    SyncJudge.Input("sync_judge", optional=True,
                                    tooltip="From Sync Judge Loader: rank by DeSync first (clips of 4.8 s or more).")],
            outputs=[io.Audio.Output(display_name="audio", tooltip="The best take [1, channels, samples]."),
                     io.String.Output(display_name="scores", tooltip="Every take's score, the best marked."),
                     io.Int.Output(display_name="best_index", tooltip="Which take of the batch won (0 = first).")])

    @classmethod
    def execute(cls, audio, video, sync_judge=None):
        from kf_core.takes import rank_takes
        wave, sr = audio["waveform"], int(audio["sample_rate"])
        with _comfy.on_device(sync_judge) if sync_judge is not None else contextlib.nullcontext() as judge:
            ranking = rank_takes(wave, sr, video, sync_model=judge.net if judge is not None else None)
        best = wave[ranking.best:ranking.best + 1]
        report = ranking.report()
        return io.NodeOutput({"waveform": best, "sample_rate": sr}, report, ranking.best, ui={"text": [report]})


NODES = [KlingFoleyStereoFromVideo, KlingFoleySyncJudgeLoader, KlingFoleyBestTake]
