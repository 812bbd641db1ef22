"""Running a sequence stage over a long input in overlapping chunks, with memory bounded by the chunk.

    plan = ChunkPlan(chunk=861, overlap=0, context=30)           # in input frames
    blocks = chunked(fn, read, total, plan, ratio=512)           # output blocks, in order

`fn(x [..., m], offset) -> y [..., m·ratio]` is the stage (a Mel-VAE decoder: ratio 2 mel frames
per latent; Mono2Stereo: 1; a vocoder: hop samples per frame); `offset` is x's first frame in the
whole input. `read(a, b)` gives input frames [a, b). The chunks' cores come from
`sampling.longform.window_plan` (at most `chunk` frames, neighbours sharing exactly `overlap`);
each is computed with up to `context` extra input frames on both sides, which are dropped.

- A stage whose output at a frame depends only on inputs within its receptive field (convolution
  vocoders, Griffin-Lim) with `context` >= that field and `overlap` = 0 gives the whole-input result
  (to float rounding), however long the input.
- A stage with clip-wide statistics (GroupNorm, attention, per-clip centring: the Mel-VAEs and
  Mono2Stereo) sees each chunk as its own clip — as in training, where clips are seconds long —
  and neighbouring chunks are crossfaded over `overlap` frames with raised-cosine weights that sum
  to exactly 1 (`sampling.longform.fade_in_weights`). An input within one chunk is computed whole.
The output has exactly `total·ratio` frames. `Tape` turns a stream of blocks back into the
random access `read` needs, keeping only the frames a later chunk can still ask for.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ..sampling.longform import fade_in_weights, window_plan

__all__ = ["ChunkPlan", "chunked", "Tape", "plan_for"]


@dataclass(frozen=True)
class ChunkPlan:
    """Core frames per chunk, frames crossfaded between neighbours, extra frames of context per side."""

    chunk: int
    overlap: int = 0
    context: int = 0

    def __post_init__(self) -> None:
        if self.chunk < 1 or self.overlap < 0 or self.context < 0:
            raise ValueError(f"ChunkPlan needs chunk >= 1, overlap >= 0 and context >= 0, got "
                             f"{self.chunk}/{self.overlap}/{self.context}")
        if 3 * self.overlap > self.chunk:
            raise ValueError(f"ChunkPlan overlap {self.overlap} must be at most a third of the chunk {self.chunk} "
                             "(so only two chunks ever meet)")


def plan_for(rate: float, chunk_s: float, overlap_s: float = 0.0, context: int = 0) -> ChunkPlan:
    """Frame rate (frames/s) and seconds -> a ChunkPlan in frames (context already in frames)."""
    return ChunkPlan(max(1, int(round(chunk_s * rate))), int(round(overlap_s * rate)), int(context))


def chunked(fn: Callable[[torch.Tensor, int], torch.Tensor], read: Callable[[int, int], torch.Tensor],
            total: int, plan: ChunkPlan, *, ratio: int = 1,
            release: Callable[[int], None] | None = None) -> Iterator[torch.Tensor]:
    """Stage `fn` over input frames [0, total) -> its output [..., total·ratio] as blocks in order.

    `release(i)`, if given, is called after each block has been taken, with the first input frame
    a later chunk may still read (a Tape drops everything before it)."""
    if total < 1:
        raise ValueError(f"nothing to process: total is {total} frames")
    spans = window_plan(total, plan.chunk, plan.overlap if total > plan.chunk else 0)
    pending: torch.Tensor | None = None                 # the previous chunk's faded-out tail
    for k, (start, length) in enumerate(spans):
        a, b = max(0, start - plan.context), min(total, start + length + plan.context)
        y = fn(read(a, b), a)                                                  # ... (b-a)·ratio
        if y.shape[-1] != (b - a) * ratio:
            raise ValueError(f"a chunk stage turned {b - a} frames into {y.shape[-1]}, expected "
                             f"{(b - a) * ratio} (ratio {ratio})")
        y = y[..., (start - a) * ratio:(start - a + length) * ratio]           # ... length·ratio
        if pending is not None:                         # fade in over the shared frames
            n = pending.shape[-1]
            w = fade_in_weights(n).to(device=y.device, dtype=y.dtype)
            y = torch.cat([pending + w * y[..., :n], y[..., n:]], dim=-1)
            pending = None
        done = start + length
        if k + 1 < len(spans):
            shared = (start + length - spans[k + 1][0]) * ratio
            if shared:
                w = fade_in_weights(shared).to(device=y.device, dtype=y.dtype)
                pending = (1.0 - w) * y[..., -shared:]
                y = y[..., :-shared]
                done = spans[k + 1][0]
        yield y
        if release is not None:
            release(max(0, done - plan.context))


class Tape:
    """A stream of [..., n] blocks (along the last axis, `total` frames in all) as random access
    `read(a, b)`, for reads that never go back before the last `release(i)`."""

    def __init__(self, blocks: Iterator[torch.Tensor], total: int) -> None:
        self._blocks, self.total = iter(blocks), total
        self._buf: torch.Tensor | None = None
        self._start = 0                                  # frame index of _buf[..., 0]

    @property
    def _end(self) -> int:
        return self._start + (0 if self._buf is None else self._buf.shape[-1])

    def read(self, a: int, b: int) -> torch.Tensor:
        if a < self._start:
            raise ValueError(f"Tape: frame {a} was already released (kept from {self._start})")
        if b > self.total:
            raise ValueError(f"Tape: asked for frames up to {b}, the stream has {self.total}")
        while self._end < b:
            block = next(self._blocks, None)
            if block is None:
                raise ValueError(f"Tape: the stream ended at frame {self._end}, {self.total} expected")
            self._buf = block if self._buf is None else torch.cat([self._buf, block], dim=-1)
        return self._buf[..., a - self._start:b - self._start]

    def release(self, i: int) -> None:
        if self._buf is not None and i > self._start:
            cut = min(i, self._end) - self._start
            self._buf = self._buf[..., cut:].clone()     # clone: let the released frames' memory go
            self._start += cut
