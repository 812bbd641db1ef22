"""Feature shards: what `python -m kf_core extract` writes and the flow trainer reads.

One shard is a safetensors file. Sample i's tensors are stored under "i/<name>":
  latent_mean, latent_std  [La, C]   codec posterior statistics, already in the codec's
                                     normalised latent space (training samples x1 = mean + std·ε)
  visual [Lv, Dv], sync [Ls, Ds]     frozen video features (absent for audio-text pairs)
  text [Lt, Dt], text_mask [Lt]      frozen text features (absent when there is no caption)
The metadata holds "format", "count", "codec" (sample_rate, hop, latent_downsample) and "samples",
a JSON list of {duration, seconds_start, seconds_total, caption, source} per sample.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..loading.state import CheckpointError, save_state_dict

__all__ = ["FEATURE_NAMES", "FeatureRecord", "write_shard", "FeatureShards"]

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


class FeatureShards:
    """All samples of one or more shards (or folders of shards) as an indexable dataset of FeatureRecord."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        from safetensors import safe_open
        files: list[Path] = []
        for p in map(Path, paths):
            files.extend(sorted(p.glob("*.safetensors")) if p.is_dir() else [p])
        if not files:
            raise FileNotFoundError(f"no feature shards (*.safetensors) found in {', '.join(map(str, paths))}; "
                                    "write them with `python -m kf_core extract`")
        self._index: list[tuple[int, int]] = []
        self._tensors: list[dict[str, torch.Tensor]] = []
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
                # shards are small (features, not video) so they are read once into memory
                self._tensors.append({k: h.get_tensor(k) for k in h.keys()})
            samples = json.loads(meta["samples"])
            self.samples.extend(samples)
            self._index.extend((fi, i) for i in range(len(samples)))

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, idx: int) -> FeatureRecord:
        fi, i = self._index[idx]
        t = self._tensors[fi]
        m = self.samples[idx]
        parts = {name: t.get(f"{i}/{name}") for name in FEATURE_NAMES}
        return FeatureRecord(duration=m["duration"], seconds_start=m["seconds_start"],
                             seconds_total=m["seconds_total"], caption=m.get("caption", ""),
                             source=m.get("source", ""), **parts)
