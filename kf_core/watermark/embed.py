"""Embedding: waveform in, the same waveform with its keyed spectral mark added out; whole or as a stream.

    marked = embed_watermark(wave [..., T], sample_rate, Payload(model, seed), key="kling-foley")
    blocks = embed_stream(blocks [..., n], sample_rate, Payload(model, seed))   # a generator, any block sizes

Every STFT tile of the band gets its magnitude scaled by 1 ± strength (the tile's sign; less on
a steady tone, where a level step would be heard first), phases untouched; the change is computed
as a separate signal and added to the input, so the host is kept sample for sample and only the
mark is new. Silence stays silent (the mark is proportional to what is there). Every channel gets
the same pattern, so a mono downmix keeps the mark.

Streaming is exact, not an approximation: the mark at a sample depends only on the STFT frames
over it and on the tonal relief of those frames' tiles, and tiles are counted from the clip's
first sample. `_Marker` therefore computes whole tiles as soon as the host under them has arrived,
carries the last three synthesised frames into the next block's overlap-add (summed in the same
order as in one pass), and pads the clip's two ends by reflection as the one-pass STFT does. The
result is the same numbers whatever the block sizes (tests/test_watermark_stream.py checks it bit
for bit); `embed_watermark` is the stream over one block. Latency: MIN_TILES tiles plus one window
(~0.4 s) of host is held back.
"""
from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator

import torch

from ..io.audio import resample_stream
from .code import Payload, encode
from .pattern import DEFAULT_KEY, WatermarkConfig, pattern_for

__all__ = ["embed_watermark", "embed_stream", "tile_gain"]


MIN_TILES = 8  # tiles computed per step at least (~0.37 s): per-step costs dominated with one at a time


