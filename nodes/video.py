"""Load Video: a file from the input folder, a core VIDEO, or IMAGE frames + fps -> a video handle."""
from __future__ import annotations

from . import _comfy
from ._comfy import io
from ._types import CATEGORY, Clip, VHSVideoInfo


class KlingFoleyLoadVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleyLoadVideo", display_name="Kling-Foley Load Video", category=CATEGORY,
            description="The video to give sound to. Connect frames from any video node (IMAGE + their frame rate), "
                        "a core VIDEO, or pick/upload a file. The audio will last exactly frames ÷ fps seconds — "
                        "the frame rate is never assumed.",
            inputs=[
                io.Float.Input("fps", default=0.0, min=0.0, max=240.0, step=0.001,
                               tooltip="Frame rate of connected IMAGE frames (Wan 16, LTX 24/25, Hunyuan 24). "
                                       "0 = take it from video_info, the VIDEO or the file."),
                io.Combo.Input("file", options=[_comfy.NONE, *_comfy.input_videos()], upload=io.UploadType.video,
                               tooltip="A video in ComfyUI's input folder (upload with the button). Ignored when "
                                       "frames or a VIDEO are connected."),
                io.Image.Input("images", optional=True,
                               tooltip="Video frames [frames, H, W, 3] from any node; set fps or connect video_info."),
                io.Video.Input("video", optional=True, tooltip="A core VIDEO (e.g. from Load Video or Create Video)."),
                VHSVideoInfo.Input("video_info", optional=True,
                                   tooltip="VideoHelperSuite's video info: its loaded_fps gives the frame rate of "
                                           "the IMAGE frames."),
            ],
            outputs=[Clip.Output(display_name="video", tooltip="The video handle for the encoders and Mux Audio."),
                     io.Float.Output(display_name="fps", tooltip="Its frame rate."),
                     io.Float.Output(display_name="duration", tooltip="Its duration in seconds (the audio's length).")])

    @classmethod
    def fingerprint_inputs(cls, file, **kwargs):
        return _comfy.input_stamp(file)  # a re-uploaded file of the same name re-runs the graph

    @classmethod
    def execute(cls, fps, file, images=None, video=None, video_info=None):
        from kf_core.pipeline import open_video
        if video is not None:
            source, rate = _comfy.video_source(video)
        elif images is not None:
            source, rate = images, _comfy.fps_of(fps, video_info)
        else:
            source, rate = _comfy.input_path(file), None
        clip = open_video(source, rate)
        return io.NodeOutput(clip, clip.fps, clip.duration)


NODES = [KlingFoleyLoadVideo]
