"""Mux Audio: video + AUDIO -> a new video file in the output folder, and a core VIDEO."""
from __future__ import annotations

from pathlib import Path

from . import _comfy
from ._comfy import io
from ._types import CATEGORY, Clip

CONTAINERS = ["mp4", "mkv", "mov"]


def _mux_takes(video, audio, prefix: str, container: str) -> list[Path]:
    """One file per take in the AUDIO batch; a failure or cancel removes the takes already written."""
    from kf_core.io import mux_audio
    source = video.path if video.path is not None else video.images
    wave, sr = audio["waveform"], int(audio["sample_rate"])
    written: list[Path] = []
    try:
        for take in wave:                                                   # C T per take
            _comfy.check_cancel()
            target = _comfy.output_path(prefix, "." + container)
            written.append(mux_audio(source, take, sr, target, fps=video.fps, check_cancel=_comfy.check_cancel))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


class KlingFoleyMuxAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleyMuxAudio", display_name="Kling-Foley Mux Audio (save video)", category=CATEGORY,
            description="Writes the audio into the video and saves it in ComfyUI's output folder (a file is copied "
                        "without re-encoding; frames are encoded as H.264). The audio track lasts exactly as long "
                        "as the video. Existing files are never overwritten.",
            is_output_node=True,
            inputs=[Clip.Input("video", tooltip="From Kling-Foley Load Video."),
                    io.Audio.Input("audio", tooltip="The sound to put in (e.g. from the Vocoder); a batch saves one "
                                                    "file per take."),
                    io.String.Input("filename_prefix", default="kling_foley/foley",
                                    tooltip="Name in the output folder; sub-folders allowed. A number is added when "
                                            "the name exists."),
                    io.Combo.Input("container", options=CONTAINERS, default="mp4",
                                   tooltip="mp4/mov: AAC audio; mkv: lossless FLAC.")],
            outputs=[io.Video.Output(display_name="video", tooltip="The saved video as a core VIDEO (first take)."),
                     io.String.Output(display_name="path", tooltip="Where the first take was saved.")])

    @classmethod
    def execute(cls, video, audio, filename_prefix, container):
        paths = _mux_takes(video, audio, filename_prefix, container)
        root = _comfy.output_dir().resolve()
        shown = [{"filename": p.name, "subfolder": str(p.parent.relative_to(root)).replace("\\", "/").strip("."),
                  "type": "output"} for p in paths]
        return io.NodeOutput(_comfy.video_from_file(paths[0]), str(paths[0]),
                             ui={"images": shown, "animated": (True,)})


NODES = [KlingFoleyMuxAudio]
