"""`python -m kf_core train-tiny --out DIR`: train the whole kf-tiny model on the synthetic world.

One command, one seed, about two hours on two CPU cores (recipe "full"; "smoke" proves the
plumbing in minutes). The world draws every clip's look (background, floor, colours, light,
camera, noise, compression, size, frame rate) at random and independently of its sounds, and
whole look families are held out from training, so each stage learns what makes a sound, not what
the training clips looked like. Stages, each resumable (a finished stage's output is reused when
the command is run again with the same --work folder):

  1. encoders   seeded random tiny T5 / CLIP / Synchformer (motion input, squashed 64-px frames)
  2. semantic   T5 + CLIP image tower trained together CLIP-style on (frame, caption) pairs, so a
                prompt names a sound class and an image feature says what is on screen (`tiny_semantic`)
  3. sync       the tiny Synchformer learns per-token onset presence and the pan of that moment's
                sound (`tiny_sync`), then frozen
  4. codec set  short stereo clips for the codec
  5. Mel-VAE    paper Alg. 2 (`tiny_codec.train_vae`); latent statistics from its posteriors
  6. vocoder    the Vocos-style iSTFT vocoder on the codec set (`tiny_codec.train_vocoder`), half of
                every batch from the trained Mel-VAE decoder's mels (Alg. 2 stage 4); scored against
                Griffin-Lim on held-out clips (`tiny_codec.vocoder_heldout`)
  7. Mono2Stereo pan network reading the sync tokens (`tiny_stereo`)
  8. features   variable-length synthetic clips through the frozen encoders and the VAE posterior
                into feature shards (`FeatureExtractor`, parallel workers)
  9. DiT        flow matching, paper Alg. 1 (`FlowTrainer`, length-bucketed batches), EMA weights
                exported in float16
OUT gets the model folder layout of docs/ENGINE.md (manifest.json + one file per component),
curves/*.csv, training.json and MODEL_CARD.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["TinyRecipe", "RECIPES", "train_tiny", "add_arguments", "main"]

log = logging.getLogger(__name__)

SYNC_PRESET = "kf-tiny-motion"  # 64-px squashed frames, motion input (see encoders.synchformer.motion_frames)


@dataclass(frozen=True)
class TinyRecipe:
    """Every number of a kf-tiny training run."""

    name: str
    codec_clips: int          # short clips for the Mel-VAE and the vocoder
    codec_clip_s: float
    vae_steps: int
    vae_batch: int
    m2s_steps: int
    m2s_batch: int
    sync_clips: int           # 2.56 s clips for the sync encoder's onset + pan objective
    sync_steps: int
    sync_batch: int           # 16-frame segments per step
    dit_clips: int            # variable-length clips (2–10 s) for the DiT
    dit_steps: int
    dit_batch: int
    semantic_clips: int = 1200  # 3 s clips: (frame, caption) pairs for the text and image towers
    semantic_steps: int = 1500
    semantic_batch: int = 64
    stereo_clips: int = 320   # 2.56 s clips with sync tokens for Mono2Stereo
    vocoder_steps: int = 3000
    vocoder_batch: int = 8
    vocoder_eval_clips: int = 18  # held-out clips of vocoder_eval_s scoring the vocoder against Griffin-Lim
    vocoder_eval_s: float = 5.0
    vae_preset: str = "tiny-v2"  # MEL_VAE_PRESETS key
    dit_lr: float = 1e-3
    p_drop_video: float = 0.3
    p_drop_text: float = 0.15
    ema_decay: float = 0.999

    def __post_init__(self) -> None:
        counts = {k: v for k, v in dataclasses.asdict(self).items() if isinstance(v, int) and v <= 0}
        if counts:
            raise ValueError(f"TinyRecipe {self.name!r}: these must be positive: {counts}")
        from ..codec.mel_vae import MEL_VAE_PRESETS
        if self.vae_preset not in MEL_VAE_PRESETS:
            raise ValueError(f"TinyRecipe {self.name!r}: vae_preset {self.vae_preset!r} is not one of "
                             f"{sorted(MEL_VAE_PRESETS)}")
        if self.dit_clips < self.dit_batch or self.codec_clips < self.vae_batch:
            raise ValueError(f"TinyRecipe {self.name!r}: need at least one batch of clips "
                             f"(dit_clips {self.dit_clips} < dit_batch {self.dit_batch}?)")


RECIPES: dict[str, TinyRecipe] = {
    # codec: the wider `tiny-v2` Mel-VAE on 4x the clips for 8000 steps, not v1's 320 / 3000 (eval vae-probe,
    # held-out mel L1 4.59 -> 2.68 dB, Mel-VAE -> Griffin-Lim MCD 34.8 -> 16.0; docs/experiments/vae-probe)
    "full": TinyRecipe("full", codec_clips=1280, codec_clip_s=2.0, vae_steps=8000, vae_batch=16,
                       # sync: 3000 clips, not 1500 (eval sync-probe, 600 steps of 32: held-out-look AUC 0.669
                       # from 1000 clips, 0.681 from 3000; 0.732 after 1500 steps; docs/experiments/sync-probe)
                       m2s_steps=600, m2s_batch=16, sync_clips=3000, sync_steps=1500, sync_batch=48,
                       dit_clips=1500, dit_steps=4000, dit_batch=12, vocoder_steps=3000, vocoder_batch=16),
    # the full recipe cut down: 95 min measured on 2 shared cores (docs/experiments/kf-tiny-v2-short) with
    # v1's codec stage (320 clips, 2000 Mel-VAE steps at width 32)
    "short": TinyRecipe("short", codec_clips=1280, codec_clip_s=2.0, vae_steps=4000, vae_batch=16,
                        m2s_steps=400, m2s_batch=16, sync_clips=1000, sync_steps=1000, sync_batch=32,
                        dit_clips=1200, dit_steps=3000, dit_batch=12, semantic_clips=800, semantic_steps=500,
                        semantic_batch=48, stereo_clips=240, vocoder_steps=1500),
    "smoke": TinyRecipe("smoke", codec_clips=24, codec_clip_s=2.0, vae_steps=40, vae_batch=8,
                        m2s_steps=30, m2s_batch=8, sync_clips=8, sync_steps=10, sync_batch=8,
                        dit_clips=24, dit_steps=60, dit_batch=8, semantic_clips=16, semantic_steps=10,
                        semantic_batch=8, stereo_clips=16, vocoder_steps=20, vocoder_batch=4, vocoder_eval_clips=2,
                        vocoder_eval_s=1.5),
}


# ---------------------------------------------------------------- stages
def _encoders(out: Path, seed: int) -> None:
    """Write the tiny encoders' seeded starting weights (platform-independent)."""
    from ..encoders import SYNCHFORMER_PRESETS, ClipVisionEncoder, Synchformer, T5TextEncoder
    from ..encoders.seeded import seeded_init_
    from ..loading.state import save_state_dict
    save_state_dict(T5TextEncoder.tiny(seed).model.state_dict(), out / "t5.safetensors")
    clip = ClipVisionEncoder.tiny(seed)
    save_state_dict({f"visual.{k}": v for k, v in clip.visual.state_dict().items()}, out / "clip.safetensors")
    sync = seeded_init_(Synchformer(SYNCHFORMER_PRESETS[SYNC_PRESET]), seed)
    save_state_dict(sync.state_dict(), out / "synchformer.safetensors")


