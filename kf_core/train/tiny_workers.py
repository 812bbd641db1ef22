"""Worker processes for kf-tiny's data stages: synthetic clips are generated and encoded in parallel.

Every item is a pure function of its index (seeded world, frozen encoders, a fixed VAE file), so
the result does not depend on the number of workers. Workers are spawned (not forked: forking a
process whose OpenMP pool is running can hang) and build their models once from files.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

__all__ = ["parallel_map", "init_codec_worker", "codec_task", "init_feature_worker", "feature_task",
           "clip_duration", "init_plain_worker", "semantic_task", "sync_task", "init_stereo_worker", "stereo_task"]

_STATE: dict = {}


def parallel_map(fn: Callable, items: Iterable, *, workers: int, initializer: Callable, initargs: tuple
                 ) -> Iterator:
    """fn over items in order, in `workers` spawned processes (1: in this process).

    A worker whose initializer fails breaks the pool, and the error surfaces here
    (`BrokenProcessPool`, with the worker's traceback above it) instead of
    `multiprocessing.Pool` respawning the failing worker forever.
    """
    if workers <= 1:
        initializer(*initargs)
        yield from map(fn, items)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs) as pool:
        yield from map(_owned, pool.map(fn, items))


def _owned(obj):
    """A worker's result with every tensor copied into this process's own memory. A tensor that comes
    through the pool lives in shared memory holding a file descriptor open for as long as it lives,
    so keeping thousands of results (train-tiny's 3000 sync clips, a few tensors each) ran out of
    descriptors ("received 0 items of ancdata") wherever the limit is the usual 1024."""
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: _owned(getattr(obj, f.name))
                                           for f in dataclasses.fields(obj) if f.init})
    if isinstance(obj, list):
        return [_owned(x) for x in obj]
    if isinstance(obj, tuple):
        items = [_owned(x) for x in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, dict):
        return {k: _owned(v) for k, v in obj.items()}
    return obj


def _load_encoders(folder: Path, threads: int):
    from ..encoders import ClipVisionEncoder, Synchformer
    torch.set_num_threads(threads)
    clip = ClipVisionEncoder.from_file(folder / "clip.safetensors", "kf-tiny-clip").eval()
    sync = Synchformer.from_file(folder / "synchformer.safetensors").eval()
    return clip, sync


def init_codec_worker(folder: str, seed: int, duration: float, threads: int) -> None:
    clip, _ = _load_encoders(Path(folder), threads)
    _STATE.update(clip=clip, seed=seed, duration=duration)


def codec_task(index: int):
    from .tiny_codec import codec_item
    return codec_item(index, seed=_STATE["seed"], duration=_STATE["duration"], clip_encoder=_STATE["clip"])


def audio_task(args: tuple):
    """(index, seed, duration) -> the codec clip's stereo wave [2,T] fp16 (no visual features)."""
    from .tiny_codec import codec_audio
    index, seed, duration = args
    return codec_audio(index, seed=seed, duration=duration)


def init_plain_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def audio_codec_set(clips: int, *, seed: int, duration: float, workers: int, threads: int):
    """The first `clips` codec clips, audio only -> tiny_codec.CodecSet (visual features left empty), made
    by `workers` processes sharing `threads` torch threads (what the codec probes train on)."""
    from .tiny_codec import CodecSet
    audio = list(parallel_map(audio_task, [(i, seed, duration) for i in range(clips)], workers=workers,
                              initializer=init_plain_worker, initargs=(max(1, threads // max(1, workers)),)))
    return CodecSet(torch.stack(audio), torch.zeros(len(audio), 1, 1))


def semantic_task(args: tuple):
    """(index, seed, looks, split) -> tiny_semantic.SemanticItem."""
    from .tiny_semantic import semantic_item
    index, seed, looks, split = args
    return semantic_item(index, seed=seed, size=64, looks=looks, split=split)


def sync_task(args: tuple):
    """(index, seed, size, resize, looks[, split]) -> tiny_sync.SyncItem."""
    from .tiny_sync import sync_item
    index, seed, size, resize, looks, *split = args
    return sync_item(index, seed=seed, size=size, resize=resize, looks=looks, split=split[0] if split else None)


def init_stereo_worker(folder: str, seed: int, threads: int) -> None:
    from ..encoders import Synchformer
    torch.set_num_threads(threads)
    _STATE.update(sync=Synchformer.from_file(Path(folder) / "synchformer.safetensors").eval(), seed=seed)


def stereo_task(index: int):
    from .tiny_stereo import stereo_item
    return stereo_item(index, seed=_STATE["seed"], sync_encoder=_STATE["sync"])


def init_feature_worker(folder: str, work: str, seed: int, threads: int) -> None:
    from ..codec.mel_vae import MelVAE, detect_mel_vae_config
    from ..config import CODEC_PRESETS
    from ..encoders import T5TextEncoder
    from ..loading.state import load_strict, read_state_dict
    from .extract import make_extractor
    folder, work = Path(folder), Path(work)
    clip, sync = _load_encoders(folder, threads)
    sd = read_state_dict(work / "vae" / "vae.safetensors")
    vae = MelVAE(detect_mel_vae_config(sd))
    load_strict(vae, sd, what="vae.safetensors")
    stats = read_state_dict(work / "latent_stats.safetensors")
    from transformers import ByT5Tokenizer
    # read back from the shipped file exactly as load_components does
    text = T5TextEncoder.from_state_dict(read_state_dict(folder / "t5.safetensors"), ByT5Tokenizer(),
                                         what="t5.safetensors").eval()
    _STATE.update(seed=seed, extractor=make_extractor(
        vae=vae.eval(), codec_cfg=CODEC_PRESETS["44k"], latent_mean=stats["mean"], latent_std=stats["std"],
        clip=clip, sync=sync, text=text))


def clip_duration(index: int, seed: int) -> float:
    """Length (s) of DiT training clip `index`: 80 % in 2–4 s, 20 % in 4–10 s.

    Short clips teach timing at a fraction of the cost (attention and padding grow with length),
    so the hour buys more steps; the long ones keep longer clips in the training distribution
    (aligned RoPE and the per-second duration embeddings carry the rest).
    """
    import numpy as np
    rng = np.random.default_rng([seed, index, 0x71])
    low, high = (2.0, 4.0) if rng.random() < 0.8 else (4.0, 10.0)
    return round(float(rng.uniform(low, high)), 2)


def feature_task(index: int):
    from .extract import synthetic_clip
    ex = _STATE["extractor"]
    cfg = ex.codec_cfg
    clip = synthetic_clip(index, seed=_STATE["seed"], visual_size=ex.visual_size, sync_size=ex.sync_size,
                          sync_mode=ex.sync_mode,
                          sample_rate=cfg.sample_rate, hop=cfg.hop, latent_downsample=cfg.latent_downsample,
                          duration=clip_duration(index, _STATE["seed"]))
    return ex.record(clip)
