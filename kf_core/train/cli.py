"""`python -m kf_core train`: flow-matching training of the DiT on feature shards.

Single process:  python -m kf_core train --preset kf-tiny --data shards:FEATS --steps 20 --out DIR
Distributed:     torchrun --nproc_per_node N -m kf_core train ... [--fsdp] (multi-node: README)
Re-running with the same --out resumes from its newest checkpoint, on any number of ranks that
divides the global --batch-size.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from .distributed import DistContext, barrier, close, cpu_threads, init_distributed
from .extract import extract_dataset, parse_spec
from .features import MANIFEST, FeatureShards
from .flow import FlowTrainConfig, FlowTrainer
from .runner import RunOptions, run
from .schedules import InverseLRConfig

__all__ = ["add_arguments", "main", "load_features", "train_config_from_args"]

log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    p.add_argument("--preset", default="kf-tiny", help="model preset (kf_core.PRESETS)")
    p.add_argument("--data", action="append", required=True,
                   help="feature source, repeatable: shards:DIR (from `extract`), or a description `extract` "
                        "reads (synthetic:N[,long=P], videos:DIR[,captions.csv], vggsound:CSV,DIR, "
                        "audiocaps:CSV[,AUDIO_DIR]), extracted once into OUT/features (under torchrun, "
                        "extract beforehand: the other ranks wait for rank 0 at most 10 minutes)")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--out", required=True, help="run folder: checkpoints, metrics.csv, tb/, exported weights")
    p.add_argument("--batch-size", type=int, default=8, help="global batch, split evenly across ranks")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=float, default=0.99, help="eq. 8's w in [0, 1)")
    p.add_argument("--gamma-inv", type=float, default=1e6)
    p.add_argument("--power", type=float, default=0.5)
    p.add_argument("--lr-final", type=float, default=0.0)
    p.add_argument("--p-drop-video", type=float, default=0.1)
    p.add_argument("--p-drop-text", type=float, default=0.1)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (each rank takes cuda:LOCAL_RANK)")
    p.add_argument("--fsdp", action="store_true",
                   help="FSDP2: shard parameters and optimiser state over the ranks (bf16 compute on CUDA)")
    p.add_argument("--activation-checkpointing", action="store_true",
                   help="recompute each block's activations in backward (less memory, ~1/3 more compute)")
    p.add_argument("--bucket-pool", type=int, default=8,
                   help="batches of similar clip lengths, drawn from pools of this many batches (0 = random)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0 = the cores idle now: cores minus the load average, >= 1)")
    p.add_argument("--workers", type=int, default=1, help="processes extracting features for non-shard --data")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--no-tensorboard", action="store_true")
    p.add_argument("--no-progress", action="store_true")


def train_config_from_args(args) -> FlowTrainConfig:
    return FlowTrainConfig(
        batch_size=args.batch_size, lr=args.lr, grad_clip=args.grad_clip, ema_decay=args.ema_decay,
        p_drop_video=args.p_drop_video, p_drop_text=args.p_drop_text, seed=args.seed,
        activation_checkpointing=args.activation_checkpointing, bucket_pool=args.bucket_pool,
        schedule=InverseLRConfig(gamma_inv=args.gamma_inv, power=args.power, warmup=args.warmup,
                                 lr_final=args.lr_final))


def load_features(specs: list[str], out: Path, preset: str, seed: int, *, workers: int = 1,
                  ctx: DistContext | None = None) -> FeatureShards:
    """Data descriptions -> one FeatureShards; other than shards:DIR, each is extracted once (resumably,
    on `workers` processes, by rank 0 while the other ranks wait) into OUT/features/."""
    ctx = ctx or DistContext()
    folders = []
    for spec in specs:
        kind, parts = parse_spec(spec)
        if kind == "shards":
            folders.extend(parts)
            continue
        cache = out / "features" / spec.replace(":", "_").replace(",", "_").replace("/", "_")
        legacy = any(cache.glob("*.safetensors")) and not (cache / MANIFEST).is_file()  # before manifests
        if ctx.is_main and not legacy:
            extract_dataset([spec], cache, preset=preset, seed=seed, workers=workers,
                            threads=max(1, torch.get_num_threads() // max(1, workers)))
        folders.append(cache)
    barrier(ctx)
    return FeatureShards(folders)


def main(args) -> int:
    from ..model import build_model
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ctx = init_distributed(args.device, fsdp=args.fsdp)
    try:
        out = Path(args.out)
        torch.set_num_threads(cpu_threads(args.threads, ctx))
        log.info("rank %d: %d torch threads", ctx.rank, torch.get_num_threads())
        data = load_features(args.data, out, args.preset, args.seed, workers=args.workers, ctx=ctx)
        torch.manual_seed(args.seed)  # identical initial weights on every rank
        model = build_model(args.preset, device=ctx.device)
        cfg = train_config_from_args(args)
        trainer = FlowTrainer(model, cfg, data, codec=data.codec, ctx=ctx)
        model_cfg = model.cfg if hasattr(model, "cfg") else getattr(model, "config", None)
        model_dict = dataclasses.asdict(model_cfg) if dataclasses.is_dataclass(model_cfg) else {"preset": args.preset}
        config = {"preset": args.preset, "model": model_dict, "train": cfg.to_dict(), "codec": data.codec,
                  "data": args.data}
        opts = RunOptions(out, steps=args.steps, log_every=args.log_every, ckpt_every=args.ckpt_every,
                          resume=not args.no_resume, progress=not args.no_progress,
                          tensorboard=not args.no_tensorboard, export_name="dit", export_kind="dit")
        rows = run(trainer, opts, config=config, export_config=model_dict, ctx=ctx)
        if ctx.is_main and rows:
            print(f"step {rows[-1]['step']}: loss {rows[-1]['loss']:.4f}; weights in {out}")
    finally:
        close(ctx)
    return 0
