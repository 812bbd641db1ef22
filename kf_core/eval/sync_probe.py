"""`python -m kf_core eval sync-probe`: train kf-tiny's sync encoder alone and score its onset probe.

The sync encoder is kf-tiny v2's weak link (issue 12: the DiT cannot follow events its encoder does
not see), and the whole `train-tiny` takes hours; this runs only that stage, exactly as
`train-tiny` does (`train.tiny_sync.train_sync_encoder`: onset + pan heads on 2.56 s clips of the
world, random looks, flips and colour jitter), from the same seeded initial weights, and scores
the trained onset head (`onset_auc`, token-level AUC of "a visible contact in these two frames")
on three sets of clips:
- `train`: the first `--heldout` training clips (how well it fits),
- `heldout-seed`: new clips in the training look families,
- `heldout-look`: new clips in the held-out look families (what a user's video is like).
`pan` is the correlation of the pan head with the true pan on loud tokens. `--frontend rgb` gives
the RGB-input baseline against the motion input (`encoders.synchformer.motion_frames`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clips", type=int, default=1000, help="training clips of 2.56 s (default 1000)")
    p.add_argument("--heldout", type=int, default=160, help="clips per scored set (default 160)")
    p.add_argument("--steps", type=int, default=600, help="training steps (default 600)")
    p.add_argument("--batch", type=int, default=32, help="16-frame segments per step (default 32)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--frontend", choices=("motion", "rgb"), default="motion",
                   help="what the encoder sees (default motion: kf-tiny v2's input)")
    p.add_argument("--width", type=int, default=None, help="encoder width (default: the kf-tiny preset's)")
    p.add_argument("--depth", type=int, default=None, help="encoder blocks (default: the preset's)")
    p.add_argument("--tubelet", type=int, default=None, help="frames per time token (default: the preset's)")
    p.add_argument("--image-size", type=int, default=None, dest="image_size",
                   help="side of the square input in px (default: the preset's 64)")
    p.add_argument("--patch", type=int, default=None, dest="patch_size",
                   help="patch side in px (default: the preset's 8; image-size/patch patches a side)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes that generate clips")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the training")
    p.add_argument("--device", default="cpu")


def main(args) -> int:
    import torch

    from ..encoders import Synchformer
    from ..encoders.seeded import seeded_init_
    from ..encoders.synchformer import SYNCHFORMER_PRESETS
    from ..train.tiny import SYNC_PRESET
    from ..train.tiny_sync import FPS_BANDS, onset_auc, train_sync_encoder
    from ..train.tiny_workers import init_plain_worker, parallel_map, sync_task
    from .benchutil import format_table
    if min(args.clips, args.heldout, args.steps, args.batch) < 1:
        print("eval sync-probe: --clips, --heldout, --steps and --batch must be at least 1")
        return 2
    torch.set_num_threads(args.threads)
    shape = {k: v for k in ("width", "depth", "tubelet", "image_size", "patch_size") if (v := getattr(args, k)) is not None}
    cfg = dataclasses.replace(SYNCHFORMER_PRESETS[SYNC_PRESET], frontend=args.frontend, **shape)
    model = seeded_init_(Synchformer(cfg), args.seed)

    def clips(n: int, looks: str, split: str) -> list:
        tasks = [(i, args.seed, cfg.image_size, cfg.resize, looks, split) for i in range(n)]
        return list(parallel_map(sync_task, tasks, workers=args.workers, initializer=init_plain_worker,
                                 initargs=(max(1, args.threads // max(1, args.workers)),)))

    start = time.perf_counter()
    train = clips(args.clips, "train", "train")
    sets = {"heldout-seed": clips(args.heldout, "train", "heldout"),
            "heldout-look": clips(args.heldout, "heldout", "heldout")}
    made = time.perf_counter()
    print(f"{len(train)} training clips, {args.heldout} per held-out set, made in {made - start:.0f} s; "
          f"training {args.steps} steps of {args.batch} ({args.frontend} input)", flush=True)
    rows = train_sync_encoder(model, train, steps=args.steps, batch_size=args.batch, seed=args.seed, lr=args.lr,
                              device=args.device)
    trained = time.perf_counter()
    scores = {"train": onset_auc(model, train[:args.heldout]), **{k: onset_auc(model, v) for k, v in sets.items()}}
    print(format_table(["clips", "onset AUC", "earlier labels", "pan corr", "tokens", "positives"],
                       [[k, f"{v['auc']:.3f}", f"{v['auc_centre']:.3f}", f"{v['pan_corr']:.3f}", v["tokens"],
                         v["positives"]]
                        for k, v in scores.items()]))
    for part, title in (("by_class", "onset class"), ("by_fps", "source frame rate")):
        seen = {k for v in scores.values() for k in v[part]}
        names = sorted(seen) if part == "by_class" else [b[0] for b in FPS_BANDS if b[0] in seen]
        print(f"onset AUC by {title} (its tokens against the negative tokens):")
        print(format_table([title, *scores],
                           [[k, *(f"{v[part].get(k, float('nan')):.3f}" for v in scores.values())] for k in names]))
    print(json.dumps({"frontend": args.frontend, "width": cfg.width, "depth": cfg.depth, "tubelet": cfg.tubelet,
                      "image_size": cfg.image_size, "patch_size": cfg.patch_size,
                      "clips": args.clips, "steps": args.steps, "batch": args.batch,
                      "seed": args.seed, "train_s": round(trained - made), "final_loss": round(rows[-1]["loss"], 4),
                      **{k: {"auc": round(v["auc"], 3), "auc_centre": round(v["auc_centre"], 3), "pan_corr": round(v["pan_corr"], 3),
                             "by_class": {c: round(a, 3) for c, a in v["by_class"].items()},
                             "by_fps": {c: round(a, 3) for c, a in v["by_fps"].items()}}
                         for k, v in scores.items()}}))
    return 0
