"""Audio training sets for the codec trainers (`train vae`, `train vocoder`): descriptions -> waves.

    synthetic:N[,SECONDS]     N clips of the synthetic world (the codec seed range of train-tiny;
                              SECONDS fixes their length, default: the world's own 2-12 s)
    audio:DIR                 every audio file under DIR (recursively)
    videos:DIR                the audio track of every video file in DIR (as `extract` reads them)
    audiocaps:CSV[,AUDIO_DIR] the audio files an AudioCaps-style CSV names (captions are unused)

Every clip is resampled to the codec rate and kept in memory as float16 [Ch,T] (Ch 1 or 2, the
file's own channels up to two). Unreadable files are skipped with a warning; a description that
yields no clip is an error. The trainers crop fixed-length segments (`clips.ClipBatches`).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from .sources import AUDIO_SUFFIXES, VIDEO_SUFFIXES, read_caption_csv

__all__ = ["AudioClips", "parse_audio_spec", "load_audio_clips", "AUDIO_KINDS"]

log = logging.getLogger(__name__)

AUDIO_KINDS = ("synthetic", "audio", "videos", "audiocaps")


class AudioClips:
    """A list of waves [Ch,T] (float16 storage) -> items as float32 [Ch,T] (what ClipBatches crops)."""

    def __init__(self, waves: list[torch.Tensor], sources: list[str]) -> None:
        if not waves:
            raise ValueError("no audio clips to train on")
        self.waves, self.sources = waves, sources

    def __len__(self) -> int:
        return len(self.waves)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.waves[i].float()

    @property
    def samples(self) -> int:
        return sum(w.shape[-1] for w in self.waves)


def parse_audio_spec(spec: str) -> tuple[str, list[str]]:
    """"kind:arg1,arg2" -> (kind, [arg1, arg2]), checking the kind and its arguments."""
    kind, _, rest = spec.partition(":")
    if kind not in AUDIO_KINDS or not rest:
        raise ValueError(f"bad audio data description {spec!r}; use synthetic:N[,SECONDS], audio:DIR, "
                         "videos:DIR or audiocaps:CSV[,AUDIO_DIR]")
    args = rest.split(",")
    if kind == "synthetic":
        try:
            n = int(args[0])
            seconds = float(args[1]) if len(args) > 1 else None
        except ValueError as e:
            raise ValueError(f"{spec}: synthetic:N[,SECONDS] takes a clip count and an optional length") from e
        if n <= 0 or (seconds is not None and not 0.5 <= seconds <= 60):
            raise ValueError(f"{spec}: need N > 0 clips and SECONDS in [0.5, 60]")
    elif not Path(args[0]).exists():
        raise ValueError(f"{spec}: {args[0]} does not exist")
    return kind, args


def _read(path: Path, sample_rate: int) -> torch.Tensor:
    from ..io import read_audio
    wave, _ = read_audio(path, sample_rate=sample_rate)                       # Ch T
    return wave[:2].half()


def _files(paths: list[Path], sample_rate: int, what: str) -> tuple[list[torch.Tensor], list[str]]:
    from ..io import MediaError
    waves, sources = [], []
    for path in paths:
        try:
            waves.append(_read(path, sample_rate))
            sources.append(f"{what}/{path.name}")
        except (MediaError, ValueError) as err:
            log.warning("%s: skipping %s: %s", what, path.name, err)
    return waves, sources


def _synthetic(n: int, seconds: float | None, seed: int, sample_rate: int) -> tuple[list[torch.Tensor], list[str]]:
    from .tiny_codec import codec_audio
    waves = [codec_audio(i, seed=seed, duration=seconds, sample_rate=sample_rate) for i in range(n)]
    return waves, [f"synthetic/{seed}/{i}" for i in range(n)]


def load_audio_clips(specs: list[str], *, sample_rate: int, seed: int = 0) -> AudioClips:
    """Data descriptions (see the module docstring) -> every clip of all of them, in order."""
    parsed = [(spec, *parse_audio_spec(spec)) for spec in specs]  # all checked before slow work
    waves: list[torch.Tensor] = []
    sources: list[str] = []
    for spec, kind, args in parsed:
        if kind == "synthetic":
            w, s = _synthetic(int(args[0]), float(args[1]) if len(args) > 1 else None, seed, sample_rate)
        elif kind == "audio":
            root = Path(args[0])
            files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            w, s = _files(files, sample_rate, "audio")
        elif kind == "videos":
            root = Path(args[0])
            files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            w, s = _files(files, sample_rate, "videos")
        else:
            base = Path(args[1]) if len(args) > 1 else Path(args[0]).parent
            files = []
            for name in read_caption_csv(args[0]):
                found = next((c for c in [base / name, *(base / f"{name}{x}" for x in AUDIO_SUFFIXES)]
                              if c.is_file()), None)
                if found is None:
                    log.warning("audiocaps: skipping %r: no such audio file in %s", name, base)
                else:
                    files.append(found)
            w, s = _files(files, sample_rate, "audiocaps")
        if not w:
            raise ValueError(f"{spec}: no readable audio found (suffixes {', '.join(AUDIO_SUFFIXES)} for audio, "
                             f"{', '.join(VIDEO_SUFFIXES)} for videos)")
        log.info("%s: %d clip(s), %.0f s", spec, len(w), sum(x.shape[-1] for x in w) / sample_rate)
        waves += w
        sources += s
    return AudioClips(waves, sources)
