"""Put a waveform into a video: `mux_audio(video, audio, sample_rate, out_path)`.

- `video` a file path: the video packets are copied as they are (no re-encoding, no quality
  loss); every other track of the source (its old audio, subtitles, data) is dropped, with a
  warning saying which.
- `video` a frames tensor [N,H,W,3] (float 0..1 or uint8) + `fps`: encoded as H.264 yuv420p;
  odd sizes get one edge-replicated row/column so both sides are even.
- `audio`: a waveform [C,T], or an iterable of [C,n] chunks (a long track streamed as it is made).
- The audio track lasts exactly the video's duration: round(duration·sample_rate) samples, the
  waveform padded with silence or its tail cut (AAC then rounds up to whole 1024-sample frames,
  which the container's edit list/duration trims on playback).
- Audio codec by container (`audio_codec` may pick another allowed one):
  .mp4/.m4v → AAC; .mov → AAC (or pcm_s16le); .mkv → FLAC (or pcm_s16le, AAC, Opus);
  .webm → Opus (48 kHz; the waveform is resampled) — for VP8/VP9/AV1 sources only.
- `check_video_output(out_path, video)` says before any work whether the output can be written
  (extension, codec/container fit tried on an in-memory header, a writable folder); `mux_audio`
  runs it first too.
- The output never replaces an existing file (a numbered name instead, returned) and is written
  atomically: an exception, a signal or `check_cancel` raising leaves nothing behind.
"""
from __future__ import annotations

import io
import itertools
import logging
import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from .audio import resample_stream
from .errors import MediaError, check_dimensions
from .paths import atomic_output, check_writable_folder
from .resize import rational_fps
from .stream import StreamLength, audio_frames, fit_stream, iter_chunks, layout, reframe
from .video import open_video, probe

__all__ = ["mux_audio", "check_video_output", "AUDIO_CODECS", "VIDEO_SUFFIXES"]

log = logging.getLogger(__name__)

# container suffix -> allowed audio codecs, the first is the default
AUDIO_CODECS: dict[str, tuple[str, ...]] = {
    ".mp4": ("aac",), ".m4v": ("aac",), ".mov": ("aac", "pcm_s16le"),
    ".mkv": ("flac", "pcm_s16le", "aac", "libopus"), ".webm": ("libopus",),
}
VIDEO_SUFFIXES = tuple(AUDIO_CODECS)
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
_OPUS_RATE = 48000
_AAC_FRAME = 1024


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


