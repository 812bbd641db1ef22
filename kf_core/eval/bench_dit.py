"""`python -m kf_core bench dit`: time the DiT's velocity call and a full Euler + CFG sampling run.

Prints ms per velocity call (batch 2 = one batched CFG forward), total sampling time, peak
memory and an estimated FLOP count per call so utilisation can be computed:

  FLOPs per call = 2 * MACs, where MACs =
      sum over Linear/Conv1d weights W (out, in, k) used per token: tokens_of_that_layer * out*in*k
    + attention: per joint block 2 * S^2 * D (QK^T and AV, S = La + Lv + Lt),
                 per single block 2 * La^2 * D
  counted per batch element, times the batch. Condition projections (prepare) run once per
  generation and are excluded; elementwise ops, norms and softmax are ignored (< 2 %).
"""
from __future__ import annotations

import argparse

import torch

from .benchutil import Timer, add_device_arguments, describe_peak_memory, reset_peak_memory, resolve_device, time_call

__all__ = ["add_arguments", "main", "velocity_flops"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="kf-tiny", help="model preset (default kf-tiny)")
    p.add_argument("--duration", type=float, default=10.0, help="clip length in seconds")
    p.add_argument("--steps", type=int, default=20, help="Euler steps (paper: dt = 0.05 -> 20)")
    add_device_arguments(p)
    p.add_argument("--text-tokens", type=int, default=20, help="real text tokens in the prompt")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")


def velocity_flops(cfg, la: int, lv: int, lt: int) -> int:
    """Estimated FLOPs of one velocity call for ONE batch element (see module docstring)."""
    d, h = cfg.hidden_dim, cfg.mlp_hidden

    def stream(tokens: int, kernel: int, full: bool) -> int:
        macs = tokens * (6 * d * d if full else 2 * d * d)            # adaLN linear
        macs += tokens * 3 * d * d                                    # qkv
        if full:
            macs += tokens * kernel * (d * d + 3 * d * h)             # out proj + SwiGLU
        return macs

    macs = la * cfg.audio_in_kernel * (cfg.latent_dim * d + 3 * d * h)   # audio input projection
    for i in range(cfg.num_joint):
        full = not (cfg.pre_only_last_joint and i == cfg.num_joint - 1)
        s = la + lv + lt
        macs += stream(la, cfg.audio_kernel, True) + stream(lv, cfg.visual_kernel, full)
        macs += stream(lt, cfg.text_kernel, full) + 2 * s * s * d
    macs += cfg.num_single * (stream(la, cfg.audio_kernel, True) + 2 * la * la * d)
    macs += la * (2 * d * d + cfg.final_kernel * d * cfg.latent_dim)    # final adaLN + conv
    return 2 * macs


def main(args: argparse.Namespace) -> int:
    from ..config import SeqConfig
    from ..model import PRESETS, build_model
    from ..sampling import cfg_velocity, get_schedule, sample_euler

    if args.threads:
        torch.set_num_threads(args.threads)
    dev, dtype = resolve_device(args.device, args.dtype)
    cfg = PRESETS[args.preset]
    seq = SeqConfig(args.duration)
    model = build_model(cfg, device=dev, dtype=dtype).eval()
    g = torch.Generator(device="cpu").manual_seed(0)
    lt = min(args.text_tokens, cfg.text_len)
    conds = dict(visual=torch.randn(1, seq.visual_len, cfg.visual_dim, generator=g),
                 sync=torch.randn(1, seq.sync_len, cfg.sync_dim, generator=g),
                 text=torch.randn(1, lt, cfg.text_dim, generator=g))
    conds = {k: v.to(dev, dtype) for k, v in conds.items()}
    reset_peak_memory(dev)
    with torch.inference_mode():
        both = type(model.prepare(seq=seq)).cat([model.prepare(seq=seq, **conds), model.prepare(seq=seq)])
        x = torch.randn(2, seq.latent_len, cfg.latent_dim, generator=g).to(dev, dtype)
        t_half = torch.full((2,), 0.5, device=dev)
        per_call = time_call(lambda: model.velocity(x, t_half, both), dev, repeats=max(3, args.steps // 2),
                             warmup=2).mean

        with Timer(dev) as timer:
            fn = cfg_velocity(model, model.prepare(seq=seq, **conds), model.prepare(seq=seq), 4.5)
            z = torch.randn(1, seq.latent_len, cfg.latent_dim, generator=g).to(dev, dtype)
            sample_euler(fn, z, get_schedule("uniform", args.steps).to(dev))  # one batched CFG forward a step
    total = timer.seconds

    flops = 2 * velocity_flops(cfg, seq.latent_len, seq.visual_len, lt)  # batch 2 (CFG)
    params = sum(p.numel() for p in model.parameters())
    peak = describe_peak_memory(dev)
    print(f"preset {cfg.name}: {params / 1e6:.2f} M params, D={cfg.hidden_dim}, "
          f"{cfg.num_joint} joint + {cfg.num_single} single blocks; {dev} {args.dtype}, "
          f"{torch.get_num_threads()} threads")
    print(f"duration {args.duration:g} s: La={seq.latent_len}, Lv={seq.visual_len}, Ls={seq.sync_len}, Lt={lt}")
    print(f"velocity call (batch 2, CFG): {per_call * 1e3:.2f} ms, {flops / 1e9:.3f} GFLOP "
          f"-> {flops / per_call / 1e9:.1f} GFLOP/s")
    print(f"sampling {args.steps} Euler steps + CFG (incl. prepare): {total:.3f} s")
    print(f"peak memory: {peak}")
    return 0
