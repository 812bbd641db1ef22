"""Video files in: `probe(path) -> VideoInfo`, and a streaming decoder of (time, frame) pairs.

Times are seconds from the first frame of the video stream (the first frame is shown at t = 0),
computed from each frame's presentation timestamp (pts · time_base), never from a frame counter
and an assumed rate — variable frame rate files are ordinary input.
"""
from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from .errors import MediaError, check_dimensions, check_media_file

__all__ = ["VideoInfo", "probe", "open_video", "decode_frames"]

log = logging.getLogger(__name__)

# FFmpeg "decodes" any text file as ANSI art through its tty demuxer; that is never a video
_TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}
_AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aif", ".aiff"}


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. `duration` is in seconds of the video stream; `rotation` is the
    counter-clockwise display rotation in degrees (0/90/180/270), already reflected in
    `display_width`/`display_height`."""

    path: Path
    duration: float
    fps: float  # average frame rate (frames / second); a VFR file's mean rate
    base_rate: Fraction | None  # the stream's real base rate (lowest rate that represents every pts)
    frame_count: int | None  # from the container; None when it does not say
    width: int  # coded (stored) size
    height: int
    rotation: int
    codec: str
    has_audio: bool
    time_base: Fraction
    start_time: float  # pts time of the first frame in the file's own clock (seconds)

    @property
    def display_width(self) -> int:
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def display_height(self) -> int:
        return self.width if self.rotation in (90, 270) else self.height


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        # metadata_errors="replace": tags in another encoding (Latin-1, damaged) must not stop the file
        return av.open(str(path), mode="r", metadata_errors="replace")
    except av.FFmpegError as e:  # InvalidDataError, no demuxer found, ...
        hint = ("it is an audio file; give a video" if path.suffix.lower() in _AUDIO_SUFFIXES
                else "the file is not a video PyAV/FFmpeg can read, or it is truncated/corrupt; "
                     "re-export it as .mp4 (H.264)")
        raise MediaError(path, f"cannot be opened as media ({e.__class__.__name__}: {e})", hint) from e


@contextmanager
def open_video(path: str | os.PathLike) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """Path in, (container, first video stream) out as a context manager; MediaError if unusable."""
    p = check_media_file(path)
    container = _open_container(p)
    try:
        if not container.streams.video:
            kind = "an audio file" if container.streams.audio else "a file"
            raise MediaError(p, f"has no video stream (it is {kind} without pictures)",
                             "give a video file such as .mp4, .mov, .mkv or .webm")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise MediaError(p, "its video stream uses a codec FFmpeg cannot decode (or its header is damaged)",
                             "re-export the video as .mp4 (H.264)")
        if stream.codec_context.name in _TEXT_CODECS or container.format.name == "tty":
            raise MediaError(p, "cannot be opened as media: it is a text file, not a video",
                             "give a video file such as .mp4, .mov, .mkv or .webm")
        stream.thread_type = "AUTO"  # frame + slice threads: decoding is the bottleneck
        yield container, stream
    finally:
        container.close()


def _rotation_of(frame: av.VideoFrame | None, stream) -> int:
    """Display rotation (counter-clockwise degrees, multiple of 90) from side data or the rotate tag."""
    deg = 0
    if frame is not None:
        deg = int(round(frame.rotation or 0))
    if deg == 0:
        tag = stream.metadata.get("rotate")  # old files: clockwise degrees in a metadata tag
        if tag is not None:
            try:
                deg = -int(float(tag))
            except ValueError:
                log.warning("ignoring unreadable rotate tag %r", tag)
    deg %= 360
    return int(round(deg / 90.0)) % 4 * 90  # snap odd angles to the nearest quarter turn


def _frame_time(frame: av.VideoFrame, prev_time: float | None, step: float) -> float:
    """Presentation time in seconds (file clock); frames without pts follow the previous one."""
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    if frame.time is not None:
        return float(frame.time)
    return 0.0 if prev_time is None else prev_time + step


def decode_frames(container, stream, *, origin: float = 0.0, start: float = 0.0,
                  check_cancel: Callable[[], None] | None = None, path: Path | None = None,
                  ) -> Iterator[tuple[float, av.VideoFrame]]:
    """Decoded frames in presentation order as (seconds from `origin`, frame).

    Seeks to the key frame before `start` when start > 0. A file that breaks off mid-stream
    (truncated download) ends the iteration with a warning once at least one frame came out;
    a file that yields no frame at all raises MediaError.
    """
    step = 1.0 / float(stream.average_rate or stream.guessed_rate or 25)  # only for pts-less frames
    if start > 0:
        target = origin + start
        try:
            container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
        except av.FFmpegError as e:
            raise MediaError(path, f"cannot seek to {start:.2f} s ({e.__class__.__name__}: {e})",
                             "the file is damaged or not seekable; re-export it") from e
    prev: float | None = None
    count = 0
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                t = _frame_time(frame, prev, step)
                prev = t
                count += 1
                if check_cancel is not None and count % 8 == 0:
                    check_cancel()
                yield t - origin, frame
    except av.FFmpegError as e:
        if count == 0:
            raise MediaError(path, f"no frame could be decoded ({e.__class__.__name__}: {e})",
                             "the file is truncated or corrupt; export it again") from e
        log.warning("%s: decoding stopped after %d frames (%s); the file is probably truncated",
                    path, count, e)
        return
    if count == 0:
        raise MediaError(path, "the video stream holds no decodable frame",
                         "the file is truncated or corrupt; export it again")


def _scan_end(container, stream, path: Path) -> tuple[float, int]:
    """(end time of the last frame in seconds, frame count) by decoding everything — the fallback
    when the container states no duration."""
    end, n, last_dur = 0.0, 0, 0.0
    for t, frame in decode_frames(container, stream, path=path):
        if frame.duration and frame.time_base is not None:
            last_dur = float(frame.duration * frame.time_base)
        elif n:
            last_dur = max(t - end, 0.0)  # unknown: repeat the previous interval
        end, n = t, n + 1
    return end + last_dur, n


def probe(path: str | os.PathLike) -> VideoInfo:
    """Path of a video in, VideoInfo out (decodes one frame; scans the file only if it states no
    duration). Raises MediaError for missing, empty, non-video, undecodable or absurdly sized files."""
    p = check_media_file(path)
    st = p.stat()
    try:  # the same unchanged file is probed once (a long clip is read span by span, window by window)
        return _probe_cached(str(p), os.getcwd(), st.st_ino, st.st_size, st.st_mtime_ns)
    except av.FFmpegError as e:  # anything FFmpeg refuses in a damaged file that the steps below did not name
        raise MediaError(p, f"cannot be read ({e.__class__.__name__}: {e})",
                         "the file is damaged; re-export it as .mp4 (H.264)") from e


@functools.lru_cache(maxsize=64)
def _probe_cached(path: str, cwd: str, inode: int, size: int, mtime_ns: int) -> VideoInfo:
    return _probe(Path(path))


def _probe(p: Path) -> VideoInfo:
    with open_video(p) as (container, stream):
        tb = stream.time_base or Fraction(1, 1)
        first = None
        for _, frame in decode_frames(container, stream, path=p):
            first = frame
            break
        start_time = float(first.pts * tb) if first is not None and first.pts is not None else 0.0
        width = stream.codec_context.width or first.width
        height = stream.codec_context.height or first.height
        check_dimensions(width, height, "the video", p)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        frames = int(stream.frames) if stream.frames else None
        duration = None
        if stream.duration:
            duration = float(stream.duration * tb)
        elif container.duration:
            duration = float(container.duration) / av.time_base - max(
                start_time - float(container.start_time or 0) / av.time_base, 0.0)
        if duration is None or duration <= 0 or not math.isfinite(duration):
            with open_video(p) as (again, vs):  # a fresh pass: some damaged files cannot seek back
                duration, counted = _scan_end(again, vs, p)
            frames = frames or counted
            if fps <= 0 and duration > 0:
                fps = counted / duration
        if duration <= 0:
            raise MediaError(p, "the video has zero duration", "export a clip with at least one second")
        return VideoInfo(
            path=p, duration=duration, fps=fps, base_rate=stream.base_rate, frame_count=frames,
            width=width, height=height, rotation=_rotation_of(first, stream),
            codec=stream.codec_context.name, has_audio=bool(container.streams.audio), time_base=tb,
            start_time=start_time)
