"""`python -m kf_core extract`: run the frozen encoders once over datasets and write feature shards.

The dataset descriptions and how sources become timed clips (long ones cut into windows with their
true seconds_start / seconds_total) are `train/sources.py`. The work per clip is
`FeatureExtractor.record(clip)`; the encoders and codec are injected, so the same code serves
kf-tiny's encoders, the paper's, and test doubles. `build_extractor` takes them from a model folder
(the bundled kf-tiny by default).

`extract_dataset` is the recipe for real data: source items go to `workers` spawned processes (each
builds its encoders once), records come back in item order and are written as shards of about
`shard_size` records; `manifest.json` lists the shards, the item cursor (so an interrupted run
continues where it stopped), every skipped source with its reason, and the throughput.

Mono: a stereo clip's mono target is the mean of its channels in the *linear mel* domain (then
the codec's log), the identity Mono2Stereo preserves, so generated mono mels split back into
stereo consistently (`MonoLogMel`).

Shape legend: T samples, M mel bins, F mel frames, La latent tokens, C latent channels.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from ..io import MediaError
from .features import MANIFEST, FeatureRecord, write_shard
from .distributed import DistContext, cpu_threads
from .sources import (Clip, Item, Windowing, audio_caption_clips, item_clips, list_items, parse_spec,
                      read_caption_csv, synthetic_clip, synthetic_clips, video_folder_clips)

# Clip, parse_spec, read_caption_csv and the clip iterators live in sources.py; they are re-exported
# here because extraction is where callers (train-tiny's workers, tests) have always found them.
__all__ = ["Clip", "FeatureExtractor", "MonoLogMel", "make_extractor", "build_extractor", "extract",
           "extract_dataset", "ordered_map", "MANIFEST", "synthetic_clip", "synthetic_clips", "video_folder_clips",
           "audio_caption_clips", "parse_spec", "read_caption_csv", "add_arguments", "main"]

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "kf-extract-v1"


class FeatureExtractor:
    """Clip -> FeatureRecord with the codec posterior in the normalised latent space.

    mel_fn(wave [1,T] or [1,2,T]) -> [1,M,F]; vae.encode(mel) -> posterior(.mean, .logvar) [1,C,La];
    normalise(mean, std) -> (mean', std') applies the codec's latent normalisation;
    visual_fn(frames) -> [Lv,Dv]; sync_fn(frames [1,N,3,224,224]) -> [1,Ls,Ds];
    text_fn(list[str]) -> (feats [1,Lt,Dt], mask [1,Lt]).
    """

    def __init__(self, *, mel_fn: Callable, vae, normalise: Callable, visual_fn: Callable | None = None,
                 sync_fn: Callable | None = None, text_fn: Callable | None = None) -> None:
        self.mel_fn, self.vae, self.normalise = mel_fn, vae, normalise
        self.visual_fn, self.sync_fn, self.text_fn = visual_fn, sync_fn, text_fn

    @torch.no_grad()
    def record(self, clip: Clip) -> FeatureRecord:
        mel = self.mel_fn(clip.wave[None].float())                       # 1 M F
        post = self.vae.encode(mel)
        mean, std = self.normalise(post.mean, (0.5 * post.logvar).exp())  # 1 C La
        rec = dict(latent_mean=mean[0].transpose(0, 1).contiguous(),       # La C
                   latent_std=std[0].transpose(0, 1).contiguous(),
                   duration=clip.duration, seconds_start=clip.seconds_start,
                   seconds_total=clip.seconds_total, caption=clip.caption or "", source=clip.source)
        if clip.visual_frames is not None and clip.sync_frames is not None:
            if self.visual_fn is None or self.sync_fn is None:
                raise ValueError("clips with video need visual and sync encoders; none were given")
            rec["visual"] = self.visual_fn(clip.visual_frames)             # Lv Dv
            rec["sync"] = self.sync_fn(clip.sync_frames[None])[0]           # Ls Ds
        if clip.caption:
            if self.text_fn is None:
                raise ValueError("clips with captions need a text encoder; none was given")
            feats, mask = self.text_fn([clip.caption])
            rec["text"], rec["text_mask"] = feats[0], mask[0]               # Lt Dt, Lt
        return FeatureRecord(**rec)


def extract(clips: Iterable[Clip], extractor: FeatureExtractor, out: str | Path, *, codec: dict,
            shard_size: int = 256, prefix: str = "shard") -> list[Path]:
    """Encode clips and write shards of `shard_size` records to OUT/{prefix}_{i:05d}.safetensors."""
    out = Path(out)
    written, batch = [], []

    def flush():
        if batch:
            written.append(write_shard(batch, out / f"{prefix}_{len(written):05d}.safetensors", codec=codec))
            batch.clear()

    for clip in clips:
        batch.append(extractor.record(clip))
        if len(batch) >= shard_size:
            flush()
    flush()
    log.info("wrote %d shard(s) to %s", len(written), out)
    return written


class MonoLogMel:
    """wave [B,T] -> log-mel [B,M,F]; stereo [B,2,T] -> log of the channels' mean in linear mel."""

    def __init__(self, mel) -> None:
        self.mel = mel  # kf_core.codec.mel.MelSpectrogram

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        from ..codec.mel import log_compress, log_expand
        cfg = self.mel.cfg
        if wave.dim() == 2:
            return self.mel(wave)                                              # B M F
        if wave.dim() != 3 or wave.shape[1] not in (1, 2):
            raise ValueError(f"expected waves [B, T] or [B, 1|2, T], got {tuple(wave.shape)}")
        lr = self.mel(wave.flatten(0, 1)).unflatten(0, wave.shape[:2])         # B Ch M F
        return log_compress(log_expand(lr, cfg.log).mean(1), cfg.log, cfg.log_floor)


