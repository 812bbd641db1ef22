"""Audio as a stream of chunks, so writers never hold a whole long track: [C,n] float32 blocks in order.

Writers (`write_audio`, `AudioWriter`, `mux_audio`) take either one waveform [C,T] or any iterable
of [C,n] chunks (e.g. what `AudioCodec.stream_waveform` yields), and run them through:
- `iter_chunks(audio)`: validated float32 numpy chunks with one channel count (NaN/inf refused);
- `fit_stream(chunks, samples)`: exactly `samples` samples (tail cut or silence added); the
  source is always read to its end, so a tee on it sees every chunk;
- `reframe(chunks, size)`: blocks of exactly `size` samples (the last may be shorter), as
  encoders with a fixed frame size (AAC 1024, FLAC) want them;
- `audio_frames(blocks, sample_rate)`: PyAV AudioFrames with pts counted in samples.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import av
import numpy as np
import torch

from .errors import MediaError

__all__ = ["as_wave", "iter_chunks", "fit_stream", "reframe", "audio_frames", "layout", "StreamLength"]

MAX_CHANNELS = 8


def as_wave(wave, what: str = "audio") -> np.ndarray:
    """Tensor/array [C,T] or [T] in, contiguous float32 numpy [C,T] out; rejects NaN/inf and C > 8."""
    x = wave.detach().to("cpu", torch.float32).numpy() if isinstance(wave, torch.Tensor) \
        else np.asarray(wave, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or not 1 <= x.shape[0] <= MAX_CHANNELS:
        raise MediaError(None, f"{what} must be a waveform [channels, samples] with 1..{MAX_CHANNELS} channels, "
                         f"got shape {tuple(x.shape)}", "pass one clip, e.g. wave[0] of a [B,C,T] batch")
    if not np.isfinite(x).all():
        raise MediaError(None, f"{what} contains NaN or infinite samples",
                         "the model produced non-finite values; if every seed does this, its weight files "
                         "are damaged (download or export them again), otherwise try another seed or a lower cfg")
    return np.ascontiguousarray(x, dtype=np.float32)


def iter_chunks(audio, what: str = "audio") -> Iterator[np.ndarray]:
    """A waveform [C,T] (tensor/array) or an iterable of [C,n] chunks -> float32 [C,n] numpy chunks,
    each validated by `as_wave`, all with the channel count of the first."""
    if isinstance(audio, (torch.Tensor, np.ndarray)):
        yield as_wave(audio, what)
        return
    channels = None
    for chunk in audio:
        x = as_wave(chunk, what)
        if channels is None:
            channels = x.shape[0]
        elif x.shape[0] != channels:
            raise MediaError(None, f"{what}: a chunk has {x.shape[0]} channels, the first had {channels}",
                             "give every chunk the same channels")
        if x.shape[1]:
            yield x


class StreamLength:
    """Counts what passes through `fit_stream`: `source` samples read, `samples` wanted."""

    def __init__(self, samples: int) -> None:
        self.samples, self.source = samples, 0


def fit_stream(chunks: Iterable[np.ndarray], samples: int, length: StreamLength | None = None,
               channels: int | None = None) -> Iterator[np.ndarray]:
    """[C,n] chunks in, chunks totalling exactly `samples` out (tail cut, or silence added at the
    end); `length`, if given, counts the source's samples (read to its end either way)."""
    length = length or StreamLength(samples)
    sent = 0
    for x in chunks:
        channels = x.shape[0]
        length.source += x.shape[1]
        take = min(x.shape[1], samples - sent)
        if take > 0:
            sent += take
            yield x if take == x.shape[1] else x[:, :take]
    if sent < samples:
        if channels is None:
            raise MediaError(None, "the audio holds no samples", "give a waveform with sound")
        step = 1 << 16
        while sent < samples:
            n = min(step, samples - sent)
            sent += n
            yield np.zeros((channels, n), np.float32)


def reframe(chunks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """[C,n] chunks of any sizes in, contiguous [C,size] blocks out (the last one may be shorter)."""
    buf: list[np.ndarray] = []
    held = 0
    for x in chunks:
        buf.append(x)
        held += x.shape[1]
        if held < size:
            continue
        joined = np.concatenate(buf, axis=1) if len(buf) > 1 else buf[0]
        whole = held // size * size
        for s in range(0, whole, size):
            yield np.ascontiguousarray(joined[:, s:s + size])
        rest = joined[:, whole:]
        buf, held = ([rest], rest.shape[1]) if rest.shape[1] else ([], 0)
    if held:
        yield np.ascontiguousarray(np.concatenate(buf, axis=1))


def layout(channels: int) -> av.AudioLayout:
    return av.AudioLayout({1: "mono", 2: "stereo"}.get(channels, channels))


def audio_frames(blocks: Iterable[np.ndarray], sample_rate: int, start_pts: int = 0) -> Iterator[av.AudioFrame]:
    """[C,n] float32 blocks in, planar float AudioFrames (pts in samples from `start_pts`) out."""
    pts = start_pts
    for x in blocks:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="fltp", layout=layout(x.shape[0]))
        frame.sample_rate = sample_rate
        frame.pts = pts
        pts += x.shape[1]
        yield frame
