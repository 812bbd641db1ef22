"""Batching for the flow trainer: padded variable-duration batches with masks, resumable order.

Shape legend: B batch, La audio tokens, C latent channels, Lv visual tokens, Ls sync tokens,
Lt text tokens, Dv/Ds/Dt feature widths.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ..config import SeqConfig
from .features import FeatureRecord

__all__ = ["FlowBatch", "collate", "BatchOrder", "LengthBucketedOrder"]


@dataclass
class FlowBatch:
    """Features of B clips padded to the longest; masks say what is real."""

    seq: SeqConfig                   # lengths of the longest clip; every tensor is padded to it
    latent_mean: torch.Tensor        # B La C
    latent_std: torch.Tensor         # B La C
    audio_mask: torch.Tensor         # B La  bool, True = real audio token
    visual_mask: torch.Tensor        # B Lv  bool, True = a real frame of the clip (also for the empties)
    sync_mask: torch.Tensor          # B Ls  bool, True = a real sync token
    seconds_start: torch.Tensor      # B
    seconds_total: torch.Tensor      # B
    has_video: torch.Tensor          # B bool
    has_text: torch.Tensor           # B bool
    visual: torch.Tensor | None = None   # B Lv Dv (zeros where has_video is False)
    sync: torch.Tensor | None = None     # B Ls Ds
    text: torch.Tensor | None = None     # B Lt Dt
    text_mask: torch.Tensor | None = None  # B Lt bool
    sources: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.latent_mean.shape[0]

    def to(self, device: torch.device | str) -> "FlowBatch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return FlowBatch(**moved)


def _pad(t: torch.Tensor, length: int) -> torch.Tensor:
    """[L, ...] -> [length, ...] zero-padded (or trimmed when the extractor rounded up)."""
    if t.shape[0] >= length:
        return t[:length]
    return torch.cat([t, t.new_zeros(length - t.shape[0], *t.shape[1:])])


def _lengths_mask(lens: Sequence[int], length: int) -> torch.Tensor:
    """Real lengths [B] -> right-padding mask [B, length] (True = real)."""
    return torch.arange(length)[None, :] < torch.tensor([min(n, length) for n in lens])[:, None]


def collate(records: Sequence[FeatureRecord], codec: Mapping[str, int]) -> FlowBatch:
    """FeatureRecords of any durations -> one FlowBatch padded to the longest clip.

    The masks give every clip its own lengths (a clip without video still has the visual/sync
    lengths of its duration, for the learned empties), so `KlingFoleyDiT.prepare` can keep padding
    out of its real tokens.
    """
    if not records:
        raise ValueError("collate needs at least one record")
    dur = max(r.duration for r in records)
    seq = SeqConfig(duration=dur, sample_rate=codec["sample_rate"], hop=codec["hop"],
                    latent_downsample=codec["latent_downsample"])
    la = max(seq.latent_len, max(r.latent_mean.shape[0] for r in records))
    mean = torch.stack([_pad(r.latent_mean.float(), la) for r in records])  # B La C
    std = torch.stack([_pad(r.latent_std.float(), la) for r in records])    # B La C
    audio_mask = _lengths_mask([r.latent_mean.shape[0] for r in records], la)  # B La
    own = [dataclasses.replace(seq, duration=r.duration) for r in records]
    visual_mask = _lengths_mask([r.visual.shape[0] if r.visual is not None else s.visual_len
                                 for r, s in zip(records, own)], seq.visual_len)     # B Lv
    sync_mask = _lengths_mask([r.sync.shape[0] if r.sync is not None else s.sync_len
                               for r, s in zip(records, own)], seq.sync_len)         # B Ls
    has_video = torch.tensor([r.visual is not None for r in records])
    has_text = torch.tensor([r.text is not None for r in records])
    batch = FlowBatch(seq=seq, latent_mean=mean, latent_std=std, audio_mask=audio_mask,
                      visual_mask=visual_mask, sync_mask=sync_mask,
                      seconds_start=torch.tensor([float(r.seconds_start) for r in records]),
                      seconds_total=torch.tensor([float(r.seconds_total) for r in records]),
                      has_video=has_video, has_text=has_text, sources=[r.source for r in records])
    if has_video.any():
        ref = next(r for r in records if r.visual is not None)
        lv, ls = seq.visual_len, seq.sync_len
        batch.visual = torch.stack([_pad(r.visual.float(), lv) if r.visual is not None
                                    else ref.visual.new_zeros(lv, ref.visual.shape[1]).float()
                                    for r in records])                       # B Lv Dv
        batch.sync = torch.stack([_pad(r.sync.float(), ls) if r.sync is not None
                                  else ref.sync.new_zeros(ls, ref.sync.shape[1]).float()
                                  for r in records])                         # B Ls Ds
    if has_text.any():
        ref = next(r for r in records if r.text is not None)
        lt = max(r.text.shape[0] for r in records if r.text is not None)
        batch.text = torch.stack([_pad(r.text.float(), lt) if r.text is not None
                                  else ref.text.new_zeros(lt, ref.text.shape[1]).float()
                                  for r in records])                         # B Lt Dt
        batch.text_mask = torch.stack([_pad(r.text_mask.bool(), lt) if r.text is not None
                                       else torch.zeros(lt, dtype=torch.bool) for r in records])
        # a padded-out (absent) caption still needs one visible key for attention
        batch.text_mask[~has_text, 0] = True
    return batch


class BatchOrder:
    """Deterministic, resumable, rank-sharded order of sample indices.

    Epoch e shuffles all n indices with seed + e; each global batch of batch_size·world indices is
    split so rank r takes its own batch_size slice. The position (epoch, batch) is the data state
    a checkpoint stores; incomplete tail batches are dropped so every rank steps together.
    """

    def __init__(self, n: int, batch_size: int, *, seed: int = 0, rank: int = 0, world: int = 1,
                 shuffle: bool = True) -> None:
        if batch_size <= 0 or world <= 0 or not 0 <= rank < world:
            raise ValueError(f"BatchOrder: bad batch_size={batch_size}, rank={rank}, world={world}")
        if n < batch_size * world:
            raise ValueError(f"the dataset has {n} samples but one global batch needs "
                             f"{batch_size} x {world} ranks = {batch_size * world}; "
                             "lower --batch-size or add data")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.shuffle = shuffle
        self.per_epoch = n // (batch_size * world)
        self.epoch = 0
        self.batch = 0

    def _perm(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.n, generator=g)

    def _indices(self, epoch: int, batch: int) -> list[int]:
        """This rank's indices of batch `batch` in epoch `epoch` (subclasses order batches otherwise)."""
        start = batch * self.batch_size * self.world + self.rank * self.batch_size
        return self._perm(epoch)[start:start + self.batch_size].tolist()

    def next_indices(self) -> list[int]:
        """The indices of this rank's next batch; advances the position."""
        if self.batch >= self.per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
        idx = self._indices(self.epoch, self.batch)
        self.batch += 1
        return idx

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch, "n": self.n, "seed": self.seed,
                "global_batch": self.batch_size * self.world}

    def load_state_dict(self, state: Mapping) -> None:
        if state["n"] != self.n:
            raise ValueError(f"the checkpoint was trained on {state['n']} samples, this dataset has {self.n}; "
                             "resume with the same data (the same features)")
        g = int(state.get("global_batch", self.batch_size * self.world))
        if g != self.batch_size * self.world:
            raise ValueError(f"the checkpoint was trained with a global batch of {g} clips, this run has "
                             f"{self.batch_size} x {self.world} ranks = {self.batch_size * self.world}; "
                             f"resume with --batch-size {g} (any number of ranks that divides it)")
        self.epoch, self.batch, self.seed = int(state["epoch"]), int(state["batch"]), int(state["seed"])