def tile_gain(signs, cfg: WatermarkConfig, frames: int, start: int = 0) -> torch.Tensor:
    """Tile signs [S, Bn] -> the relative magnitude change per embedding frame and band [F, Bn]
    (frames `start`, start+1, ... counted `cfg.embed_hop` apart from the clip's start; the period repeats)."""
    signs = torch.as_tensor(signs, dtype=torch.float32)
    slot = ((torch.arange(frames) + start) * cfg.embed_hop // (cfg.slot_frames * cfg.hop)) % cfg.slots   # F
    return cfg.strength * signs[slot]                                                # F Bn


def _tonal_relief(power: torch.Tensor, cfg: WatermarkConfig) -> torch.Tensor:
    """Band power per frame [N, F, Bn] (F from a tile's first frame) -> a factor on the mark [N, F, Bn]:
    1 where a tile's band is level with its neighbours (noise, a dense texture: the change is
    masked), down to cfg.tonal_relief where it stands out above them by cfg.tonal_nats on average
    over the tile (a partial, a beep: a steady tone's level stepping from tile to tile is heard first)."""
    f, nb = power.shape[1:]
    e = power.clamp_min(1e-20).log()
    padded = torch.nn.functional.pad(e, (2, 2), mode="replicate")                   # N F Bn+4
    rel = e - 0.25 * (padded[..., :-4] + padded[..., 1:-3] + padded[..., 3:-1] + padded[..., 4:])
    per = _tile_frames(cfg)
    k = -(-f // per)
    tiles = torch.nn.functional.pad(rel, (0, 0, 0, k * per - f)).reshape(-1, k, per, nb).mean(2)  # N k Bn
    lo, hi = cfg.tonal_nats
    factor = ((hi - tiles) / (hi - lo)).clamp(cfg.tonal_relief, 1.0)
    return factor.repeat_interleave(per, 1)[:, :f]                                  # N F Bn


def _tile_frames(cfg: WatermarkConfig) -> int:
    return cfg.slot_frames * cfg.hop // cfg.embed_hop                               # embedding frames per tile


class _Marker:
    """The mark of a host arriving in blocks [N, n] at cfg.sample_rate -> the mark [N, m] as soon as
    it is final. STFT frames are centred (reflect padding at both ends, as torch.stft); frame f
    covers padded samples [f·hop, f·hop + n_fft). The synthesis is windowed overlap-add (Hann at a
    quarter-window hop sums to a constant, so this equals torch.istft away from the clip's first
    and last 12 ms, at a third of its cost)."""

    def __init__(self, signs, cfg: WatermarkConfig) -> None:
        self.signs, self.cfg = torch.as_tensor(signs, dtype=torch.float32), cfg
        self.n, self.hop = cfg.n_fft, cfg.embed_hop
        self.r = self.n // self.hop                      # frames over each sample
        self.head: list[torch.Tensor] | None = []        # host before the left padding could be made
        self.padded: torch.Tensor | None = None          # N L: padded host from frame self.frame on
        self.frame = 0                                   # the next frame to compute
        self.carry: torch.Tensor | None = None           # N r-1 n: the last synthesised frames
        self.received = self.sent = 0
        self.window: torch.Tensor | None = None

    def feed(self, x: torch.Tensor) -> torch.Tensor | None:
        """Host block [N, n] -> the mark that became final [N, m] (m may be 0), or None."""
        self.received += x.shape[-1]
        if self.padded is None:
            self.head.append(x)
            if self.received <= self.n // 2:             # the reflection needs n/2 + 1 samples
                return None
            host = torch.cat(self.head, -1)
            self.head, self.padded = None, torch.cat([host[:, 1:self.n // 2 + 1].flip(-1), host], -1)
        else:
            self.padded = torch.cat([self.padded, x], -1)
        ready = (self.padded.shape[-1] - self.n) // self.hop + 1 if self.padded.shape[-1] >= self.n else 0
        whole = ready // _tile_frames(self.cfg) * _tile_frames(self.cfg)
        return self._frames(whole, final=False) if whole >= MIN_TILES * _tile_frames(self.cfg) else None

    def finish(self) -> torch.Tensor | None:
        """The host has ended -> the rest of the mark (reflect padding at the end)."""
        if self.padded is None:                          # too short for one frame: no mark
            return torch.zeros_like(torch.cat(self.head, -1)) if self.head else None
        self.padded = torch.cat([self.padded, self.padded[:, -(self.n // 2 + 1):-1].flip(-1)], -1)
        total = self.received // self.hop + 1           # frames of the whole clip, as torch.stft counts
        return self._frames(total - self.frame, final=True)

    def _frames(self, m: int, *, final: bool) -> torch.Tensor:
        """Frames [frame, frame+m) -> the mark samples they complete (all of the rest when final)."""
        cfg, n, hop = self.cfg, self.n, self.hop
        x = self.padded[:, :(m - 1) * hop + n]
        if self.window is None or self.window.device != x.device:
            self.window = torch.hann_window(n, dtype=x.dtype, device=x.device)
        window = self.window
        spec = torch.fft.rfft(x.unfold(-1, n, hop) * window)                       # N m K'
        lo, hi = cfg.bin_range
        n_ch = spec.shape[0]
        host = spec[..., lo:hi]                                                     # N m K
        power = torch.view_as_real(host).square().sum(-1).reshape(n_ch, m, cfg.n_bands, cfg.band_bins).sum(-1)
        gain = tile_gain(self.signs, cfg, m, self.frame).to(x.device) * _tonal_relief(power, cfg)   # N m Bn
        band = torch.zeros(n_ch, m, hi, dtype=spec.dtype, device=x.device)          # N m hi
        band[..., lo:hi] = host * gain.repeat_interleave(cfg.band_bins, -1)
        frames = torch.fft.irfft(band, n=n) * window                                # N m n
        if self.carry is not None:
            frames = torch.cat([self.carry, frames], 1)                             # N c+m n
        first = self.frame - (frames.shape[1] - m)                                  # frames[:, 0]'s index
        parts = frames.reshape(n_ch, frames.shape[1], self.r, hop)                  # N c+m r hop
        out = torch.zeros(n_ch, parts.shape[1] + self.r - 1, hop, dtype=x.dtype, device=x.device)
        for j in range(self.r):                                                     # overlap-add
            out[:, j:j + parts.shape[1]] += parts[:, :, j]
        done = out[:, self.frame - first:self.frame - first + m + (self.r - 1 if final else 0)]
        envelope = window.square().sum() / hop                                      # 1.5 for Hann, n/4
        mark = done.reshape(n_ch, -1) / envelope                                    # padded [frame·hop, ...)
        if self.frame == 0:
            mark = mark[:, n // 2:]
        mark = mark[:, :self.received - self.sent]
        self.sent += mark.shape[-1]
        self.carry = frames[:, -(self.r - 1):]
        self.padded = self.padded[:, m * hop:]
        self.frame += m
        return mark


def _mark_stream(rows: Iterable[torch.Tensor], signs, cfg: WatermarkConfig) -> Iterator[torch.Tensor]:
    """Host rows [N, n] at cfg.sample_rate (a stream) -> the mark [N, m] in order, as long in total."""
    marker = _Marker(signs, cfg)
    for x in rows:
        mark = marker.feed(x)
        if mark is not None and mark.shape[-1]:
            yield mark
    mark = marker.finish()
    if mark is not None and mark.shape[-1]:
        yield mark


RESAMPLE_BLOCK = 16384  # samples per resampler call: fewer, larger calls (per-call cost dominated at 4096)


def _resampled(rows: Iterable[torch.Tensor], sample_rate: int, new_rate: int) -> Iterator[torch.Tensor]:
    """Rows [N, n] at sample_rate -> rows at new_rate; the total is within a few samples of T·new/old.
    One or two rows (mono, stereo) go through one resampler; more (a batch) each through its own,
    since io's resampler takes mono or stereo only. Each channel is resampled on its own either way."""
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return
    if first.shape[0] <= 2:
        arrays = (x.cpu().numpy() for x in itertools.chain([first], rows))
        for y in resample_stream(arrays, sample_rate, new_rate, block=RESAMPLE_BLOCK):
            yield torch.from_numpy(y).to(first.device)
        return
    copies = itertools.tee(itertools.chain([first], rows), first.shape[0])
    streams = [resample_stream(_row(c, i), sample_rate, new_rate, block=RESAMPLE_BLOCK)
               for i, c in enumerate(copies)]
    held = [first.new_zeros(1, 0).cpu() for _ in streams]
    for parts in itertools.zip_longest(*streams):      # the rows' resamplers step alike
        held = [h if p is None else torch.cat([h, torch.from_numpy(p)], -1) for h, p in zip(held, parts)]
        k = min(h.shape[-1] for h in held)
        if k:
            yield torch.cat([h[:, :k] for h in held]).to(first.device)
            held = [h[:, k:] for h in held]


def _row(blocks: Iterable[torch.Tensor], i: int) -> Iterator:
    for x in blocks:
        yield x[i:i + 1].cpu().numpy()                                             # 1 n


def embed_stream(blocks: Iterable[torch.Tensor], sample_rate: int, payload: Payload, *, key: str = DEFAULT_KEY,
                 cfg: WatermarkConfig = WatermarkConfig(), clip: bool = True) -> Iterator[torch.Tensor]:
    """Waveform blocks [..., n] (float, any rate, the leading dims fixed) -> the marked waveform as
    blocks [..., m] float32, in order, as long in total; the same numbers as `embed_watermark` of
    the whole (block boundaries move: about 0.4 s of sound is held back until the mark under it is
    final). `clip` False leaves the sum unclipped, for a level stage that follows."""
    if not isinstance(payload, Payload):
        raise TypeError(f"payload must be a kf_core.watermark.Payload, not {type(payload).__name__}")
    signs = pattern_for(key, cfg).signs(encode(payload))
    pending: deque[torch.Tensor] = deque()                 # host blocks [..., n] the mark has not reached

    def rows():
        for b in blocks:
            b = b.detach().float()
            if b.shape[-1]:
                pending.append(b)
                yield b.reshape(-1, b.shape[-1])

    if sample_rate == cfg.sample_rate:
        marks = _mark_stream(rows(), signs, cfg)
    else:  # the mark lives at 44.1 kHz below 7 kHz, so it resamples back without loss
        marks = _resampled(_mark_stream(_resampled(rows(), sample_rate, cfg.sample_rate), signs, cfg),
                           cfg.sample_rate, sample_rate)
    for mark in marks:
        while mark.shape[-1] and pending:                  # the mark may run a few samples long: dropped
            host = pending.popleft()
            k = min(host.shape[-1], mark.shape[-1])
            if k < host.shape[-1]:
                pending.appendleft(host[..., k:])
            out = host[..., :k] + mark[:, :k].to(host.device).reshape(*host.shape[:-1], k)
            mark = mark[:, k:]
            yield out.clamp(-1.0, 1.0) if clip else out
    for host in pending:                                   # ... or a few short: the tail keeps no mark
        yield host.clamp(-1.0, 1.0) if clip else host


def embed_watermark(wave: torch.Tensor, sample_rate: int, payload: Payload, *, key: str = DEFAULT_KEY,
                    cfg: WatermarkConfig = WatermarkConfig(), clip: bool = True) -> torch.Tensor:
    """Waveform [..., T] (float, any rate; [B,C,T] batches too) -> marked float32 [..., T] in [-1, 1]
    (unclipped with `clip=False`, for a level stage that follows).

    `payload` is what the detector reads back; `key` selects the pattern (only the same key
    detects it). Clips of any length are marked; detection needs about 1.5 s of sound or more.
    """
    if not isinstance(payload, Payload):
        raise TypeError(f"payload must be a kf_core.watermark.Payload, not {type(payload).__name__}")
    if wave.shape[-1] == 0:
        return wave.float()
    return torch.cat(list(embed_stream([wave], sample_rate, payload, key=key, cfg=cfg, clip=clip)), -1)
