"""Training data sources for `extract`: dataset descriptions -> work items -> timed Clips.

Descriptions (several may be mixed in one run):
  synthetic:N[,long=P]        N clips of the procedural world (kf_core.data.synthetic); a fraction P
                              of them are long (15–30 s) sources cut into windows
  videos:DIR[,captions.csv]   every video under DIR (recursive; audio track = target) + optional CSV
                              "file,caption" (file = relative path, name or stem)
  vggsound:CSV,DIR[,SPLIT]    VGGSound's header-less CSV (youtube_id, start s, label, split) and its
                              clips in DIR, named ID_START6 / ID_START / ID (+ a video suffix)
  audiocaps:CSV[,AUDIO_DIR]   audio-text pairs, CSV "file,caption" (AudioCaps-like layouts)

A description expands to `Item`s (one source file or synthetic index each; picklable, so workers
can take them) and each item to one or more `Clip`s: sources longer than the window are cut into
windows (paper §5: "we split longer videos and audio into 10-second segments") that carry their
true place in the source — seconds_start = where the window starts, seconds_total = the source's
duration — exactly as `long_video.py` conditions the windows of a long generation. Window starts
sit on whole latent tokens, as at inference. Frames reach the encoders through the same timestamp
sampling the pipeline uses (`kf_core.io`).

Shape legend: C channels, T samples, N frames.
"""
from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import SeqConfig
from ..data.dataset import split_seed
from ..data.synthetic import make_clip
from ..io import MediaError, frames_from_images, probe, read_audio, sample_streams, streams_for

__all__ = ["Clip", "Windowing", "NO_WINDOWS", "window_spans", "Item", "parse_spec", "read_caption_csv",
           "list_items", "item_clips", "synthetic_clip", "synthetic_clips", "video_folder_clips",
           "audio_caption_clips", "VIDEO_SUFFIXES", "AUDIO_SUFFIXES"]

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
KINDS = ("synthetic", "videos", "vggsound", "audiocaps", "shards")
LONG_SECONDS = (15.0, 30.0)  # duration range of the synthetic world's long sources


@dataclass
class Clip:
    """One training example before encoding: audio, optional frames and caption, its place in the source."""

    wave: torch.Tensor                       # T mono, or 2 T stereo, at the codec's sample rate
    duration: float
    visual_frames: torch.Tensor | None = None  # N 3 H W at visual_fps, in the form visual_fn takes
    sync_frames: torch.Tensor | None = None    # N 3 S S at sync_fps, in the form sync_fn takes
    caption: str | None = None
    seconds_start: float = 0.0
    seconds_total: float | None = None
    source: str = ""


@dataclass(frozen=True)
class Windowing:
    """How sources longer than `window` seconds are cut: windows every `hop` s (None: back to back),
    the last one ending at the source's end or dropped when shorter than `min_window`."""

    window: float | None = 10.0   # None: never cut
    hop: float | None = None
    min_window: float = 2.0

    def __post_init__(self) -> None:
        low = SeqConfig(1.0).min_duration
        if self.window is not None:
            if self.window < low:
                raise ValueError(f"--window must be at least one sync segment ({low:.2f} s), got {self.window}")
            if self.hop is not None and not 0 < self.hop <= self.window:
                raise ValueError(f"--hop must be in (0, window = {self.window}] s, got {self.hop}")
            if not low <= self.min_window <= self.window:
                raise ValueError(f"--min-window must be in [{low:.2f}, {self.window}] s, got {self.min_window}")

    def to_dict(self) -> dict:
        return {"window": self.window, "hop": self.hop, "min_window": self.min_window}


NO_WINDOWS = Windowing(window=None)


def window_spans(duration: float, windowing: Windowing, token_seconds: float) -> list[tuple[float, float]]:
    """A source of `duration` s -> [(start, span)] s; starts are whole latent tokens (as inference places
    its windows), a source no longer than the window is one span (0, duration)."""
    w = windowing
    if w.window is None or duration <= w.window + 1e-6:
        return [(0.0, float(duration))]
    hop = w.hop if w.hop is not None else w.window
    spans, k = [], 0
    while True:
        start = round(k * hop / token_seconds) * token_seconds
        span = min(w.window, duration - start)
        if span < w.min_window - 1e-9:
            break
        spans.append((float(start), float(span)))
        if start + span >= duration - 1e-6:
            break
        k += 1
    return spans


