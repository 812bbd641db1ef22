"""What the audio-model sub-commands share (`train vae`, `train vocoder`, `train stereo`):
the data, run-folder and schedule arguments, and turning them into clips, a DistContext and
RunOptions. A new sub-command is a module with `add_arguments(p)` (calling `add_common_arguments`)
and `main(args)`, registered under "train" in `kf_core/__main__.py`.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from ..config import CODEC_PRESETS, CodecConfig
from .audio_sources import AudioClips, load_audio_clips
from .runner import RunOptions

__all__ = ["add_common_arguments", "check_common", "schedule", "codec_config", "clips_from_args", "run_options",
           "setup_logging", "plain", "final_line"]


def add_common_arguments(p: argparse.ArgumentParser, *, batch_size: int, segment_frames: int, lr: float) -> None:
    p.add_argument("--data", action="append", required=True,
                   help="audio source, repeatable: synthetic:N[,SECONDS], audio:DIR, videos:DIR (their sound "
                        "tracks) or audiocaps:CSV[,AUDIO_DIR]")
    p.add_argument("--steps", type=int, required=True, help="train until this step (a re-run resumes)")
    p.add_argument("--out", required=True, type=Path,
                   help="run folder: checkpoints/, metrics.csv, tb/ and the exported weights")
    p.add_argument("--codec", choices=sorted(CODEC_PRESETS), default="44k",
                   help="mel front end (44k: 44.1 kHz, 128 bins, hop 512)")
    p.add_argument("--batch-size", type=int, default=batch_size, help="crops per step and rank")
    p.add_argument("--segment-frames", type=int, default=segment_frames, help="mel frames per crop")
    p.add_argument("--lr", type=float, default=lr, help="peak learning rate")
    p.add_argument("--lr-min", type=float, default=None, help="final learning rate (default lr/20)")
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
    p.add_argument("--decay-steps", type=int, default=None,
                   help="cosine decay length after warm-up (default: --steps minus --warmup; keep it fixed "
                        "when you extend a run, or the schedule changes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun each rank takes cuda:LOCAL_RANK)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints already in --out")
    p.add_argument("--no-tensorboard", action="store_true")
    p.add_argument("--no-progress", action="store_true")


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def codec_config(args) -> CodecConfig:
    return CODEC_PRESETS[args.codec]


def check_common(args) -> None:
    """Bad numbers -> ValueError naming them, before any data is read."""
    if args.steps <= 0 or args.batch_size <= 0 or args.segment_frames <= 0:
        raise ValueError(f"--steps, --batch-size and --segment-frames must be positive, got {args.steps}, "
                         f"{args.batch_size}, {args.segment_frames}")
    if args.lr <= 0 or (args.lr_min is not None and not 0 <= args.lr_min <= args.lr):
        raise ValueError(f"need --lr > 0 and 0 <= --lr-min <= --lr, got {args.lr}, {args.lr_min}")


def schedule(args) -> dict:
    """--lr/--lr-min/--warmup/--decay-steps -> the trainers' lr, lr_min, warmup_steps, decay_steps."""
    decay = args.decay_steps if args.decay_steps is not None else max(args.steps - args.warmup, 0)
    lr_min = args.lr / 20 if args.lr_min is None else args.lr_min
    return {"lr": args.lr, "lr_min": lr_min, "warmup_steps": args.warmup, "decay_steps": decay}


def clips_from_args(args, cfg: CodecConfig) -> AudioClips:
    clips = load_audio_clips(args.data, sample_rate=cfg.sample_rate, seed=args.seed)
    logging.getLogger(__name__).info("training audio: %d clip(s), %.1f min", len(clips),
                                     clips.samples / cfg.sample_rate / 60)
    return clips


def run_options(args, *, export_name: str, export_kind: str) -> RunOptions:
    if args.threads:
        torch.set_num_threads(args.threads)
    return RunOptions(args.out, steps=args.steps, log_every=args.log_every, ckpt_every=args.ckpt_every,
                      resume=not args.no_resume, progress=not args.no_progress,
                      tensorboard=not args.no_tensorboard, export_name=export_name, export_kind=export_kind)


def plain(d):
    """Dataclass dicts -> JSON-safe values (tuples to lists, nested)."""
    if isinstance(d, dict):
        return {k: plain(v) for k, v in d.items()}
    if isinstance(d, (tuple, list)):
        return [plain(v) for v in d]
    return d


def final_line(rows: list[dict], trainer, metric: str, name: str, weights: Path) -> str:
    """The run's closing line: its last logged step and `metric` (NaN when nothing was logged), and
    where the weights went."""
    last = rows[-1] if rows else {"step": trainer.step, metric: float("nan")}
    return f"step {last['step']}: {name} {last[metric]:.4f}; weights in {weights}"
