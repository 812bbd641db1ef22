"""`python -m kf_core eval vocoder-probe`: train kf-tiny's vocoder alone, with chosen losses, and score it.

`train-tiny` ships its Vocos-style vocoder only where it beats Griffin-Lim on held-out mel loss, MCD
and PESQ (issue 12), and the first v2 run's did not (PESQ 2.04 against 2.67). This runs only that
stage, as `train-tiny` does (`train.tiny_codec.train_vocoder`: the recipe's schedule on the world's
2 s codec clips of the seed), with the loss weights as options — among them the APNet-style
losses on the spectrum the iSTFT head predicts (`--w-spec-mag`, `--w-spec-phase`), which the
recipe leaves off — and scores it against Griffin-Lim on the held-out clips `train-tiny` scores it
on (`tiny_codec.codec_heldout`). With `--vae FILE` half of every batch is that Mel-VAE's decoder
mels, as in `train-tiny`, and the Mel-VAE path is scored too.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from .vae_probe import add_run_arguments

__all__ = ["add_arguments", "main"]

WEIGHTS = ("w_mel", "w_stft", "w_phase", "w_spec_mag", "w_spec_phase")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clips", type=int, default=1280, help="codec clips (default 1280, the full recipe's)")
    p.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    p.add_argument("--batch", type=int, default=16, help="32-frame crops per step (default 16)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's 1e-3)")
    for name in WEIGHTS:
        p.add_argument("--" + name.replace("_", "-"), type=float, default=None, dest=name,
                       help=f"loss weight {name} (default: the recipe's)")
    p.add_argument("--vae", type=Path, default=None, help="a Mel-VAE file: train on its decoder mels too, and score them")
    add_run_arguments(p)


def main(args) -> int:
    import torch

    from ..codec.griffinlim import GriffinLim
    from ..config import CODEC_PRESETS
    from ..train.tiny_codec import beats_griffin_lim, codec_heldout, train_vocoder, vocoder_train_config
    from ..train.tiny_workers import audio_codec_set
    if min(args.clips, args.steps, args.batch, args.heldout) < 1 or min(args.seconds, args.heldout_s) <= 0:
        print("eval vocoder-probe: --clips, --steps, --batch, --heldout must be at least 1 and the lengths positive")
        return 2
    overrides = {k: v for k in (*WEIGHTS, "lr") if (v := getattr(args, k)) is not None}
    if "lr" in overrides:
        overrides["lr_min"] = overrides["lr"] / 20
    try:  # the config's own checks, before any clip is made
        cfg = dataclasses.replace(vocoder_train_config(args.steps, args.batch, args.seed), **overrides)
    except ValueError as e:
        print(f"eval vocoder-probe: {e}")
        return 2
    vae = None
    if args.vae is not None:
        from ..codec.load import load_vae
        from ..codec.mel_vae import MelVAE
        if not args.vae.is_file():
            print(f"eval vocoder-probe: --vae {args.vae} is not a file; give a Mel-VAE export (OUT/vae.safetensors)")
            return 2
        vae = load_vae(args.vae)
        if not isinstance(vae, MelVAE):
            print(f"eval vocoder-probe: --vae {args.vae.name} is an MMAudio VAE; kf-tiny's vocoder learns a Kling-Foley "
                  "Mel-VAE's mels (OUT/vae.safetensors)")
            return 2
    torch.set_num_threads(args.threads)
    codec_cfg = CODEC_PRESETS["44k"]
    start = time.perf_counter()
    data = audio_codec_set(args.clips, seed=args.seed, duration=args.seconds, workers=args.workers,
                           threads=args.threads)
    made = time.perf_counter()
    print(f"{len(data)} codec clips of {args.seconds:g} s made in {made - start:.0f} s; training {args.steps} "
          f"steps of {args.batch} (weights {({k: getattr(cfg, k) for k in WEIGHTS})}, lr {cfg.lr:g})", flush=True)
    with tempfile.TemporaryDirectory(prefix="kf-vocoder-probe-") as work:
        vocoder, rows = train_vocoder(data, codec_cfg, steps=args.steps, batch_size=args.batch, seed=args.seed,
                                      out=Path(work) / "vocoder", vae=vae, **overrides)
    trained = time.perf_counter()
    held = codec_heldout(vae, codec_cfg, {"vocoder": vocoder.eval(), "griffin_lim": GriffinLim(codec_cfg)},
                         clips=args.heldout, seconds=args.heldout_s, seed=args.seed, pesq=not args.no_pesq)
    print(json.dumps({"clips": args.clips, "steps": args.steps, "batch": args.batch, "seed": args.seed,
                      **{k: getattr(cfg, k) for k in (*WEIGHTS, "lr")}, "vae": str(args.vae) if args.vae else None,
                      "params": sum(p.numel() for p in vocoder.parameters()), "train_s": round(trained - made),
                      "beats_griffin_lim": beats_griffin_lim(held), "heldout": held}))
    return 0