def _semantic(out: Path, recipe: TinyRecipe, seed: int, workers: int, summary: dict) -> list[dict]:
    """Train the T5 and CLIP image towers together on (frame, caption) pairs; held-out accuracies."""
    from ..encoders import ClipVisionEncoder, T5TextEncoder
    from ..loading.state import read_state_dict, save_state_dict
    from .tiny_semantic import image_class_accuracy, text_class_accuracy, train_semantic
    from .tiny_workers import init_plain_worker, parallel_map, semantic_task
    args = [(i, seed, "train", "train") for i in range(recipe.semantic_clips)]
    items = list(parallel_map(semantic_task, args, workers=workers, initializer=init_plain_worker,
                              initargs=(max(1, 2 // workers),)))
    from transformers import ByT5Tokenizer
    t5 = T5TextEncoder.from_state_dict(read_state_dict(out / "t5.safetensors"), ByT5Tokenizer())
    clip = ClipVisionEncoder.from_file(out / "clip.safetensors", "kf-tiny-clip")
    rows = train_semantic(clip, t5, items, steps=recipe.semantic_steps, batch_size=recipe.semantic_batch, seed=seed)
    save_state_dict(t5.model.state_dict(), out / "t5.safetensors")
    save_state_dict({f"visual.{k}": v for k, v in clip.visual.state_dict().items()}, out / "clip.safetensors")
    held = list(parallel_map(semantic_task, [(i, seed, "heldout", "heldout") for i in range(90)], workers=workers,
                             initializer=init_plain_worker, initargs=(max(1, 2 // workers),)))
    summary["semantic_heldout_look"] = {"text_class_acc": round(text_class_accuracy(t5, held), 3),
                                        "image_class_acc": round(image_class_accuracy(clip, held), 3)}
    return rows


def _sync(out: Path, recipe: TinyRecipe, seed: int, workers: int, device: str, summary: dict) -> list[dict]:
    """Train the sync encoder (onset + pan heads) and score its onset probe on held-out looks."""
    from ..encoders import Synchformer
    from ..loading.state import save_state_dict
    from .tiny_sync import onset_auc, train_sync_encoder
    from .tiny_workers import init_plain_worker, parallel_map, sync_task
    sync = Synchformer.from_file(out / "synchformer.safetensors")
    size, resize = sync.cfg.image_size, sync.cfg.resize
    items = list(parallel_map(sync_task, [(i, seed, size, resize, "train") for i in range(recipe.sync_clips)],
                              workers=workers, initializer=init_plain_worker, initargs=(max(1, 2 // workers),)))
    rows = train_sync_encoder(sync, items, steps=recipe.sync_steps, batch_size=recipe.sync_batch, seed=seed,
                              device=device)
    save_state_dict({k: v.detach() for k, v in sync.state_dict().items()}, out / "synchformer.safetensors")
    held = list(parallel_map(sync_task, [(i, seed, size, resize, "heldout") for i in range(96)], workers=workers,
                             initializer=init_plain_worker, initargs=(max(1, 2 // workers),)))
    def rounded(v):
        if isinstance(v, dict):
            return {k: rounded(u) for k, u in v.items()}
        return round(v, 3) if isinstance(v, float) else v
    summary["sync_heldout_look"] = rounded(onset_auc(sync, held))
    return rows


def _codec_set(out: Path, work: Path, recipe: TinyRecipe, seed: int, workers: int):
    from .tiny_codec import CodecSet
    from .tiny_workers import codec_task, init_codec_worker, parallel_map
    cache = work / "codec_set.pt"
    if cache.is_file():
        d = torch.load(cache, weights_only=True)
        return CodecSet(d["audio"], d["visual"])
    items = list(parallel_map(codec_task, range(recipe.codec_clips), workers=workers,
                              initializer=init_codec_worker,
                              initargs=(str(out), seed, recipe.codec_clip_s, max(1, 2 // workers))))
    data = CodecSet(torch.stack([a for a, _ in items]), torch.stack([v for _, v in items]))
    torch.save({"audio": data.audio, "visual": data.visual}, cache)
    return data


def _vocoder(out: Path, work: Path, recipe: TinyRecipe, seed: int, codec_cfg, data, summary: dict) -> None:
    """Train the vocoder on the codec set (and the Mel-VAE's mels of it); OUT/vocoder.safetensors, its
    curve, and its held-out numbers against Griffin-Lim in the summary. Needs only OUT/vae.safetensors
    and the codec set, so it also runs alone on a finished run's folders."""
    from ..codec.load import load_vae, load_vocoder
    from ..loading.state import save_state_dict
    from .tiny_codec import VOCODER_VAE_SHARE, train_vocoder, vocoder_heldout, vocoder_state
    vae_file = out / "vae.safetensors"
    if not vae_file.is_file():
        raise FileNotFoundError(f"the vocoder stage needs the trained Mel-VAE {vae_file}; run the vae stage first "
                                "(drop \"vae\" from timings_s in the work folder's summary.json)")
    vae = load_vae(vae_file)
    gen, _ = train_vocoder(data, codec_cfg, steps=recipe.vocoder_steps, batch_size=recipe.vocoder_batch, seed=seed,
                           out=work / "vocoder", vae=vae)
    save_state_dict(vocoder_state(gen), out / "vocoder.safetensors")
    shutil.copyfile(work / "vocoder" / "metrics.csv", out / "curves" / "vocoder.csv")
    shipped = load_vocoder(out / "vocoder.safetensors")  # scored as the loader reads it (float16 weights)
    summary["vocoder_heldout"] = vocoder_heldout(shipped, vae, codec_cfg, clips=recipe.vocoder_eval_clips,
                                                 seconds=recipe.vocoder_eval_s, seed=seed,
                                                 pesq=importlib.util.find_spec("pesq") is not None)
    summary["vocoder_params_m"] = round(sum(p.numel() for p in gen.parameters()) / 1e6, 3)
    summary["vocoder_vae_share"] = VOCODER_VAE_SHARE


def vocoder_beats_griffin_lim(out: Path, summary: dict) -> bool:
    """Ship the trained vocoder only if, on the held-out true mels, it beats Griffin-Lim on mel loss,
    MCD and PESQ (where measured), as issue 12 asks; otherwise the folder plays through Griffin-Lim
    and OUT/vocoder.safetensors stays beside it, unnamed."""
    from .tiny_codec import beats_griffin_lim
    held = summary.get("vocoder_heldout")
    if not (out / "vocoder.safetensors").is_file() or held is None:
        return False
    better = beats_griffin_lim(held)
    summary["vocoder_shipped"] = better
    return better


def _stereo(out: Path, recipe: TinyRecipe, seed: int, workers: int, codec_cfg) -> list[dict]:
    """Mono2Stereo on stereo clips + the frozen sync encoder's tokens."""
    from ..loading.state import save_state_dict
    from .tiny_stereo import train_stereo
    from .tiny_workers import init_stereo_worker, parallel_map, stereo_task
    items = list(parallel_map(stereo_task, range(recipe.stereo_clips), workers=workers,
                              initializer=init_stereo_worker, initargs=(str(out), seed, max(1, 2 // workers))))
    model, rows = train_stereo(items, codec_cfg, steps=recipe.m2s_steps, batch_size=recipe.m2s_batch, seed=seed)
    save_state_dict({k: v.detach() for k, v in model.state_dict().items()}, out / "mono2stereo.safetensors")
    return rows


def _features(out: Path, work: Path, recipe: TinyRecipe, seed: int, workers: int) -> Path:
    from ..config import CODEC_PRESETS
    from .features import write_shard
    from .tiny_workers import feature_task, init_feature_worker, parallel_map
    folder = work / "features"
    done = folder / "DONE"
    if done.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    cfg = CODEC_PRESETS["44k"]
    codec = {"sample_rate": cfg.sample_rate, "hop": cfg.hop, "latent_downsample": cfg.latent_downsample}
    batch, shard = [], 0
    for i, rec in enumerate(parallel_map(feature_task, range(recipe.dit_clips), workers=workers,
                                         initializer=init_feature_worker,
                                         initargs=(str(out), str(work), seed, max(1, 2 // workers)))):
        batch.append(rec)
        if len(batch) == 128 or i == recipe.dit_clips - 1:
            write_shard(batch, folder / f"synthetic_{shard:05d}.safetensors", codec=codec)
            batch, shard = [], shard + 1
        if (i + 1) % 50 == 0:
            log.info("features: %d / %d clips", i + 1, recipe.dit_clips)
    done.write_text("ok\n")
    return folder


# ---------------------------------------------------------------- the command
def train_tiny(out: Path, work: Path, recipe: TinyRecipe, *, seed: int = 0, workers: int = 2,
               threads: int = 2, device: str = "cpu", command: str | None = None) -> dict:
    """Run every stage (skipping finished ones) -> the training summary written to OUT/training.json."""
    from ..codec.mel_vae import MEL_VAE_PRESETS
    from ..config import CODEC_PRESETS
    from ..loading.state import read_state_dict, save_state_dict
    from . import tiny_card
    from .tiny_codec import latent_statistics, mel_reconstruction_db, train_vae
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    # On a CPU shared with other jobs, 1 thread avoids OpenMP oversubscription stalls (a DiT step went
    # from 0.5 s to 17 s with 2 threads while another process held the cores)
    torch.set_num_threads(threads)
    codec_cfg = CODEC_PRESETS["44k"]
    summary_path = work / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {"timings_s": {}}
    curves = out / "curves"
    curves.mkdir(exist_ok=True)

    def stage(name: str, fn):
        if name in summary["timings_s"]:
            log.info("stage %s: done earlier (%.0f s)", name, summary["timings_s"][name])
            return None
        t0 = time.perf_counter()
        log.info("stage %s ...", name)
        result = fn()
        summary["timings_s"][name] = round(time.perf_counter() - t0, 1)
        summary_path.write_text(json.dumps(summary, indent=1))
        log.info("stage %s: %.0f s", name, summary["timings_s"][name])
        return result

    stage("encoders", lambda: _encoders(out, seed))
    stage("semantic", lambda: tiny_card.write_curve(curves / "semantic.csv",
                                                    _semantic(out, recipe, seed, workers, summary)))
    stage("sync_encoder", lambda: tiny_card.write_curve(curves / "synchformer.csv",
                                                        _sync(out, recipe, seed, workers, device, summary)))
    data = None

    def codec_data():
        nonlocal data
        if data is None:
            data = _codec_set(out, work, recipe, seed, workers)
        return data

    stage("codec_set", codec_data)

    def vae_stage():
        vae, _ = train_vae(codec_data(), codec_cfg, steps=recipe.vae_steps, batch_size=recipe.vae_batch,
                           seed=seed, out=work / "vae", vae_cfg=MEL_VAE_PRESETS[recipe.vae_preset])
        save_state_dict({k: v.detach() for k, v in vae.state_dict().items()}, out / "vae.safetensors")
        mean, std = latent_statistics(vae, codec_data(), codec_cfg)
        save_state_dict({"mean": mean, "std": std}, work / "latent_stats.safetensors")
        summary["vae_l1_db_train"] = round(mel_reconstruction_db(vae, codec_data(), codec_cfg), 3)
        shutil.copyfile(work / "vae" / "metrics.csv", curves / "vae.csv")

    stage("vae", vae_stage)
    stage("vocoder", lambda: _vocoder(out, work, recipe, seed, codec_cfg, codec_data(), summary))
    data = None  # the codec set is not needed any more
    stage("mono2stereo", lambda: tiny_card.write_curve(curves / "mono2stereo.csv",
                                                       _stereo(out, recipe, seed, workers, codec_cfg)))
    features = work / "features"
    stage("features", lambda: _features(out, work, recipe, seed, workers))

    def dit_stage():
        from .tiny_dit import train_dit
        train_dit(out, work, features, steps=recipe.dit_steps, batch_size=recipe.dit_batch, lr=recipe.dit_lr,
                  ema_decay=recipe.ema_decay, p_drop_video=recipe.p_drop_video, p_drop_text=recipe.p_drop_text,
                  seed=seed, stats=read_state_dict(work / "latent_stats.safetensors"), device=device)
        shutil.copyfile(work / "dit" / "metrics.csv", curves / "dit.csv")  # every logged step, resumes included

    stage("dit", dit_stage)
    manifest = {"name": "kf-tiny", "components": {
        "dit": "dit.safetensors", "vae": "vae.safetensors", "mono2stereo": "mono2stereo.safetensors",
        "vocoder": "vocoder.safetensors" if vocoder_beats_griffin_lim(out, summary) else None,
        "text_encoder": "t5.safetensors", "clip": "clip.safetensors",
        "synchformer": "synchformer.safetensors"},
        "codec": "44k", "clip_model": "kf-tiny-clip", "text_encoder_kind": "t5", "text_tokenizer": "byt5"}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    summary.update(recipe=dataclasses.asdict(recipe), seed=seed, workers=workers, command=command,
                   total_s=round(sum(summary["timings_s"].values()), 1),
                   machine=_machine(),
                   torch=torch.__version__, threads=torch.get_num_threads(), device=device)
    (out / "training.json").write_text(json.dumps(summary, indent=1) + "\n")
    summary_path.write_text(json.dumps(summary, indent=1))
    tiny_card.write_model_card(out)
    return summary


def _machine() -> str:
    """'x86_64, 2 CPUs (AMD EPYC)' from the platform and /proc/cpuinfo when it exists."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                      if ln.startswith("model name")), "")
    return f"{platform.machine()}, {os.cpu_count()} CPUs" + (f" ({model})" if model else "")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="model folder to write (manifest + weights + card)")
    p.add_argument("--work", type=Path, default=None,
                   help="scratch folder for checkpoints, features and caches (default OUT/.work); "
                        "re-running with the same folder resumes")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="full",
                   help="full: the whole recipe (about two hours on 2 CPU cores, not yet timed end to end); "
                        "short: the same stages cut down (95 min measured on 2 shared cores); smoke: minutes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes that generate and encode clips")
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads of the training process (use 1 on a CPU shared with other jobs)")
    p.add_argument("--device", default="cpu",
                   help="where the sync-encoder and DiT stages compute (cpu, cuda); data and codec stay on the CPU")
    p.add_argument("--dit-steps", type=int, default=None,
                   help="override the recipe's DiT steps (the learning-rate schedule does not depend on it, "
                        "so N steps equal the first N of a longer run)")
    p.add_argument("--card-only", action="store_true",
                   help="only rewrite OUT/MODEL_CARD.md (e.g. after eval results were added to OUT)")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder after success")


def main(args) -> int:
    from . import tiny_card
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.card_only:
        print(tiny_card.write_model_card(args.out))
        return 0
    work = args.work or (args.out / ".work")
    recipe = RECIPES[args.recipe]
    if args.dit_steps is not None:
        recipe = dataclasses.replace(recipe, dit_steps=args.dit_steps)
    command = (f"python -m kf_core train-tiny --out {args.out} --recipe {args.recipe} --seed {args.seed} "
               f"--workers {args.workers} --threads {args.threads}"
               + (f" --dit-steps {args.dit_steps}" if args.dit_steps is not None else "")
               + (f" --device {args.device}" if args.device != "cpu" else ""))
    summary = train_tiny(args.out, work, recipe, seed=args.seed, workers=args.workers, threads=args.threads,
                         device=args.device, command=command)
    if not args.keep_work and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(f"kf-tiny ({args.recipe}) written to {args.out} in {summary['total_s']:.0f} s: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in summary["timings_s"].items()))
    return 0