def _existing_ancestor(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_video_output(out_path: str | os.PathLike, video=None, *, audio_codec: str | None = None) -> str:
    """Output path (+ the source: a file path, a frames tensor, or None) in, the audio codec it will
    use out; MediaError / UserError now — before any work — for an unsupported or missing extension,
    a folder, a source whose video cannot go into that container, or a folder that cannot be written."""
    out_path = Path(out_path)
    if out_path.is_dir():
        raise MediaError(out_path, "is a folder", "give a file name such as folder/video.mp4")
    codec = _pick_codec(out_path, audio_codec)
    suffix = out_path.suffix.lower()
    if isinstance(video, torch.Tensor):
        if suffix == ".webm":
            raise MediaError(out_path, "frames are encoded as H.264, which .webm cannot hold",
                             "use .mp4, .mov or .mkv")
    elif video is not None:
        _check_container_fit(Path(video), out_path, codec)
    folder = _existing_ancestor(out_path.parent if str(out_path.parent) else Path("."))
    if not folder.is_dir():
        raise MediaError(out_path, f"{folder} is a file, not a folder", "choose another output path")
    check_writable_folder(folder, out_path)
    return codec


def _check_container_fit(src: Path, out_path: Path, codec: str) -> None:
    """Write the output's header into memory: a video codec the container cannot hold fails here."""
    info = probe(src)
    rate = _OPUS_RATE if codec == "libopus" else 44100
    try:
        with open_video(src) as (_, vin):
            out = av.open(io.BytesIO(), "w", format=_FORMATS[out_path.suffix.lower()])
            try:
                out.add_stream_from_template(vin)
                out.add_stream(codec, rate=rate, layout="stereo")
                out.start_encoding()
            finally:
                out.close()
    except (av.FFmpegError, ValueError) as e:  # PyAV says "format does not support codec" as ValueError
        others = ", .mp4 or .mov" if info.codec == "h264" else ""
        raise MediaError(out_path, f"the source's {info.codec} video cannot be stored in "
                         f"{out_path.suffix.lower()} without re-encoding",
                         f"use .mkv (it holds any codec){others}") from e


class _AudioTrack:
    """Encodes a stream of [C,n] blocks into an output stream, interleaved with the video."""

    def __init__(self, container, codec: str, blocks: Iterator[np.ndarray], sample_rate: int, channels: int):
        self.container = container
        self.stream = container.add_stream(codec, rate=sample_rate, layout=layout(channels))
        self.stream.time_base = Fraction(1, sample_rate)
        self.rate = sample_rate
        self.frames = audio_frames(reframe(blocks, _AAC_FRAME), sample_rate)
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


def _prepare_audio(audio, sample_rate: int, codec: str) -> tuple[Iterator[np.ndarray], int, int]:
    """Waveform or chunks -> (validated chunks, their rate, channels); the first chunk is read now,
    so a bad waveform is refused before a file exists."""
    chunks = iter_chunks(audio)
    first = next(chunks, None)
    if first is None:
        raise MediaError(None, "the audio holds no samples", "give a waveform with sound")
    chunks = itertools.chain([first], chunks)
    if codec != "flac":
        chunks = (np.clip(x, -1.0, 1.0) for x in chunks)
    if codec == "libopus" and sample_rate != _OPUS_RATE:  # Opus only runs at 48 kHz here
        chunks, sample_rate = resample_stream(chunks, sample_rate, _OPUS_RATE), _OPUS_RATE
    return chunks, sample_rate, first.shape[0]


def _fitted(chunks, sample_rate: int, channels: int, duration: float) -> tuple[Iterator[np.ndarray], StreamLength]:
    length = StreamLength(int(round(duration * sample_rate)))
    return fit_stream(chunks, length.samples, length, channels), length


def _report_length(length: StreamLength, sample_rate: int) -> None:
    if abs(length.source - length.samples) > 0.01 * sample_rate:
        log.info("audio is %.3f s, video %.3f s: %s to match", length.source / sample_rate,
                 length.samples / sample_rate,
                 "trimmed" if length.source > length.samples else "padded with silence")


def _warn_dropped(src: Path, inp, vin) -> None:
    kinds: dict[str, int] = {}
    for s in inp.streams:
        if s.index != vin.index:
            kinds[s.type] = kinds.get(s.type, 0) + 1
    if kinds:
        what = ", ".join(f"{n} {kind} track{'s' if n > 1 else ''}" for kind, n in sorted(kinds.items()))
        log.warning("%s: its %s will not be in the output (it holds the picture and the new sound only); "
                    "keep the original file if you need them", src.name, what)


def _remux(src: Path, out, codec: str, audio, sample_rate: int,
           check_cancel: Callable[[], None] | None) -> None:
    info = probe(src)
    chunks, sample_rate, channels = _prepare_audio(audio, sample_rate, codec)
    blocks, length = _fitted(chunks, sample_rate, channels, info.duration)
    with open_video(src) as (inp, vin):
        _warn_dropped(src, inp, vin)
        vout = out.add_stream_from_template(vin)
        track = _AudioTrack(out, codec, blocks, sample_rate, channels)
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
    _report_length(length, sample_rate)


def _even_frame(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if h % 2 or w % 2:  # yuv420p needs even sides: repeat the last row/column
        img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return img


def _check_frames(frames: torch.Tensor, fps) -> Fraction:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise MediaError(None, f"frames must be an IMAGE batch [N,H,W,3] with N >= 1, got shape "
                         f"{tuple(frames.shape)}", "pass the frames of one video")
    if fps is None:
        raise MediaError(None, "a frames tensor needs its fps", "pass fps= (e.g. 16, 24, 25, 30)")
    if not (isinstance(fps, (int, float, Fraction)) and float(fps) > 0 and np.isfinite(float(fps))):
        raise MediaError(None, f"fps must be a positive frame rate, got {fps!r}", "pass e.g. 16, 24, 25 or 30")
    check_dimensions(frames.shape[2], frames.shape[1], "the frames")
    return rational_fps(fps)


def _encode(frames: torch.Tensor, fps, out, codec: str, audio, sample_rate: int, crf: int,
            check_cancel: Callable[[], None] | None) -> None:
    rate = _check_frames(frames, fps)
    n, h, w, _ = frames.shape
    chunks, sample_rate, channels = _prepare_audio(audio, sample_rate, codec)
    blocks, length = _fitted(chunks, sample_rate, channels, float(n / rate))
    vs = out.add_stream("libx264", rate=rate)
    vs.width, vs.height = w + w % 2, h + h % 2
    vs.pix_fmt = "yuv420p"
    vs.codec_context.time_base = 1 / rate
    vs.codec_context.options = {"crf": str(crf), "preset": "medium"}
    track = _AudioTrack(out, codec, blocks, sample_rate, channels)
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
    _report_length(length, sample_rate)


def mux_audio(video: str | os.PathLike | torch.Tensor, audio, sample_rate: int,
              out_path: str | os.PathLike, *, fps: float | None = None, audio_codec: str | None = None,
              crf: int = 18, check_cancel: Callable[[], None] | None = None) -> Path:
    """Video (file path, or frames [N,H,W,3] + fps) and audio ([C,T] or [C,n] chunks) at sample_rate
    in, the path of the new video with that audio out (module doc: codecs, length rule, no-overwrite,
    atomic)."""
    out_path = Path(out_path)
    if not (isinstance(sample_rate, int) and 1000 <= sample_rate <= 768000):
        raise MediaError(None, f"sample_rate must be an integer in 1000..768000 Hz, got {sample_rate!r}")
    is_file = not isinstance(video, torch.Tensor)
    if not is_file:
        _check_frames(video, fps)
    codec = check_video_output(out_path, video, audio_codec=audio_codec)
    if isinstance(audio, (torch.Tensor, np.ndarray)):
        next(iter_chunks(audio))  # a bad waveform is refused before any file exists
    with atomic_output(out_path) as pending:
        try:
            with av.open(str(pending.tmp), "w") as out:
                if is_file:
                    _remux(Path(video), out, codec, audio, sample_rate, check_cancel)
                else:
                    _encode(video, fps, out, codec, audio, sample_rate, crf, check_cancel)
        except (MediaError, OSError):
            raise  # OSError (disk full, read-only, ...): atomic_output names the real path
        except av.FFmpegError as e:
            raise MediaError(out_path, f"writing failed ({e.__class__.__name__}: {e})",
                             "the source may be damaged; try re-exporting it") from e
    return pending.path