class LengthBucketedOrder(BatchOrder):
    """Global batches of clips with similar lengths, split across ranks, seeded and resumable.

    A random batch is padded to its longest clip, so with clips of 2–12 s much of the work goes to
    padding. Per epoch e (seed + e): shuffle all clips, cut the order into pools of `pool` global
    batches, sort each pool by length, cut it into global batches of batch_size·world and shuffle
    the batches; rank r takes slice r of each. Position, resume and the epoch rollover are
    `BatchOrder`'s; every clip is seen once per epoch (the tail that fills no batch is dropped).
    """

    def __init__(self, lengths: Sequence[float], batch_size: int, *, seed: int = 0, rank: int = 0,
                 world: int = 1, pool: int = 8) -> None:
        if pool <= 0:
            raise ValueError(f"LengthBucketedOrder needs a positive pool, got {pool}")
        super().__init__(len(lengths), batch_size, seed=seed, rank=rank, world=world)
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.float64)
        self.pool = pool
        self._cache: tuple[int, list[list[int]]] | None = None

    def _batches(self, epoch: int) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        g = torch.Generator().manual_seed(self.seed + epoch)
        size = self.batch_size * self.world
        perm = torch.randperm(self.n, generator=g)[: self.per_epoch * size]
        batches = []
        for start in range(0, len(perm), self.pool * size):
            chunk = perm[start:start + self.pool * size]
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches += [chunk[i:i + size].tolist() for i in range(0, len(chunk), size)]
        order = torch.randperm(len(batches), generator=g).tolist()
        self._cache = (epoch, [batches[i] for i in order])
        return self._cache[1]

    def _indices(self, epoch: int, batch: int) -> list[int]:
        return self._batches(epoch)[batch][self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
