"""`python -m kf_core eval vae-probe`: train kf-tiny's Mel-VAE alone, in a chosen shape, and score it.

The v2 short run found the codec's loss in the Mel-VAE, not in the vocoder (held-out MCD 37 through
the VAE and Griffin-Lim, 11 through Griffin-Lim alone; `docs/experiments/kf-tiny-v2-short`). This
runs only that stage, as `train-tiny` does (`train.tiny_codec.train_vae`: the recipe's Alg. 2
schedule on the same 2 s codec clips of the world, seed for seed), for any `MelVAEConfig` shape, and
scores it on the held-out clips `train-tiny` scores its vocoder on (`tiny_codec.codec_heldout`):
the VAE's own log-mel error in dB, and Griffin-Lim's mel loss / MCD / PESQ on the true mel and on
the VAE's reconstruction. A different latent width means a different DiT: what this finds ships
only through a whole `train-tiny` run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

__all__ = ["add_arguments", "add_run_arguments", "main"]


def _mult(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mult takes comma-separated integers like 1,2 (got {text!r})") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clips", type=int, default=320, help="codec clips (default 320, v1's; the full recipe now draws 1280)")
    p.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    p.add_argument("--batch", type=int, default=16, help="64-frame mel crops per step (default 16)")
    p.add_argument("--preset", choices=("tiny", "tiny-v2"), default="tiny",
                   help="MEL_VAE_PRESETS shape the options below change (default tiny: v1's, width 32)")
    p.add_argument("--latent", type=int, default=None, help="latent channels (default: the preset's 16)")
    p.add_argument("--width", type=int, default=None, help="base width (default: the preset's)")
    p.add_argument("--mult", type=_mult, default=None, help="width multipliers per level (default: the preset's 1,2)")
    p.add_argument("--blocks", type=int, default=None, help="residual blocks per level (default: the preset's 1)")
    p.add_argument("--mid", type=int, default=None, help="middle blocks (default: the preset's 1)")
    p.add_argument("--gan", type=float, default=0.0,
                   help="Alg. 2's GAN weight (stages 3-4 in the last 30 %% of the steps; default 0: the recipe's, no GAN)")
    add_run_arguments(p)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The options every codec-stage probe shares: the held-out scoring, the seed, the processes."""
    p.add_argument("--seconds", type=float, default=2.0, help="length of a codec clip (default 2)")
    p.add_argument("--heldout", type=int, default=18, help="held-out clips scored (default 18)")
    p.add_argument("--heldout-s", type=float, default=5.0, dest="heldout_s", help="their length (default 5)")
    p.add_argument("--no-pesq", action="store_true", help="skip PESQ (slow on long clips)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes that generate clips")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the training")


def main(args) -> int:
    import torch

    from ..codec.griffinlim import GriffinLim
    from ..codec.mel_vae import MEL_VAE_PRESETS, MelVAEConfig
    from ..config import CODEC_PRESETS
    from ..train.tiny_codec import codec_heldout, mel_reconstruction_db, train_vae
    from ..train.tiny_workers import audio_codec_set
    if min(args.clips, args.steps, args.batch, args.heldout) < 1 or min(args.seconds, args.heldout_s) <= 0 or args.gan < 0:
        print("eval vae-probe: --clips, --steps, --batch, --heldout must be at least 1, the lengths positive and --gan >= 0")
        return 2
    shape = {k: v for k, v in (("latent_channels", args.latent), ("width", args.width), ("ch_mult", args.mult),
                               ("blocks_per_level", args.blocks), ("mid_blocks", args.mid)) if v is not None}
    try:
        vae_cfg = dataclasses.replace(MEL_VAE_PRESETS[args.preset], **shape)
    except ValueError as e:
        print(f"eval vae-probe: {e}")
        return 2
    torch.set_num_threads(args.threads)
    codec_cfg = dataclasses.replace(CODEC_PRESETS["44k"], latent_channels=vae_cfg.latent_channels)
    start = time.perf_counter()
    data = audio_codec_set(args.clips, seed=args.seed, duration=args.seconds, workers=args.workers,
                           threads=args.threads)
    made = time.perf_counter()
    print(f"{len(data)} codec clips of {args.seconds:g} s made in {made - start:.0f} s; training {args.steps} "
          f"steps of {args.batch} ({vae_cfg})", flush=True)
    with tempfile.TemporaryDirectory(prefix="kf-vae-probe-") as work:
        vae, rows = train_vae(data, codec_cfg, steps=args.steps, batch_size=args.batch, seed=args.seed,
                              out=Path(work) / "vae", vae_cfg=vae_cfg, gan_upper=args.gan)
    trained = time.perf_counter()
    held = codec_heldout(vae, codec_cfg, {"griffin_lim": GriffinLim(codec_cfg)}, clips=args.heldout,
                         seconds=args.heldout_s, seed=args.seed, pesq=not args.no_pesq)
    result = {"latent": vae_cfg.latent_channels, "width": vae_cfg.width, "mult": list(vae_cfg.ch_mult),
              "blocks": vae_cfg.blocks_per_level, "mid": vae_cfg.mid_blocks, "gan": args.gan,
              "params": sum(p.numel() for p in vae.parameters()), "clips": args.clips, "steps": args.steps,
              "batch": args.batch, "seed": args.seed, "train_s": round(trained - made),
              "train_l1_db": round(mel_reconstruction_db(vae, data, codec_cfg), 3),
              "heldout": held, "final_loss": round(rows[-1]["loss"], 4) if rows and "loss" in rows[-1] else None}
    print(json.dumps(result))
    return 0
