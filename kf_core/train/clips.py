"""Audio clips for the codec trainers: fixed-length random crops, resumable order.

A clip dataset is any sequence whose items are waveforms [T] (mono) or [2, T] (stereo) at the
codec's sample rate. Crops are drawn from (seed, rank, step), so a resumed run sees the same crops.
"""
from __future__ import annotations

import hashlib

import torch

from .data import BatchOrder

__all__ = ["ClipBatches"]


class ClipBatches:
    """Batches of `segment` samples cropped from a clip dataset -> [B, T] or [B, 2, T]."""

    def __init__(self, dataset, batch_size: int, segment: int, *, seed: int = 0, rank: int = 0,
                 world: int = 1) -> None:
        if segment <= 0:
            raise ValueError(f"segment must be a positive number of samples, got {segment}")
        self.dataset, self.segment, self.seed, self.rank = dataset, segment, seed, rank
        self.order = BatchOrder(len(dataset), batch_size, seed=seed, rank=rank, world=world)

    def next(self, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(
            int.from_bytes(hashlib.sha256(f"kf-clips/{self.seed}/{self.rank}/{step}".encode()).digest()[:8],
                           "little") >> 1)
        out = []
        for i in self.order.next_indices():
            w = torch.as_tensor(self.dataset[i]).float()
            n = w.shape[-1]
            if n < self.segment:  # short clips are zero-padded at the end
                w = torch.nn.functional.pad(w, (0, self.segment - n))
                n = self.segment
            start = int(torch.randint(0, n - self.segment + 1, (1,), generator=g))
            out.append(w[..., start:start + self.segment])
        return torch.stack(out)

    def state_dict(self) -> dict:
        return self.order.state_dict()

    def load_state_dict(self, state) -> None:
        self.order.load_state_dict(state)
