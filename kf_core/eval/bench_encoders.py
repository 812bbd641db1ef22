"""`python -m kf_core bench encoders`: conditioning-encoder cost per second of video.

Reports, per configuration and device: visual (CLIP frames at 8 fps) and sync (Synchformer frames
at 25 fps, 16-frame segments with stride 8) in ms per second of video, and text in ms per prompt.
Weights are random (timing does not depend on their values). Tiny configurations always run;
`--real` adds Synchformer (122 M) and T5-Base (110 M). The CLIP towers of the paper / MMAudio
(ViT-bigG 1.8 B, DFN5B ViT-H 0.63 B) are built on `meta` to count parameters and estimate FLOPs;
they are timed only with `--real-clip` on an accelerator (one frame costs ~1 TFLOP).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .benchutil import time_call

__all__ = ["add_arguments", "main"]


def _ms(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    """Median wall time in ms of `fn()` over `repeat` runs after one warm-up."""
    with torch.no_grad():
        return time_call(fn, device, repeats=repeat, warmup=1).median * 1000


def _params(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def _bench_visual(enc, device, repeat, rows, label, fps=8):
    frames = torch.rand(fps, 3, 256, 256, device=device)  # one second of frames, resized inside
    ms = _ms(lambda: enc.encode_frames(frames), device, repeat)
    rows.append((label, "visual", device.type, _params(enc), f"{ms:9.1f} ms / s video ({fps} frames)"))


def _bench_sync(model, device, repeat, rows, label, frames: int):
    x = torch.rand(1, frames, 3, 224, 224, device=device) * 2 - 1
    ms = _ms(lambda: model.encode_video(x), device, repeat)
    segs = model.cfg.segments(frames)
    per_second = ms / segs * 25 / model.cfg.segment_stride  # long videos: 25/8 segments per second
    rows.append((label, "sync", device.type, _params(model),
                 f"{per_second:9.1f} ms / s video ({ms / segs:.1f} ms / segment, {segs} timed)"))


def _bench_text(enc, device, repeat, rows, label, batch=8):
    prompts = [f"a dog barks twice while rain falls on a tin roof, take {i}" for i in range(batch)]
    ms = _ms(lambda: enc.encode(prompts), device, repeat)
    rows.append((label, "text", device.type, _params(enc.model), f"{ms / batch:9.1f} ms / prompt (batch {batch})"))


def _big_clip_rows(rows):
    from ..encoders.clip import CLIP_MODELS, ClipVisionEncoder, clip_config
    for name in ("ViT-bigG-14-quickgelu", "ViT-H-14-378-quickgelu"):
        enc = ClipVisionEncoder.build(name, device="meta")
        v = clip_config(name)["vision_cfg"]
        tokens = (CLIP_MODELS[name].image_size // v["patch_size"]) ** 2 + 1
        gflop = 2 * _params(enc) * 1e6 * tokens / 1e9  # matmuls only; attention adds a few %
        rows.append((name, "visual", "meta", _params(enc),
                     f"not timed: ~{gflop:,.0f} GFLOP/frame, ~{8 * gflop / 1000:.1f} TFLOP / s video"))


def add_arguments(p) -> None:
    p.add_argument("--device", action="append", default=None,
                   help="device(s) to time on (default: cpu, plus cuda when available)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--real", action="store_true", help="also time Synchformer (122 M) and T5-Base (110 M)")
    p.add_argument("--real-clip", action="store_true", help="also time DFN5B ViT-H (slow on CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def main(args) -> int:
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    from ..encoders import ClipVisionEncoder, Synchformer, T5TextEncoder
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    rows: list[tuple] = []
    for name in devices:
        dev = torch.device(name)
        _bench_visual(ClipVisionEncoder.tiny(device=dev), dev, args.repeat, rows, "kf-tiny-clip")
        _bench_sync(Synchformer.tiny(device=dev), dev, args.repeat, rows, "kf-tiny synchformer", frames=64)
        _bench_text(T5TextEncoder.tiny(device=dev), dev, args.repeat, rows, "kf-tiny t5")
        if args.real:
            sync = Synchformer.build("synchformer", device=dev).eval()
            frames = 16 if dev.type == "cpu" else 64  # one segment on CPU: ~0.3 TFLOP
            _bench_sync(sync, dev, max(1, args.repeat // 3), rows, "synchformer (real)", frames=frames)
            del sync
            base = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
                            feed_forward_proj="relu")
            t5 = T5TextEncoder(T5EncoderModel(base).to(dev), ByT5Tokenizer(), max_length=77)
            _bench_text(t5, dev, args.repeat, rows, "t5-base (real)")
            del t5
        if args.real_clip:
            enc = ClipVisionEncoder.build("ViT-H-14-378-quickgelu", device=dev)
            _bench_visual(enc, dev, 1, rows, "ViT-H-14-378-quickgelu", fps=8)
            del enc
    _big_clip_rows(rows)
    print(f"{'configuration':26s} {'what':7s} {'device':6s} {'params M':>9s}  cost")
    for label, what, dev, params, cost in rows:
        print(f"{label:26s} {what:7s} {dev:6s} {params:9.2f}  {cost}")
    print("(sync per second of video = ms per segment x 25/8: segments of 16 frames at stride 8, 25 fps)")
    return 0
