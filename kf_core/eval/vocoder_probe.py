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

__all__ = ["add_arguments", "main"]

WEIGHTS = ("w_mel", "w_stft", "w_phase", "w_spec_mag", "w_spec_phase")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clips", type=int, default=1280, help="codec clips (default 1280, the full recipe's)")
    p.add_argument("--seconds", type=float, default=2.0, help="length of a codec clip (default 2)")
    p.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    p.add_argument("--batch", type=int, default=16, help="32-frame crops per step (default 16)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's 1e-3)")
    for name in WEIGHTS:
        p.add_argument("--" + name.replace("_", "-"), type=float, default=None, dest=name,
                       help=f"loss weight {name} (default: the recipe's)")
    p.add_argument("--vae", type=Path, default=None, help="a Mel-VAE file: train on its decoder mels too, and score them")
    p.add_argument("--heldout", type=int, default=18, help="held-out clips scored (default 18)")
    p.add_argument("--heldout-s", type=float, default=5.0, dest="heldout_s", help="their length (default 5)")
    p.add_argument("--no-pesq", action="store_true", help="skip PESQ")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes that generate clips")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the training")


def main(args) -> int:
    import torch

    from ..codec.griffinlim import GriffinLim
    from ..config import CODEC_PRESETS
    from ..train.tiny_codec import CodecSet, codec_heldout, train_vocoder, vocoder_train_config
    from ..train.tiny_workers import audio_task, init_plain_worker, parallel_map
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
    tasks = [(i, args.seed, args.seconds) for i in range(args.clips)]
    audio = list(parallel_map(audio_task, tasks, workers=args.workers, initializer=init_plain_worker,
                              initargs=(max(1, args.threads // max(1, args.workers)),)))
    data = CodecSet(torch.stack(audio), torch.zeros(len(audio), 1, 1))
    made = time.perf_counter()
    print(f"{len(data)} codec clips of {args.seconds:g} s made in {made - start:.0f} s; training {args.steps} "
          f"steps of {args.batch} (weights {({k: getattr(cfg, k) for k in WEIGHTS})}, lr {cfg.lr:g})", flush=True)
    with tempfile.TemporaryDirectory(prefix="kf-vocoder-probe-") as work:
        vocoder, rows = train_vocoder(data, codec_cfg, steps=args.steps, batch_size=args.batch, seed=args.seed,
                                      out=Path(work) / "vocoder", vae=vae, **overrides)
    trained = time.perf_counter()
    held = codec_heldout(vae, codec_cfg, {"vocoder": vocoder.eval(), "griffin_lim": GriffinLim(codec_cfg)},
                         clips=args.heldout, seconds=args.heldout_s, seed=args.seed, pesq=not args.no_pesq)
    voc, gl = held["vocoder"], held["griffin_lim"]
    beats = voc["mel_loss"] < gl["mel_loss"] and voc["mcd"] < gl["mcd"] and (
        voc["pesq"] is None or gl["pesq"] is None or voc["pesq"] > gl["pesq"])
    print(json.dumps({"clips": args.clips, "steps": args.steps, "batch": args.batch, "seed": args.seed,
                      **{k: getattr(cfg, k) for k in (*WEIGHTS, "lr")}, "vae": str(args.vae) if args.vae else None,
                      "params": sum(p.numel() for p in vocoder.parameters()), "train_s": round(trained - made),
                      "beats_griffin_lim": beats, "heldout": held}))
    return 0
