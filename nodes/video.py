"""Load Video: a file from the input folder, a core VIDEO, or IMAGE frames + fps -> a video handle."""
from __future__ import annotations

from . import _comfy

CATEGORY = "audio/Kling-Foley"


class KlingFoleyLoadVideo:
    DESCRIPTION = ("The video to give sound to. Connect frames from any video node (IMAGE + their frame rate), "
                   "a core VIDEO, or pick/upload a file. The audio will last exactly frames ÷ fps seconds — "
                   "the frame rate is never assumed.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("KLINGFOLEY_VIDEO", "FLOAT", "FLOAT")
    RETURN_NAMES = ("video", "fps", "duration")
    OUTPUT_TOOLTIPS = ("The video handle for the encoders and Mux Audio.", "Its frame rate.",
                       "Its duration in seconds (the audio's length).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "fps": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 240.0, "step": 0.001,
                                  "tooltip": "Frame rate of connected IMAGE frames (Wan 16, LTX 24/25, Hunyuan "
                                             "24). 0 = take it from video_info, the VIDEO or the file."}),
                "file": ([_comfy.NONE, *_comfy.input_videos()],
                         {"video_upload": True, "tooltip": "A video in ComfyUI's input folder (upload with the "
                                                           "button). Ignored when frames or a VIDEO are "
                                                           "connected."}),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": "Video frames [frames, H, W, 3] from any node; set fps or "
                                                "connect video_info."}),
                "video": ("VIDEO", {"tooltip": "A core VIDEO (e.g. from Load Video or Create Video)."}),
                "video_info": ("VHS_VIDEOINFO", {"tooltip": "VideoHelperSuite's video info: its loaded_fps "
                                                            "gives the frame rate of the IMAGE frames."}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, fps, file, **kwargs):
        return _comfy.input_stamp(file)

    def load(self, fps, file, images=None, video=None, video_info=None):
        from kf_core.pipeline import open_video
        if video is not None:
            source, rate = _comfy.video_source(video)
        elif images is not None:
            source, rate = images, _comfy.fps_of(fps, video_info)
        else:
            source, rate = _comfy.input_path(file), None
        clip = open_video(source, rate)
        return (clip, clip.fps, clip.duration)


NODES = {"KlingFoleyLoadVideo": ("Kling-Foley Load Video", KlingFoleyLoadVideo)}
