"""Media in and out (PyAV, no ffmpeg binary): probe videos, sample frames by presentation time,
read/write audio, mux audio into video. Every failure a person can cause raises `MediaError`.

- `probe(path) -> VideoInfo`
- `sample_frames(path, fps, size=, mode=)`, `sample_streams(path, {name: StreamSpec})`,
  `frames_from_images(images [N,H,W,3], fps, target_fps, size=, mode=)`, `streams_for(seq)`
- `read_audio(path, sample_rate=None, mono=False)`, `write_audio(path, wave [C,T] or chunks, sample_rate)`,
  `AudioWriter(path, sample_rate)` (`.write(chunk [C,n])`, for streams)
- `mux_audio(video, audio [C,T] or chunks, sample_rate, out_path, fps=None)`, `check_video_output(out, video)`
- `unique_path(path)`, `atomic_output(path)`, `sweep_partials(folder)`: the one publishing routine
"""
from __future__ import annotations

from .errors import MediaError
from .audio import AudioWriter, check_audio_path, read_audio, resample, write_audio
from .frames import StreamSpec, frames_from_images, sample_frames, sample_streams, streams_for
from .mux import AUDIO_CODECS, check_video_output, mux_audio
from .paths import atomic_output, sweep_partials, unique_path
from .resize import rational_fps, resize_frames
from .video import VideoInfo, probe

__all__ = ["MediaError", "VideoInfo", "probe", "StreamSpec", "streams_for", "sample_frames",
           "sample_streams", "frames_from_images", "resize_frames", "rational_fps",
           "read_audio", "write_audio", "AudioWriter", "check_audio_path", "resample", "mux_audio",
           "check_video_output", "AUDIO_CODECS", "unique_path", "atomic_output", "sweep_partials"]
