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
import time

import torch

__all__ = ["add_arguments", "main", "velocity_flops"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="kf-tiny", help="model preset (default kf-tiny)")
    p.add_argument("--duration", type=float, default=10.0, help="clip length in seconds")
    p.add_argument("--steps", type=int, default=20, help="Euler steps (paper: dt = 0.05 -> 20)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
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

    if args.threads:
        torch.set_num_threads(args.threads)
    dev, dtype = torch.device(args.device), getattr(torch, args.dtype)
    cfg = PRESETS[args.preset]
    seq = SeqConfig(args.duration)
    model = build_model(cfg, device=dev, dtype=dtype).eval()
    g = torch.Generator(device="cpu").manual_seed(0)
    lt = min(args.text_tokens, cfg.text_len)
    conds = dict(visual=torch.randn(1, seq.visual_len, cfg.visual_dim, generator=g),
                 sync=torch.randn(1, seq.sync_len, cfg.sync_dim, generator=g),
                 text=torch.randn(1, lt, cfg.text_dim, generator=g))
    conds = {k: v.to(dev, dtype) for k, v in conds.items()}
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    with torch.inference_mode():
        both = type(model.prepare(seq=seq)).cat([model.prepare(seq=seq, **conds), model.prepare(seq=seq)])
        x = torch.randn(2, seq.latent_len, cfg.latent_dim, generator=g).to(dev, dtype)
        for _ in range(2):                                              # warm-up
            model.velocity(x, torch.full((2,), 0.5, device=dev), both)
        sync()
        n = max(3, args.steps // 2)
        t1 = time.perf_counter()
        for _ in range(n):
            model.velocity(x, torch.full((2,), 0.5, device=dev), both)
        sync()
        per_call = (time.perf_counter() - t1) / n

        t2 = time.perf_counter()
        cond = model.prepare(seq=seq, **conds)
        uncond = model.prepare(seq=seq)
        both = type(cond).cat([cond, uncond])
        z = torch.randn(1, seq.latent_len, cfg.latent_dim, generator=g).to(dev, dtype)
        ts = torch.linspace(0, 1, args.steps + 1, device=dev)
        for k in range(args.steps):                                     # Euler + CFG 4.5, batched
            v = model.velocity(torch.cat([z, z]), ts[k].expand(2), both)
            z = z + (ts[k + 1] - ts[k]) * (4.5 * v[:1] + (1 - 4.5) * v[1:])
        sync()
        total = time.perf_counter() - t2

    flops = 2 * velocity_flops(cfg, seq.latent_len, seq.visual_len, lt)  # batch 2 (CFG)
    params = sum(p.numel() for p in model.parameters())
    if dev.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated(dev) / 2**20:.1f} MiB (CUDA allocated)"
    else:
        import resource
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB (process max RSS)"
    print(f"preset {cfg.name}: {params / 1e6:.2f} M params, D={cfg.hidden_dim}, "
          f"{cfg.num_joint} joint + {cfg.num_single} single blocks; {dev} {args.dtype}, "
          f"{torch.get_num_threads()} threads")
    print(f"duration {args.duration:g} s: La={seq.latent_len}, Lv={seq.visual_len}, Ls={seq.sync_len}, Lt={lt}")
    print(f"velocity call (batch 2, CFG): {per_call * 1e3:.2f} ms, {flops / 1e9:.3f} GFLOP "
          f"-> {flops / per_call / 1e9:.1f} GFLOP/s")
    print(f"sampling {args.steps} Euler steps + CFG (incl. prepare): {total:.3f} s")
    print(f"peak memory: {peak}")
    return 0
