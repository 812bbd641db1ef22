"""Media in and out (PyAV, no ffmpeg binary): probe videos, sample frames by presentation time,
read/write audio, mux audio into video. Every failure a person can cause raises `MediaError`.

- `probe(path) -> VideoInfo`
- `sample_frames(path, fps, size=, mode=)`, `sample_streams(path, {name: StreamSpec})`,
  `frames_from_images(images [N,H,W,3], fps, target_fps, size=, mode=)`, `streams_for(seq)`
- `read_audio(path, sample_rate=None, mono=False)`, `write_audio(path, wave [C,T], sample_rate)`
- `mux_audio(video, audio [C,T], sample_rate, out_path, fps=None)`, `unique_path(path)`
"""
from __future__ import annotations

from .errors import MediaError
from .audio import read_audio, resample, write_audio
from .frames import StreamSpec, frames_from_images, sample_frames, sample_streams, streams_for
from .mux import AUDIO_CODECS, mux_audio
from .paths import atomic_output, unique_path
from .resize import rational_fps, resize_frames
from .video import VideoInfo, probe

__all__ = ["MediaError", "VideoInfo", "probe", "StreamSpec", "streams_for", "sample_frames",
           "sample_streams", "frames_from_images", "resize_frames", "rational_fps",
           "read_audio", "write_audio", "resample", "mux_audio", "AUDIO_CODECS", "unique_path",
           "atomic_output"]
