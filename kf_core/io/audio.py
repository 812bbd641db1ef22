"""Audio files and waveforms: `read_audio`, `write_audio` (WAV / FLAC), `resample`, `fit_length`.

Waveforms are float32 [C, T] in [-1, 1]. Writes are atomic and never overwrite (see `paths`).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch

from .errors import MediaError, check_media_file
from .paths import atomic_output

__all__ = ["read_audio", "write_audio", "resample", "fit_length", "as_wave", "WAV_FORMATS"]

log = logging.getLogger(__name__)

# sample format -> (PCM codec for .wav, FFmpeg sample format name, whether FLAC can hold it)
WAV_FORMATS = {"s16": ("pcm_s16le", "s16", True), "s32": ("pcm_s32le", "s32", True),
               "f32": ("pcm_f32le", "flt", False)}
_CHUNK = 4096


def as_wave(wave, what: str = "audio") -> np.ndarray:
    """Tensor/array [C,T] or [T] in, contiguous float32 numpy [C,T] out; rejects NaN/inf and C > 8."""
    x = wave.detach().to("cpu", torch.float32).numpy() if isinstance(wave, torch.Tensor) \
        else np.asarray(wave, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or not 1 <= x.shape[0] <= 8:
        raise MediaError(None, f"{what} must be a waveform [channels, samples] with 1..8 channels, "
                         f"got shape {tuple(x.shape)}", "pass one clip, e.g. wave[0] of a [B,C,T] batch")
    if not np.isfinite(x).all():
        raise MediaError(None, f"{what} contains NaN or infinite samples",
                         "the generation diverged; try another seed or fewer guidance")
    return np.ascontiguousarray(x, dtype=np.float32)


def fit_length(wave: np.ndarray, samples: int) -> np.ndarray:
    """[C,T] in, [C,samples] out: trailing silence added or the tail cut (deliberately, to match)."""
    c, t = wave.shape
    if t >= samples:
        return wave[:, :samples]
    return np.concatenate([wave, np.zeros((c, samples - t), np.float32)], axis=1)


def _layout(channels: int) -> av.AudioLayout:
    return av.AudioLayout({1: "mono", 2: "stereo"}.get(channels, channels))


def _frames_of(wave: np.ndarray, sample_rate: int, start_pts: int = 0, chunk: int = _CHUNK):
    """[C,T] float32 in, planar float AudioFrames of `chunk` samples (pts in samples) out."""
    layout = _layout(wave.shape[0])
    for s in range(0, wave.shape[1], chunk):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, s:s + chunk]),
                                           format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = start_pts + s
        yield frame


def resample(wave, sample_rate: int, new_rate: int) -> torch.Tensor:
    """[C,T] at sample_rate in, float32 [C, round(T·new_rate/sample_rate)] at new_rate out
    (FFmpeg's swresample; the length is made exact so durations never drift)."""
    x = as_wave(wave)
    want = int(round(x.shape[1] * new_rate / sample_rate))
    if new_rate == sample_rate:
        return torch.from_numpy(x.copy())
    rs = av.AudioResampler(format="fltp", layout=_layout(x.shape[0]), rate=new_rate)
    parts = []
    for frame in _frames_of(x, sample_rate):
        parts += [f.to_ndarray() for f in rs.resample(frame)]
    parts += [f.to_ndarray() for f in rs.resample(None)]
    y = np.concatenate(parts, axis=1) if parts else np.zeros((x.shape[0], 0), np.float32)
    return torch.from_numpy(fit_length(y.astype(np.float32), want))


def read_audio(path: str | os.PathLike, sample_rate: int | None = None,
               mono: bool = False) -> tuple[torch.Tensor, int]:
    """Audio (or video-with-audio) file in, (float32 [C,T] in [-1,1], sample rate) out; resampled
    to `sample_rate` when given (exact length round(T·new/old)), channels averaged when `mono`."""
    p = check_media_file(path)
    try:
        container = av.open(str(p))
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


def write_audio(path: str | os.PathLike, wave, sample_rate: int, *, sample_format: str = "s16",
                check_cancel: Callable[[], None] | None = None) -> Path:
    """Waveform [C,T] (float, [-1,1]) in, the written .wav/.flac path out — never overwriting (a
    numbered name instead) and atomic. `sample_format`: "s16" (default), "s32", or "f32" (WAV only);
    integer formats clip to [-1, 1]."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".wav", ".flac"):
        raise MediaError(p, f"cannot write audio as {suffix or 'a file without extension'}",
                         "use a .wav or .flac file name")
    if sample_format not in WAV_FORMATS:
        raise ValueError(f"sample_format must be one of {sorted(WAV_FORMATS)}, got {sample_format!r}")
    pcm, av_format, flac_ok = WAV_FORMATS[sample_format]
    if suffix == ".flac" and not flac_ok:
        raise MediaError(p, "FLAC cannot store 32-bit float samples", "use sample_format='s16' or 's32', or .wav")
    if not (isinstance(sample_rate, int) and 1000 <= sample_rate <= 768000):
        raise ValueError(f"sample_rate must be an integer in 1000..768000 Hz, got {sample_rate!r}")
    x = as_wave(wave)
    if sample_format != "f32":
        x = np.clip(x, -1.0, 1.0)
    with atomic_output(p) as pending:
        with av.open(str(pending.tmp), "w") as out:
            stream = out.add_stream("flac" if suffix == ".flac" else pcm, rate=sample_rate,
                                    layout=_layout(x.shape[0]))
            stream.codec_context.format = av_format
            for i, frame in enumerate(_frames_of(x, sample_rate)):
                if check_cancel is not None and i % 16 == 0:
                    check_cancel()
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    return pending.path