def make_extractor(*, vae, codec_cfg, latent_mean: torch.Tensor, latent_std: torch.Tensor, clip=None,
                   sync=None, text=None) -> FeatureExtractor:
    """A Mel-VAE, its latent statistics [C] and the frozen encoders -> FeatureExtractor.

    The encoders are called exactly as the pipeline calls them (`components.VisualEncoders`):
    CLIP on uint8 frames [Lv,3,S,S], Synchformer on uint8 frames [1,Ts,3,S',S'] mapped to [-1, 1].
    """
    from ..codec.mel import MelSpectrogram
    from ..encoders import sync_frames_from_uint8
    mean = latent_mean.float().reshape(1, -1, 1)
    std = latent_std.float().reshape(1, -1, 1)

    def normalise(m: torch.Tensor, s: torch.Tensor):
        return (m - mean) / std, s / std                                       # 1 C La

    def sync_fn(frames: torch.Tensor) -> torch.Tensor:
        return sync.encode_video(sync_frames_from_uint8(frames)).float()      # 1 Ls Ds

    def text_fn(prompts: list[str]):
        feats, mask = text.encode(prompts)
        return feats.float(), (mask if mask is not None else torch.ones(feats.shape[:2], dtype=torch.bool))

    ex = FeatureExtractor(mel_fn=MonoLogMel(MelSpectrogram(codec_cfg)), vae=vae, normalise=normalise,
                          visual_fn=None if clip is None else (lambda f: clip.encode_frames(f).float()),
                          sync_fn=None if sync is None else sync_fn, text_fn=None if text is None else text_fn)
    ex.codec_cfg = codec_cfg
    ex.visual_size = None if clip is None else (clip.spec.resize_to or clip.spec.image_size)
    ex.sync_size = None if sync is None else sync.cfg.image_size
    ex.sync_mode = "crop" if sync is None else sync.cfg.resize
    return ex


def build_extractor(preset: str) -> tuple[FeatureExtractor, dict]:
    """"kf-tiny" (the bundled model) or a model folder -> (FeatureExtractor with its frozen encoders,
    Mel-VAE and latent statistics, codec layout dict for the shards)."""
    from ..components import load_components
    comps = load_components(None if preset == "kf-tiny" else preset)
    c = comps.codec
    ex = make_extractor(vae=c.vae, codec_cfg=c.cfg, latent_mean=c.latent_mean, latent_std=c.latent_std,
                        clip=comps.visual_encoders.clip, sync=comps.visual_encoders.sync,
                        text=comps.text_encoder)
    return ex, {"sample_rate": c.cfg.sample_rate, "hop": c.cfg.hop, "latent_downsample": c.cfg.latent_downsample}



