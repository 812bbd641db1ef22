"""Put a waveform into a video: `mux_audio(video, audio [C,T], sample_rate, out_path)`.

- `video` a file path: the video packets are copied as they are (no re-encoding, no quality
  loss); every other track of the source (its old audio, subtitles, data) is dropped.
- `video` a frames tensor [N,H,W,3] (float 0..1 or uint8) + `fps`: encoded as H.264 yuv420p;
  odd sizes get one edge-replicated row/column so both sides are even.
- The audio track lasts exactly the video's duration: round(duration·sample_rate) samples, the
  waveform padded with silence or its tail cut (AAC then rounds up to whole 1024-sample frames,
  which the container's edit list/duration trims on playback).
- Audio codec by container (`audio_codec` may pick another allowed one):
  .mp4/.m4v → AAC; .mov → AAC (or pcm_s16le); .mkv → FLAC (or pcm_s16le, AAC, Opus);
  .webm → Opus (48 kHz; the waveform is resampled).
- The output never replaces an existing file (a numbered name instead, returned) and is written
  atomically: an exception or `check_cancel` raising leaves nothing behind.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from .audio import _frames_of, _layout, as_wave, fit_length, resample
from .errors import MediaError, check_dimensions
from .paths import atomic_output
from .resize import rational_fps
from .video import open_video, probe

__all__ = ["mux_audio", "AUDIO_CODECS"]

log = logging.getLogger(__name__)

# container suffix -> allowed audio codecs, the first is the default
AUDIO_CODECS: dict[str, tuple[str, ...]] = {
    ".mp4": ("aac",), ".m4v": ("aac",), ".mov": ("aac", "pcm_s16le"),
    ".mkv": ("flac", "pcm_s16le", "aac", "libopus"), ".webm": ("libopus",),
}
_OPUS_RATE = 48000


def _pick_codec(out_path: Path, audio_codec: str | None) -> str:
    suffix = out_path.suffix.lower()
    if suffix not in AUDIO_CODECS:
        raise MediaError(out_path, f"cannot write a video as {suffix or 'a file without extension'}",
                         f"use one of {', '.join(AUDIO_CODECS)}")
    allowed = AUDIO_CODECS[suffix]
    codec = audio_codec or allowed[0]
    if codec not in allowed:
        raise MediaError(out_path, f"audio codec {codec!r} is not available for {suffix}",
                         f"use one of {', '.join(allowed)}")
    return codec


class _AudioTrack:
    """Encodes a waveform into an output stream chunk by chunk, interleaved with the video."""

    def __init__(self, container, codec: str, wave: np.ndarray, sample_rate: int, start: float):
        self.container = container
        self.stream = container.add_stream(codec, rate=sample_rate, layout=_layout(wave.shape[0]))
        self.stream.time_base = Fraction(1, sample_rate)
        self.wave, self.rate = wave, sample_rate
        self.frames = _frames_of(wave, sample_rate, start_pts=int(round(start * sample_rate)),
                                 chunk=1024)
        self.sent = 0.0  # seconds of audio handed to the encoder

    def feed_until(self, seconds: float) -> None:
        """Encode audio up to (a little past) `seconds` so the muxer can interleave."""
        while self.sent <= seconds:
            frame = next(self.frames, None)
            if frame is None:
                self.sent = float("inf")
                return
            self.sent += frame.samples / self.rate
            self.container.mux(self.stream.encode(frame))

    def finish(self) -> None:
        self.feed_until(float("inf"))
        self.container.mux(self.stream.encode(None))


def _prepare_wave(audio, sample_rate: int, codec: str, duration: float) -> tuple[np.ndarray, int]:
    wave = as_wave(audio)
    if codec == "libopus" and sample_rate != _OPUS_RATE:  # Opus only runs at 48 kHz here
        wave, sample_rate = resample(wave, sample_rate, _OPUS_RATE).numpy(), _OPUS_RATE
    if codec != "flac":
        wave = np.clip(wave, -1.0, 1.0)
    samples = int(round(duration * sample_rate))
    if abs(wave.shape[1] - samples) > 0.01 * sample_rate:
        log.info("audio is %.3f s, video %.3f s: %s to match", wave.shape[1] / sample_rate, duration,
                 "trimming" if wave.shape[1] > samples else "padding with silence")
    return fit_length(wave, samples), sample_rate


def _remux(src: Path, out, codec: str, audio, sample_rate: int,
           check_cancel: Callable[[], None] | None) -> None:
    info = probe(src)
    wave, sample_rate = _prepare_wave(audio, sample_rate, codec, info.duration)
    with open_video(src) as (inp, vin):
        vout = out.add_stream_from_template(vin)
        track = _AudioTrack(out, codec, wave, sample_rate, 0.0)
        origin = info.start_time
        for i, packet in enumerate(inp.demux(vin)):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            if check_cancel is not None and i % 32 == 0:
                check_cancel()
            track.feed_until(float(packet.dts * packet.time_base) - origin)
            packet.stream = vout
            out.mux(packet)
        track.finish()


def _even_frame(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if h % 2 or w % 2:  # yuv420p needs even sides: repeat the last row/column
        img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return img


def _encode(frames: torch.Tensor, fps, out, codec: str, audio, sample_rate: int, crf: int,
            check_cancel: Callable[[], None] | None) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise MediaError(None, f"frames must be an IMAGE batch [N,H,W,3] with N >= 1, got shape "
                         f"{tuple(frames.shape)}", "pass the frames of one video")
    if fps is None:
        raise MediaError(None, "a frames tensor needs its fps", "pass fps= (e.g. 16, 24, 25, 30)")
    n, h, w, _ = frames.shape
    check_dimensions(w, h, "the frames")
    rate = rational_fps(fps)
    duration = float(n / rate)
    wave, sample_rate = _prepare_wave(audio, sample_rate, codec, duration)
    vs = out.add_stream("libx264", rate=rate)
    vs.width, vs.height = w + w % 2, h + h % 2
    vs.pix_fmt = "yuv420p"
    vs.codec_context.time_base = 1 / rate
    vs.codec_context.options = {"crf": str(crf), "preset": "medium"}
    track = _AudioTrack(out, codec, wave, sample_rate, 0.0)
    for i in range(n):
        if check_cancel is not None and i % 8 == 0:
            check_cancel()
        x = frames[i]
        if x.dtype != torch.uint8:
            x = (x.float() * 255.0).clamp(0, 255).round().to(torch.uint8)
        frame = av.VideoFrame.from_ndarray(_even_frame(x.cpu().numpy()), format="rgb24")
        frame.pts = i
        track.feed_until(float(i / rate))
        out.mux(vs.encode(frame))
    out.mux(vs.encode(None))
    track.finish()


def mux_audio(video: str | os.PathLike | torch.Tensor, audio, sample_rate: int,
              out_path: str | os.PathLike, *, fps: float | None = None, audio_codec: str | None = None,
              crf: int = 18, check_cancel: Callable[[], None] | None = None) -> Path:
    """Video (file path, or frames [N,H,W,3] + fps) and audio [C,T] at sample_rate in, the path of
    the new video with that audio out (module doc: codecs, length rule, no-overwrite, atomic)."""
    out_path = Path(out_path)
    codec = _pick_codec(out_path, audio_codec)
    if not (isinstance(sample_rate, int) and 1000 <= sample_rate <= 768000):
        raise ValueError(f"sample_rate must be an integer in 1000..768000 Hz, got {sample_rate!r}")
    is_file = not isinstance(video, torch.Tensor)
    if not is_file and out_path.suffix.lower() == ".webm":
        raise MediaError(out_path, "frames are encoded as H.264, which .webm cannot hold",
                         "use .mp4, .mov or .mkv")
    with atomic_output(out_path) as pending:
        try:
            with av.open(str(pending.tmp), "w") as out:
                if is_file:
                    _remux(Path(video), out, codec, audio, sample_rate, check_cancel)
                else:
                    _encode(video, fps, out, codec, audio, sample_rate, crf, check_cancel)
        except MediaError:
            raise
        except (av.FFmpegError, ValueError) as e:  # PyAV says "format does not support codec" as ValueError
            raise MediaError(out_path, f"writing failed ({e.__class__.__name__}: {e})",
                             "the source's video codec may not fit this container; try .mkv") from e
    return pending.path
