"""Feature shards: what `python -m kf_core extract` writes and the flow trainer reads.

One shard is a safetensors file. Sample i's tensors are stored under "i/<name>":
  latent_mean, latent_std  [La, C]   codec posterior statistics, already in the codec's
                                     normalised latent space (training samples x1 = mean + std·ε)
  visual [Lv, Dv], sync [Ls, Ds]     frozen video features (absent for audio-text pairs)
  text [Lt, Dt], text_mask [Lt]      frozen text features (absent when there is no caption)
The metadata holds "format", "count", "codec" (sample_rate, hop, latent_downsample) and "samples",
a JSON list of {duration, seconds_start, seconds_total, caption, source} per sample.

A folder written by `extract_dataset` also holds `manifest.json` (the shard list, the item cursor,
skipped sources); a folder with a manifest is read through it, so a leftover of an interrupted run
is never trained on.
"""
from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from ..loading.state import CheckpointError, save_state_dict

__all__ = ["FEATURE_NAMES", "FeatureRecord", "write_shard", "FeatureShards", "MANIFEST", "shard_files"]

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"

SHARD_FORMAT = "kf-features-v1"
FEATURE_NAMES = ("latent_mean", "latent_std", "visual", "sync", "text", "text_mask")


@dataclass
class FeatureRecord:
    """One clip's features (shapes in the module docstring) and its timing."""

    latent_mean: torch.Tensor
    latent_std: torch.Tensor
    duration: float
    seconds_start: float = 0.0
    seconds_total: float | None = None
    visual: torch.Tensor | None = None
    sync: torch.Tensor | None = None
    text: torch.Tensor | None = None
    text_mask: torch.Tensor | None = None
    caption: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.latent_mean.shape != self.latent_std.shape or self.latent_mean.dim() != 2:
            raise ValueError(f"latent_mean and latent_std must both be [La, C], got "
                             f"{tuple(self.latent_mean.shape)} and {tuple(self.latent_std.shape)}")
        if (self.visual is None) != (self.sync is None):
            raise ValueError("a record has either both visual and sync features or neither")
        if self.text is not None and self.text_mask is None:
            self.text_mask = torch.ones(self.text.shape[0], dtype=torch.bool)
        if self.seconds_total is None:
            self.seconds_total = self.seconds_start + self.duration


def write_shard(records: Sequence[FeatureRecord], path: str | Path, *, codec: Mapping[str, int]) -> Path:
    """Records -> one safetensors shard at `path` (atomic)."""
    tensors: dict[str, torch.Tensor] = {}
    meta = []
    for i, r in enumerate(records):
        for name in FEATURE_NAMES:
            t = getattr(r, name)
            if t is not None:
                tensors[f"{i}/{name}"] = t.detach().cpu().contiguous()
        meta.append({"duration": float(r.duration), "seconds_start": float(r.seconds_start),
                     "seconds_total": float(r.seconds_total), "caption": r.caption, "source": r.source})
    info = {"format": SHARD_FORMAT, "count": str(len(records)),
            "codec": json.dumps(dict(codec), sort_keys=True), "samples": json.dumps(meta)}
    return save_state_dict(tensors, path, metadata=info)


def shard_files(path: Path) -> list[Path]:
    """A shard file, or a folder of shards (through its manifest when it has one) -> shard paths."""
    if not path.is_dir():
        return [path]
    manifest = path / MANIFEST
    if not manifest.is_file():
        return sorted(path.glob("*.safetensors"))
    m = json.loads(manifest.read_text())
    if not m.get("done"):
        log.warning("%s: the extraction is unfinished (item %d of %d); using its %d records so far",
                    path, m["cursor"], m["items"], m["records"])
    return [path / s["file"] for s in m["shards"]]


class FeatureShards:
    """All samples of one or more shards (or folders of shards) as an indexable dataset of FeatureRecord.

    Only the shards' headers are read up front; a record's tensors are read from the memory-mapped
    file when it is asked for (the most recently used `open_shards` files stay open), so a dataset
    far larger than memory trains the same way as a small one.
    """

    def __init__(self, paths: Sequence[str | Path], *, open_shards: int = 64) -> None:
        files = [f for p in map(Path, paths) for f in shard_files(p)]
        if not files:
            raise FileNotFoundError(f"no feature shards (*.safetensors) found in {', '.join(map(str, paths))}; "
                                    "write them with `python -m kf_core extract`")
        self._index: list[tuple[int, int]] = []
        self._files = files
        self._keys: list[set[str]] = []
        self._open: OrderedDict[int, object] = OrderedDict()
        self._max_open = max(1, open_shards)
        self.samples: list[dict] = []
        self.codec: dict | None = None
        for fi, f in enumerate(files):
            with safe_open(str(f), framework="pt") as h:
                meta = h.metadata() or {}
                if meta.get("format") != SHARD_FORMAT:
                    raise CheckpointError(f"{f} is not a {SHARD_FORMAT} feature shard; "
                                          "write shards with `python -m kf_core extract`")
                codec = json.loads(meta["codec"])
                if self.codec is not None and codec != self.codec:
                    raise ValueError(f"{f} was extracted with codec {codec}, other shards with {self.codec}; "
                                     "train on shards from one codec")
                self.codec = codec
                self._keys.append(set(h.keys()))
            samples = json.loads(meta["samples"])
            self.samples.extend(samples)
            self._index.extend((fi, i) for i in range(len(samples)))

    def __len__(self) -> int:
        return len(self._index)

    @property
    def durations(self) -> list[float]:
        """Every record's duration (s), from the headers (no tensor is read)."""
        return [float(m["duration"]) for m in self.samples]

    def _handle(self, fi: int):
        h = self._open.pop(fi, None)
        if h is None:
            h = safe_open(str(self._files[fi]), framework="pt")
            if len(self._open) >= self._max_open:
                self._open.popitem(last=False)
        self._open[fi] = h
        return h

    def __getitem__(self, idx: int) -> FeatureRecord:
        fi, i = self._index[idx]
        h, keys = self._handle(fi), self._keys[fi]
        m = self.samples[idx]
        parts = {name: h.get_tensor(f"{i}/{name}") if f"{i}/{name}" in keys else None for name in FEATURE_NAMES}
        return FeatureRecord(duration=m["duration"], seconds_start=m["seconds_start"],
                             seconds_total=m["seconds_total"], caption=m.get("caption", ""),
                             source=m.get("source", ""), **parts)