@dataclass(frozen=True)
class Item:
    """One unit of work: a synthetic index or a source file (picklable, so workers can take it)."""

    kind: str                  # "synthetic" | "video" | "audio"
    name: str                  # the records' `source`, e.g. "videos/a.mp4" (windows add "@start")
    path: str | None = None
    caption: str | None = None
    index: int = 0
    seed: int = 0
    long_fraction: float = 0.0


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """"kind:arg1,arg2" -> (kind, [arg1, arg2]), checking the kind."""
    kind, _, rest = spec.partition(":")
    if kind not in KINDS or not rest:
        raise ValueError(f"bad dataset description {spec!r}; use synthetic:N[,long=P], videos:DIR[,captions.csv], "
                         "vggsound:CSV,DIR[,SPLIT], audiocaps:CSV[,AUDIO_DIR] or shards:DIR")
    return kind, rest.split(",")


def read_caption_csv(path: str | Path) -> dict[str, str]:
    """CSV with a header naming a file column (file/path/youtube_id/audiocap_id) and a caption column."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} has no rows")
    keys = {k.lower(): k for k in rows[0]}
    file_col = next((keys[k] for k in ("file", "path", "filename", "youtube_id", "audiocap_id", "video") if k in keys), None)
    cap_col = next((keys[k] for k in ("caption", "label", "text") if k in keys), None)
    if file_col is None or cap_col is None:
        raise ValueError(f"{path}: need a file column (file/path/youtube_id) and a caption column "
                         f"(caption/label/text); found {list(rows[0])}")
    return {r[file_col]: r[cap_col] for r in rows}


def _synthetic_items(args: list[str], seed: int) -> list[Item]:
    try:
        n = int(args[0])
        opts = dict(a.split("=", 1) for a in args[1:])
        long_fraction = float(opts.pop("long", 0.0))
    except ValueError as e:
        raise ValueError(f"synthetic:{','.join(args)}: expected synthetic:N[,long=P] ({e})") from e
    if n <= 0 or opts or not 0.0 <= long_fraction <= 1.0:
        raise ValueError(f"synthetic:{','.join(args)}: need N > 0 clips and long=P in [0, 1], no other options")
    return [Item("synthetic", f"synthetic/train/{seed}/{i}", index=i, seed=seed, long_fraction=long_fraction)
            for i in range(n)]


def _video_items(args: list[str]) -> list[Item]:
    folder = Path(args[0])
    if not folder.is_dir():
        raise ValueError(f"videos:{folder}: not a folder; give a folder of video files")
    captions = read_caption_csv(args[1]) if len(args) > 1 else {}
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"videos:{folder}: no files with suffixes {', '.join(VIDEO_SUFFIXES)}")
    items = []
    for p in files:
        rel = p.relative_to(folder).as_posix()
        cap = next((captions[k] for k in (rel, p.name, p.stem) if k in captions), None)
        items.append(Item("video", f"videos/{rel}", path=str(p), caption=cap))
    return items


def _vggsound_items(args: list[str]) -> tuple[list[Item], list[dict]]:
    if len(args) < 2:
        raise ValueError("vggsound: give vggsound:CSV,VIDEO_DIR[,SPLIT]")
    csv_path, folder = Path(args[0]), Path(args[1])
    split = args[2] if len(args) > 2 else None
    if not folder.is_dir():
        raise ValueError(f"vggsound: {folder} is not a folder of clips")
    by_stem: dict[str, Path] = {}
    for p in folder.rglob("*"):
        if p.suffix.lower() in VIDEO_SUFFIXES:
            by_stem.setdefault(p.stem, p)
    items, skipped = [], []
    with open(csv_path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if len(row) < 3 or not row[1].strip().lstrip("-").isdigit():
                continue  # a header or a malformed line
            vid, start, label = row[0].strip(), int(row[1]), row[2].strip()
            if split is not None and (len(row) < 4 or row[3].strip() != split):
                continue
            path = next((by_stem[k] for k in (f"{vid}_{start:06d}", f"{vid}_{start}", vid) if k in by_stem), None)
            if path is None:
                skipped.append({"source": f"vggsound/{vid}_{start:06d}", "reason": f"no video file in {folder}"})
                continue
            items.append(Item("video", f"vggsound/{path.name}", path=str(path), caption=label))
    if not items and not skipped:
        raise ValueError(f"vggsound: {csv_path} has no rows (youtube_id, start, label[, split])"
                         + (f" in split {split!r}" if split else ""))
    return items, skipped


def _audio_items(args: list[str]) -> tuple[list[Item], list[dict]]:
    csv_path = Path(args[0])
    base = Path(args[1]) if len(args) > 1 else csv_path.parent
    items, skipped = [], []
    for name, caption in read_caption_csv(csv_path).items():
        path = next((c for c in [base / name, *(base / f"{name}{s}" for s in AUDIO_SUFFIXES)] if c.is_file()), None)
        if path is None:
            skipped.append({"source": f"audiocaps/{name}", "reason": f"no such audio file in {base}"})
            continue
        items.append(Item("audio", f"audiocaps/{path.name}", path=str(path), caption=caption))
    return items, skipped


def list_items(spec: str, seed: int = 0) -> tuple[list[Item], list[dict]]:
    """A dataset description -> (work items in a fixed order, sources skipped already: {source, reason})."""
    kind, args = parse_spec(spec)
    if kind == "synthetic":
        return _synthetic_items(args, seed), []
    if kind == "videos":
        return _video_items(args), []
    if kind == "vggsound":
        return _vggsound_items(args)
    if kind == "audiocaps":
        return _audio_items(args)
    raise ValueError(f"{spec}: feature shards are read directly by `train --data shards:DIR`; "
                     "extract reads synthetic:, videos:, vggsound: and audiocaps: descriptions")


def _whole_tokens(wave: torch.Tensor, seq: SeqConfig) -> torch.Tensor:
    """[C, T] -> [C, decoded_samples]: zero-padded or cut to whole latent tokens (as the decoder makes)."""
    n = seq.decoded_samples
    return torch.nn.functional.pad(wave, (0, max(0, n - wave.shape[-1])))[..., :n]


def _seq(duration: float, cfg) -> SeqConfig:
    """Duration (s) + a codec config (sample_rate, hop, latent_downsample) -> SeqConfig at its rates."""
    return SeqConfig(duration, sample_rate=cfg.sample_rate, hop=cfg.hop, latent_downsample=cfg.latent_downsample)


def _windows(wave: torch.Tensor, total: float, cfg, windowing: Windowing):
    """Source audio [C, T] of `total` s -> (start, span, seq, window audio [C, whole tokens]) per window."""
    for start, span in window_spans(total, windowing, cfg.hop * cfg.latent_downsample / cfg.sample_rate):
        seq = _seq(span, cfg)
        s0 = int(round(start * cfg.sample_rate))        # a whole number of latent tokens
        yield start, span, seq, _whole_tokens(wave[..., s0:], seq)


def _name(base: str, start: float, n_windows: int) -> str:
    return base if n_windows == 1 else f"{base}@{start:.3f}"


def _long_duration(index: int, seed: int, long_fraction: float,
                   long_seconds: tuple[float, float] = LONG_SECONDS) -> float | None:
    """Whether synthetic item `index` is a long source, and its length (s): a pure function of (seed, index)."""
    if long_fraction <= 0:
        return None
    rng = np.random.default_rng([seed, index, 0x109])
    if rng.random() >= long_fraction:
        return None
    return round(float(rng.uniform(*long_seconds)), 2)


def synthetic_clip(index: int, *, seed: int, visual_size: int, sync_size: int, sample_rate: int = 44100,
                   hop: int = 512, latent_downsample: int = 2, split: str = "train",
                   duration: float | None = None, sync_mode: str = "crop") -> Clip:
    """One synthetic clip (item `index` of `split`), whole -> Clip ready for `FeatureExtractor.record`
    (`sync_mode`: how the sync encoder wants frames fitted, its config's `resize`)."""
    cfg = _Rates(sample_rate, hop, latent_downsample)
    return next(_synthetic_windows(index, seed=seed, visual_size=visual_size, sync_size=sync_size, cfg=cfg,
                                   split=split, duration=duration, windowing=NO_WINDOWS, sync_mode=sync_mode))


@dataclass(frozen=True)
class _Rates:
    sample_rate: int
    hop: int
    latent_downsample: int


def _synthetic_windows(index: int, *, seed: int, visual_size: int, sync_size: int, cfg, split: str = "train",
                       duration: float | None = None, windowing: Windowing = Windowing(),
                       long_fraction: float = 0.0, long_seconds: tuple[float, float] = LONG_SECONDS,
                       sync_mode: str = "crop") -> Iterator[Clip]:
    if duration is None:
        duration = _long_duration(index, seed, long_fraction, long_seconds)
    c = make_clip(split_seed(index, seed, split), duration=duration, sample_rate=cfg.sample_rate)
    wave = torch.from_numpy(c.audio)                                           # 2 T
    images = torch.from_numpy(c.frames)                                        # N H W 3 uint8
    windows = list(_windows(wave, c.duration, cfg, windowing))
    for start, span, seq, part in windows:
        streams = streams_for(seq, visual_size=visual_size, sync_size=sync_size, sync_mode=sync_mode)
        frames = {name: frames_from_images(images, c.fps, spec.fps, size=spec.size, mode=spec.mode,
                                           count=spec.count, duration=span, start=start, min_count=spec.min_count)
                  for name, spec in streams.items()}
        yield Clip(wave=part, duration=span, visual_frames=frames["visual"], sync_frames=frames["sync"],
                   caption=c.caption, seconds_start=start, seconds_total=c.duration,
                   source=_name(f"synthetic/{split}/{seed}/{index}", start, len(windows)))


def synthetic_clips(n: int, *, seed: int, visual_size: int, sync_size: int, sample_rate: int = 44100,
                    hop: int = 512, latent_downsample: int = 2, split: str = "train", start: int = 0,
                    long_fraction: float = 0.0, long_seconds: tuple[float, float] = LONG_SECONDS,
                    windowing: Windowing = Windowing(), sync_mode: str = "crop") -> Iterator[Clip]:
    """Synthetic items start..n-1 of `split` -> Clips (stereo audio padded to whole latent tokens, uint8
    frames sampled by time at 8 fps and 25 fps). A fraction `long_fraction` of the items (drawn from
    (seed, index)) are long sources of `long_seconds` (default 15–30 s) and, like any source longer
    than the window, come as windows with their true seconds_start / seconds_total, so the start
    embeddings are trained."""
    cfg = _Rates(sample_rate, hop, latent_downsample)
    for i in range(start, n):
        yield from _synthetic_windows(i, seed=seed, visual_size=visual_size, sync_size=sync_size, cfg=cfg,
                                      split=split, windowing=windowing, long_fraction=long_fraction,
                                      long_seconds=long_seconds, sync_mode=sync_mode)


def _video_windows(item: Item, extractor, windowing: Windowing) -> Iterator[Clip]:
    cfg = extractor.codec_cfg
    info = probe(item.path)
    if not info.has_audio:
        raise MediaError(item.path, "has no audio track, so there is nothing to learn from", "add videos with sound")
    wave, _ = read_audio(item.path, sample_rate=cfg.sample_rate)                  # C T
    total = min(info.duration, wave.shape[-1] / cfg.sample_rate)
    _seq(total, cfg)  # a clip shorter than one sync segment is an error here, before decoding frames
    windows = list(_windows(wave, total, cfg, windowing))
    for start, span, seq, part in windows:
        specs = streams_for(seq, visual_size=extractor.visual_size, sync_size=extractor.sync_size,
                            sync_mode=extractor.sync_mode)
        frames = sample_streams(item.path, specs, duration=span, start=start)
        yield Clip(wave=part, duration=span, visual_frames=frames["visual"], sync_frames=frames["sync"],
                   caption=item.caption, seconds_start=start, seconds_total=total,
                   source=_name(item.name, start, len(windows)))


def _audio_windows(item: Item, extractor, windowing: Windowing) -> Iterator[Clip]:
    cfg = extractor.codec_cfg
    wave, _ = read_audio(item.path, sample_rate=cfg.sample_rate)                  # C T
    total = wave.shape[-1] / cfg.sample_rate
    _seq(total, cfg)
    windows = list(_windows(wave, total, cfg, windowing))
    for start, span, seq, part in windows:
        yield Clip(wave=part, duration=span, caption=item.caption, seconds_start=start, seconds_total=total,
                   source=_name(item.name, start, len(windows)))


def item_clips(item: Item, extractor, windowing: Windowing = Windowing()) -> list[Clip]:
    """One item -> its Clips (windows). A bad source raises MediaError or ValueError saying why."""
    if item.kind == "synthetic":
        cfg = extractor.codec_cfg
        return list(_synthetic_windows(item.index, seed=item.seed, visual_size=extractor.visual_size,
                                       sync_size=extractor.sync_size, cfg=cfg, windowing=windowing,
                                       long_fraction=item.long_fraction, sync_mode=extractor.sync_mode))
    if item.kind == "video":
        return list(_video_windows(item, extractor, windowing))
    if item.kind == "audio":
        return list(_audio_windows(item, extractor, windowing))
    raise ValueError(f"unknown item kind {item.kind!r}")


def _usable(kind: str, spec: str, items: list[Item], extractor, windowing: Windowing) -> Iterator[Clip]:
    used = 0
    for item in items:
        try:
            clips = item_clips(item, extractor, windowing)
        except (MediaError, ValueError) as err:
            log.warning("%s: skipping %s: %s", kind, Path(item.path or item.name).name, err)
            continue
        used += 1
        yield from clips
    if used == 0:
        raise ValueError(f"{spec}: no usable source among {len(items)} file(s)")


def video_folder_clips(folder: str | Path, captions_csv: str | Path | None, extractor,
                       windowing: Windowing = Windowing()) -> Iterator[Clip]:
    """`videos:DIR[,captions.csv]` -> Clips of every video under DIR: the audio track is the target,
    frames are sampled by time as generation samples them. Videos without sound, unreadable files and
    clips too short for the sync encoder are skipped with a warning; no usable video raises ValueError."""
    args = [str(folder)] + ([str(captions_csv)] if captions_csv else [])
    spec = f"videos:{','.join(args)}"
    try:
        items = _video_items(args)
    except ValueError as e:
        raise ValueError(f"{e}" if "not a folder" in str(e) else f"{spec}: no usable video with sound ({e})") from e
    try:
        yield from _usable("videos", spec, items, extractor, windowing)
    except ValueError as e:
        raise ValueError(f"{spec}: no usable video with sound among {len(items)} file(s)") from e


def audio_caption_clips(csv_path: str | Path, audio_dir: str | Path | None, extractor,
                        windowing: Windowing = Windowing()) -> Iterator[Clip]:
    """`audiocaps:CSV[,AUDIO_DIR]` -> one text-only Clip (no frames) per CSV row whose audio file is found
    in AUDIO_DIR (default: the CSV's folder), as named or with an audio suffix added."""
    items, skipped = _audio_items([str(csv_path)] + ([str(audio_dir)] if audio_dir else []))
    for s in skipped:
        log.warning("audiocaps: skipping %r: %s", s["source"].split("/", 1)[1], s["reason"])
    if not items:
        raise ValueError(f"audiocaps:{csv_path}: none of its {len(skipped)} rows names an audio file found")
    yield from _usable("audiocaps", f"audiocaps:{csv_path}", items, extractor, windowing)