# --- many workers, a manifest, a resumable cursor ----------------------------------------------------

_WORKER: dict = {}


def _init_worker(preset: str, windowing: Windowing, threads: int, extractor: FeatureExtractor | None) -> None:
    torch.set_num_threads(max(1, threads))
    _WORKER.update(extractor=extractor if extractor is not None else build_extractor(preset)[0],
                   windowing=windowing)


def _item_task(item: Item) -> tuple[list[FeatureRecord], str | None]:
    """Item -> (its records, None) or ([], why it was skipped); never raises for bad data."""
    ex = _WORKER["extractor"]
    try:
        return [ex.record(c) for c in item_clips(item, ex, _WORKER["windowing"])], None
    except (MediaError, ValueError) as err:
        return [], str(err)


def ordered_map(fn: Callable, items: list, *, workers: int, initializer: Callable, initargs: tuple,
                ahead: int = 4) -> Iterator:
    """fn over items, results in order, on `workers` spawned processes (1: in this process).

    At most `ahead` items per worker are in flight, so a list of a million files costs a few
    futures, not a million. Workers are spawned, not forked (forking a process whose OpenMP pool
    runs can hang); a failing initializer surfaces here as BrokenProcessPool.
    """
    if workers <= 1:
        initializer(*initargs)
        yield from map(fn, items)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs) as pool:
        queue: deque = deque()
        for item in items:
            queue.append(pool.submit(fn, item))
            if len(queue) >= ahead * workers:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def extract_dataset(specs: list[str], out: str | Path, *, preset: str = "kf-tiny", seed: int = 0,
                    windowing: Windowing = Windowing(), shard_size: int = 256, workers: int = 1,
                    threads: int | None = None, extractor: FeatureExtractor | None = None,
                    codec: dict | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
    """Dataset descriptions -> shards + manifest.json in OUT; -> the manifest.

    Re-running on the same OUT with the same descriptions resumes at the manifest's cursor (a finished
    extraction returns at once); other descriptions or settings in an existing OUT are an error.
    `extractor`/`codec` replace the preset's encoders (one worker only: test doubles stay in-process).
    """
    out = Path(out)
    items, skipped = [], []
    for spec in specs:  # every description is checked before any slow work starts
        found, early = list_items(spec, seed)
        items += found
        skipped += early
    if extractor is None:
        extractor, codec = build_extractor(preset)  # also checks the preset before workers start
        shared = extractor if workers <= 1 else None  # workers > 1 build their own from the preset
    elif workers > 1 or codec is None:
        raise ValueError("extract_dataset: an injected extractor runs in this process with its `codec`; "
                         "use workers=1 and pass codec=")
    else:
        shared = extractor
    settings = {"format": MANIFEST_FORMAT, "sources": list(specs), "seed": seed, "preset": preset,
                "windowing": windowing.to_dict(), "codec": codec, "items": len(items)}
    manifest = {**settings, "cursor": 0, "records": 0, "shards": [], "skipped": skipped, "done": False}
    path = out / MANIFEST
    if path.is_file():
        old = json.loads(path.read_text())
        if {k: old.get(k) for k in settings} != settings:
            raise ValueError(f"{out} already holds an extraction of other data or settings "
                             f"({old.get('sources')}, windowing {old.get('windowing')}); give a new --out")
        manifest = old
        if manifest["done"]:
            return manifest
        # items from the cursor on are done again, and so are their skips
        manifest["skipped"] = [s for s in old["skipped"] if s.get("item") is None or s["item"] < old["cursor"]]
        log.info("resuming the extraction in %s at item %d of %d", out, manifest["cursor"], len(items))
    elif out.exists() and any(out.glob("*.safetensors")):
        raise ValueError(f"{out} already holds feature shards without a {MANIFEST}; give a new --out")
    out.mkdir(parents=True, exist_ok=True)
    start_item, pending, first = manifest["cursor"], [], manifest["cursor"]
    t0, new_records, first_s, clip_s = time.perf_counter(), 0, None, 0.0
    threads = threads or max(1, cpu_threads(0, DistContext()) // max(1, workers))

    def flush(upto: int) -> None:
        nonlocal first, pending
        if pending:
            name = f"shard_{len(manifest['shards']):05d}.safetensors"
            write_shard(pending, out / name, codec=codec)  # a stray file of that name is an unlisted leftover
            manifest["shards"].append({"file": name, "records": len(pending), "items": [first, upto]})
            manifest["records"] += len(pending)
        manifest["cursor"], first, pending = upto, upto, []
        _write_json(path, manifest)

    results = ordered_map(_item_task, items[start_item:], workers=workers, initializer=_init_worker,
                          initargs=(preset, windowing, threads, shared))
    for k, (records, reason) in enumerate(results, start=start_item):
        first_s = time.perf_counter() - t0 if first_s is None else first_s
        clip_s += sum(r.duration for r in records)
        if reason is not None:
            log.warning("extract: skipping %s: %s", items[k].name, reason)
            manifest["skipped"].append({"source": items[k].name, "reason": reason, "item": k})
        pending += records
        new_records += len(records)
        if len(pending) >= shard_size or (not pending and reason is not None):
            flush(k + 1)  # (a skip with nothing unwritten moves the cursor past it)
        if progress is not None:
            progress(k + 1, len(items))
    flush(len(items))
    elapsed = time.perf_counter() - t0
    # throughput of this run, worker start-up (loading the encoders) included; first_result_s shows it
    manifest.update(done=True, seconds=round(elapsed, 2), workers=workers, first_result_s=round(first_s or 0, 2),
                    clips_per_s=round(new_records / elapsed, 3) if elapsed > 0 else None,
                    clip_seconds_per_s=round(clip_s / elapsed, 3) if elapsed > 0 else None)
    _write_json(path, manifest)
    if manifest["records"] == 0:
        raise ValueError(f"no usable source in {', '.join(specs)}: all {len(manifest['skipped'])} were skipped "
                         f"(reasons in {path})")
    return manifest


def add_arguments(p) -> None:
    p.add_argument("--data", action="append", required=True,
                   help="dataset description, repeatable: synthetic:N[,long=P], videos:DIR[,captions.csv], "
                        "vggsound:CSV,DIR[,SPLIT], audiocaps:CSV[,AUDIO_DIR]")
    p.add_argument("--preset", default="kf-tiny",
                   help="frozen encoders/codec: kf-tiny (bundled) or a model folder")
    p.add_argument("--out", required=True, help="folder for the feature shards and manifest.json")
    p.add_argument("--shard-size", type=int, default=256, help="records per shard (about)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="extraction processes (each loads the encoders)")
    p.add_argument("--threads", type=int, default=0, help="torch threads per worker (0 = cores / workers)")
    add_window_arguments(p)


def add_window_arguments(p) -> None:
    p.add_argument("--window", type=float, default=10.0,
                   help="sources longer than this (s) are cut into windows (paper §5: 10 s); 0 = never")
    p.add_argument("--hop", type=float, default=None, help="seconds between window starts (default: --window)")
    p.add_argument("--min-window", type=float, default=2.0, help="a shorter last window is dropped")


def windowing_from_args(args) -> Windowing:
    return Windowing(window=args.window or None, hop=args.hop, min_window=args.min_window)


def main(args) -> int:
    m = extract_dataset(args.data, args.out, preset=args.preset, seed=args.seed, windowing=windowing_from_args(args),
                        shard_size=args.shard_size, workers=args.workers, threads=args.threads or None)
    print(f"{m['records']} records in {len(m['shards'])} shard(s) in {args.out} from {m['items']} sources; "
          f"{len(m['skipped'])} skipped (listed in {Path(args.out) / MANIFEST}); "
          f"{m.get('clips_per_s')} clips/s with {m.get('workers')} worker(s)")
    return 0
