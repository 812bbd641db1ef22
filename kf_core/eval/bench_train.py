"""`python -m kf_core bench train`: flow-training throughput (samples/s) of a preset on random features."""
from __future__ import annotations

import math

import torch

from .benchutil import Timer, describe_peak_memory, reset_peak_memory, resolve_device

__all__ = ["add_arguments", "main", "random_records"]


def add_arguments(p) -> None:
    p.add_argument("--preset", default="kf-tiny")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--duration", type=float, default=8.0, help="clip seconds")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")


def random_records(n: int, duration: float, *, latent_channels: int, visual_dim: int, sync_dim: int,
                   text_dim: int, text_len: int = 16, codec: dict):
    """n FeatureRecords of random features with the lengths `duration` implies."""
    from ..config import SeqConfig
    from ..train.features import FeatureRecord
    seq = SeqConfig(duration=duration, **codec)
    return [FeatureRecord(latent_mean=torch.randn(seq.latent_len, latent_channels),
                          latent_std=torch.full((seq.latent_len, latent_channels), 0.1), duration=duration,
                          visual=torch.randn(seq.visual_len, visual_dim), sync=torch.randn(seq.sync_len, sync_dim),
                          text=torch.randn(text_len, text_dim)) for _ in range(n)]


def main(args) -> int:
    from ..model import build_model
    from ..train.flow import FlowTrainConfig, FlowTrainer
    from ..train.distributed import DistContext
    if args.threads:
        torch.set_num_threads(args.threads)
    device, _ = resolve_device(args.device)  # a clear error for CUDA asked for but absent
    model = build_model(args.preset, device=device)
    mc = getattr(model, "cfg", None) or model.config
    codec = {"sample_rate": 44100, "hop": 512, "latent_downsample": 2}
    recs = random_records(args.batch_size, args.duration, latent_channels=mc.latent_dim,
                          visual_dim=mc.visual_dim, sync_dim=mc.sync_dim, text_dim=mc.text_dim, codec=codec)
    trainer = FlowTrainer(model, FlowTrainConfig(batch_size=args.batch_size), recs, codec=codec,
                          ctx=DistContext(device=device))
    for _ in range(args.warmup_steps):
        trainer.train_step()
    reset_peak_memory(device)  # the window then holds weights, optimiser state and the timed steps
    with Timer(device) as timer:
        for _ in range(args.steps):
            loss = trainer.train_step()["loss"]
    dt = timer.seconds
    if not math.isfinite(loss):
        raise FloatingPointError(f"benchmark loss is {loss}")
    print(f"bench train {args.preset}: batch {args.batch_size} x {args.duration:g} s on {args.device}, "
          f"{args.steps} steps in {dt:.2f} s -> {args.steps * args.batch_size / dt:.2f} samples/s "
          f"({dt / args.steps * 1000:.0f} ms/step, {torch.get_num_threads()} threads"
          + (", bf16 autocast" if device.type == "cuda" else "") + f"; peak memory {describe_peak_memory(device)})")
    return 0
