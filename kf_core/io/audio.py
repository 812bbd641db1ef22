"""Audio files and waveforms: `read_audio`, `write_audio` / `AudioWriter` (WAV / FLAC), `resample`, `fit_length`.

Waveforms are float32 [C, T] in [-1, 1]; writers also take an iterable of [C,n] chunks (`stream`),
so a long track is written as it is made. Writes are atomic and never overwrite (see `paths`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import av
import numpy as np
import torch

from .errors import MediaError, check_media_file
from .paths import atomic_output
from .stream import as_wave, audio_frames, iter_chunks, layout as _layout, reframe

__all__ = ["read_audio", "audio_info", "write_audio", "AudioWriter", "check_audio_path", "resample", "resample_stream", "fit_length", "as_wave",
           "WAV_FORMATS", "AUDIO_SUFFIXES"]

log = logging.getLogger(__name__)

# sample format -> (PCM codec for .wav, FFmpeg sample format name, whether FLAC can hold it)
WAV_FORMATS = {"s16": ("pcm_s16le", "s16", True), "s32": ("pcm_s32le", "s32", True),
               "f32": ("pcm_f32le", "flt", False)}
_CHUNK = 4096
AUDIO_SUFFIXES = (".wav", ".flac")


def fit_length(wave: np.ndarray, samples: int) -> np.ndarray:
    """[C,T] in, [C,samples] out: trailing silence added or the tail cut (deliberately, to match)."""
    c, t = wave.shape
    if t >= samples:
        return wave[:, :samples]
    return np.concatenate([wave, np.zeros((c, samples - t), np.float32)], axis=1)


def resample_stream(chunks: Iterable[np.ndarray], sample_rate: int, new_rate: int, *,
                    block: int = _CHUNK) -> Iterator[np.ndarray]:
    """[C,n] float32 chunks at sample_rate in, [C,m] chunks at new_rate out (FFmpeg's swresample,
    run as a stream over frames of `block` samples; the total is within a few samples of T·new/old
    — callers fix the length)."""
    rs = None
    for frame in audio_frames(reframe(chunks, block), sample_rate):
        if rs is None:
            rs = av.AudioResampler(format="fltp", layout=frame.layout, rate=new_rate)
        for f in rs.resample(frame):
            yield f.to_ndarray()
    if rs is not None:
        for f in rs.resample(None):
            yield f.to_ndarray()


def resample(wave, sample_rate: int, new_rate: int) -> torch.Tensor:
    """[C,T] at sample_rate in, float32 [C, round(T·new_rate/sample_rate)] at new_rate out
    (FFmpeg's swresample; the length is made exact so durations never drift)."""
    x = as_wave(wave)
    want = int(round(x.shape[1] * new_rate / sample_rate))
    if new_rate == sample_rate:
        return torch.from_numpy(x.copy())
    parts = list(resample_stream([x], sample_rate, new_rate))
    y = np.concatenate(parts, axis=1) if parts else np.zeros((x.shape[0], 0), np.float32)
    return torch.from_numpy(fit_length(y.astype(np.float32), want))


def audio_info(path: str | os.PathLike) -> tuple[int, float, int]:
    """An audio file -> (channels, seconds, sample rate) from its header."""
    p = check_media_file(path)
    with av.open(str(p), metadata_errors="replace") as f:
        if not f.streams.audio:
            raise MediaError(p, "has no audio track", "give a file that contains sound")
        s = f.streams.audio[0]
        seconds = float(s.duration * s.time_base) if s.duration else float(f.duration or 0) / av.time_base
        return s.channels, seconds, s.codec_context.sample_rate


def read_audio(path: str | os.PathLike, sample_rate: int | None = None,
               mono: bool = False) -> tuple[torch.Tensor, int]:
    """Audio (or video-with-audio) file in, (float32 [C,T] in [-1,1], sample rate) out; resampled
    to `sample_rate` when given (exact length round(T·new/old)), channels averaged when `mono`."""
    p = check_media_file(path)
    try:
        container = av.open(str(p), metadata_errors="replace")
    except av.FFmpegError as e:
        raise MediaError(p, f"cannot be opened as audio ({e.__class__.__name__}: {e})",
                         "give a .wav, .flac, .mp3 or a video with a sound track") from e
    with container:
        if not container.streams.audio:
            raise MediaError(p, "has no audio track", "give a file that contains sound")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        rs = av.AudioResampler(format="fltp")  # any sample format -> planar float, same layout
        parts = []
        try:
            for frame in container.decode(stream):
                parts += [f.to_ndarray() for f in rs.resample(frame)]
        except av.FFmpegError as e:
            if not parts:
                raise MediaError(p, f"no audio could be decoded ({e})", "the file is corrupt") from e
            log.warning("%s: audio decoding stopped early (%s); the file is probably truncated", p, e)
        parts += [f.to_ndarray() for f in rs.resample(None)]
    if not parts:
        raise MediaError(p, "the audio track is empty", "give a file that contains sound")
    wave = np.concatenate(parts, axis=1).astype(np.float32)
    if mono and wave.shape[0] > 1:
        wave = wave.mean(axis=0, keepdims=True)
    out = torch.from_numpy(np.ascontiguousarray(wave))
    if sample_rate is not None and sample_rate != rate:
        out = resample(out, rate, sample_rate)
        rate = sample_rate
    return out, int(rate)


def check_audio_path(path: str | os.PathLike, sample_format: str = "s16") -> Path:
    """An audio output path in, the same Path out if write_audio can write it (.wav/.flac, a format
    the container holds, not a folder); MediaError otherwise. Writes nothing."""
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir():
        raise MediaError(p, "is a folder", "give a file name such as folder/sound.wav")
    if suffix not in AUDIO_SUFFIXES:
        raise MediaError(p, f"cannot write audio as {suffix or 'a file without extension'}",
                         "use a .wav or .flac file name")
    if sample_format not in WAV_FORMATS:
        raise MediaError(None, f"sample_format must be one of {sorted(WAV_FORMATS)}, got {sample_format!r}")
    if suffix == ".flac" and not WAV_FORMATS[sample_format][2]:
        raise MediaError(p, "FLAC cannot store 32-bit float samples", "use sample_format='s16' or 's32', or .wav")
    return p


def _check_rate(sample_rate) -> None:
    if not (isinstance(sample_rate, int) and 1000 <= sample_rate <= 768000):
        raise MediaError(None, f"sample_rate must be an integer in 1000..768000 Hz, got {sample_rate!r}")


class AudioWriter:
    """`with AudioWriter(path, sr) as w: w.write(chunk [C,n]); ...` -> `w.path`, the published file.

    The same rules as `write_audio` (atomic, never overwriting); the file is opened on the first
    chunk (which sets the channel count) and published when the block ends without an exception."""

    def __init__(self, path: str | os.PathLike, sample_rate: int, *, sample_format: str = "s16",
                 check_cancel: Callable[[], None] | None = None) -> None:
        self.wanted = check_audio_path(path, sample_format)
        _check_rate(sample_rate)
        self.sample_rate, self.sample_format, self.check_cancel = sample_rate, sample_format, check_cancel
        self.path: Path | None = None
        self.samples = 0
        self._stack = contextlib.ExitStack()
        self._out = self._stream = None
        self._rest: np.ndarray | None = None  # samples short of a whole encoder frame
        self._blocks = 0

    def __enter__(self) -> "AudioWriter":
        self._pending = self._stack.enter_context(atomic_output(self.wanted))
        return self

    def _open(self, channels: int) -> None:
        pcm, av_format, _ = WAV_FORMATS[self.sample_format]
        self._out = av.open(str(self._pending.tmp), "w")
        flac = self.wanted.suffix.lower() == ".flac"
        self._stream = self._out.add_stream("flac" if flac else pcm, rate=self.sample_rate, layout=_layout(channels))
        self._stream.codec_context.format = av_format
        self.channels = channels

    def _encode(self, block: np.ndarray) -> None:
        if self.check_cancel is not None and self._blocks % 16 == 0:
            self.check_cancel()
        self._blocks += 1
        for frame in audio_frames([block], self.sample_rate, self.samples):
            self._out.mux(self._stream.encode(frame))
        self.samples += block.shape[1]

    def write(self, chunk) -> None:
        """Append a waveform chunk [C,n] (float, [-1, 1]; integer formats clip)."""
        for x in iter_chunks(chunk):
            if self._out is None:
                self._open(x.shape[0])
            elif x.shape[0] != self.channels:
                raise MediaError(self.wanted, f"a chunk has {x.shape[0]} channels, the file {self.channels}",
                                 "give every chunk the same channels")
            if self.sample_format != "f32":
                x = np.clip(x, -1.0, 1.0)
            if self._rest is not None:  # whole encoder frames only, until the end
                x = np.concatenate([self._rest, x], axis=1)
            whole = x.shape[1] // _CHUNK * _CHUNK
            for s in range(0, whole, _CHUNK):
                self._encode(x[:, s:s + _CHUNK])
            self._rest = x[:, whole:] if whole < x.shape[1] else None

    def _finish(self) -> None:
        if self._out is None:
            raise MediaError(self.wanted, "no audio was written", "give a waveform with samples")
        if self._rest is not None:
            self._encode(self._rest)
            self._rest = None
        self._out.mux(self._stream.encode(None))
        out, self._out = self._out, None
        out.close()

    def _close_quietly(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            with contextlib.suppress(Exception):
                out.close()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                self._finish()
            except BaseException:
                self._close_quietly()
                if not self._stack.__exit__(*sys.exc_info()):  # deletes the temp file (and names the real path)
                    raise
                return False
        else:
            self._close_quietly()
        suppressed = self._stack.__exit__(exc_type, exc, tb)
        self.path = self._pending.path
        return bool(suppressed)


def write_audio(path: str | os.PathLike, wave, sample_rate: int, *, sample_format: str = "s16",
                check_cancel: Callable[[], None] | None = None) -> Path:
    """Waveform [C,T] (float, [-1,1]) or an iterable of [C,n] chunks in, the written .wav/.flac path
    out — never overwriting (a numbered name instead) and atomic. `sample_format`: "s16" (default),
    "s32", or "f32" (WAV only); integer formats clip to [-1, 1]."""
    if isinstance(wave, (torch.Tensor, np.ndarray)):
        as_wave(wave)  # a bad waveform is refused before any file exists
    with AudioWriter(path, sample_rate, sample_format=sample_format, check_cancel=check_cancel) as w:
        for chunk in iter_chunks(wave):
            w.write(chunk)
    return w.path
