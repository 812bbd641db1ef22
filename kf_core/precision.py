"""Which dtype the networks compute in: `--precision auto | fp32 | bf16 | fp16`.

`auto` takes bfloat16 where it is both native and worth it, float32 elsewhere:
- on CUDA, bf16 where the GPU has it, else fp16;
- on a CPU with native bf16 matmuls (AVX-512 BF16 / AMX, which oneDNN reports) and a flow network
  of at least `BIG_MODEL_PARAMS` parameters: bf16. On such a CPU a 2048² matmul runs ~6x faster in
  bf16, and MMAudio-S's DiT, CLIP, Synchformer and VAE 2.3-3.1x faster end to end (issue 15's table);
  the small kf-tiny networks are dominated by elementwise work and stay float32, bit for bit as
  before;
- anything else (Apple GPUs, CPUs without bf16): float32.
fp32 is always available for exact parity with float32 references.

What the dtype applies to (`Components.cast`; `Components.apply_precision` picks and casts): the DiT,
the text encoder (not under fp16, which T5 overflows), CLIP, Synchformer and the Mel-VAE. The
vocoder and Mono2Stereo stay float32: bf16 speeds BigVGAN up 1.26x on the CPU but moves its
waveform by 1.4-1.9 %, and a vocoder's error is directly audible.
"""
from __future__ import annotations

import functools

import torch

__all__ = ["PRECISIONS", "BIG_MODEL_PARAMS", "cpu_has_fast_bf16", "pick_dtype"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
BIG_MODEL_PARAMS = 50_000_000  # kf-tiny's DiT has 3.3 M, MMAudio-S 157 M


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True when oneDNN runs bf16 matmuls natively on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN or without the query
        return False


def pick_dtype(precision: str, device: torch.device | str, params: int) -> torch.dtype:
    """precision ("auto", "fp32", "bf16", "fp16") + compute device + the flow network's parameter count
    -> the dtype the networks run in (see the module docstring for what `auto` picks)."""
    if precision in _DTYPES:
        return _DTYPES[precision]
    if precision != "auto":
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and params >= BIG_MODEL_PARAMS and cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32
