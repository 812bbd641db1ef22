"""A torch Dataset of synthetic clips for training kf-tiny, with disjoint train/held-out seeds.

Item i of split "train" is `make_clip(seed + i)`; split "heldout" uses seeds offset by
`HELDOUT_OFFSET` (1e9), so evaluation never sees a training clip for any n < 1e9; `looks`
("train", "heldout" look families, "classic") is passed to make_clip. Items are
dicts of tensors (frames uint8 [T, H, W, 3], audio float32 [2, N]) plus caption, fps and the
event list; clips differ in length and size, so batch them with `collate=list` or fix
`duration`/`fps`/`size` to stack them.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import Dataset

from kf_core.data.synthetic import make_clip

__all__ = ["SyntheticDataset", "HELDOUT_OFFSET", "split_seed"]

HELDOUT_OFFSET = 1_000_000_000


def split_seed(index: int, seed: int, split: str) -> int:
    """(item index, base seed, "train" | "heldout") -> the generator seed of that item."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    if not 0 <= index < HELDOUT_OFFSET:
        raise ValueError(f"index {index} out of range [0, {HELDOUT_OFFSET})")
    return seed + index + (HELDOUT_OFFSET if split == "heldout" else 0)


class SyntheticDataset(Dataset):
    """n procedurally generated clips (deterministic per (seed, split, index))."""

    def __init__(self, n: int, seed: int = 0, *, split: str = "train", duration: float | None = None,
                 fps: float | None = None, size: int | tuple[int, int] | None = None,
                 classes: Sequence[str] | None = None, layout: str | None = None, sample_rate: int = 44100,
                 looks: str = "train") -> None:
        if n <= 0:
            raise ValueError(f"SyntheticDataset needs n > 0 clips, got {n}")
        split_seed(0, seed, split)  # validates split
        self.n, self.seed, self.split = n, seed, split
        self.options = dict(duration=duration, fps=fps, size=size, classes=classes, layout=layout,
                            sample_rate=sample_rate, looks=looks)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} clips")
        clip = make_clip(split_seed(index, self.seed, self.split), **self.options)
        return {
            "frames": torch.from_numpy(clip.frames),  # T H W 3 uint8
            "audio": torch.from_numpy(clip.audio),  # 2 N float32
            "fps": clip.fps, "sample_rate": clip.sample_rate, "duration": clip.duration,
            "caption": clip.caption, "labels": list(clip.labels), "events": list(clip.events),
            "seed": clip.seed, "timestamps": clip.timestamps,
        }
