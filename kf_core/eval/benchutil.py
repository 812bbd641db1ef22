"""What every `python -m kf_core bench ...` command shares: device/dtype flags, timing, peak memory, tables.

    add_device_arguments(parser)                  # --device, --dtype
    device, dtype = resolve_device(args.device, args.dtype)   # clear errors for unusable choices
    reset_peak_memory(device)
    stats = time_call(lambda: model(x), device, repeats=10, warmup=2)   # seconds, CUDA-synchronised
    print(format_table(["what", "ms"], [["forward", stats.median * 1e3]]))
    print(describe_peak_memory(device))

Benchmarks print numbers; nothing here is used by tests of model quality.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["DTYPES", "add_device_arguments", "resolve_device", "synchronize", "Timer", "TimingStats",
           "time_call", "reset_peak_memory", "peak_memory_bytes", "describe_peak_memory", "format_table"]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


def add_device_arguments(p: argparse.ArgumentParser, *, default_dtype: str = "float32") -> None:
    """Parser -> the same parser with --device (default cpu) and --dtype flags added."""
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--dtype", default=default_dtype, choices=sorted(DTYPES),
                   help=f"compute dtype (default {default_dtype})")


def resolve_device(device: str | torch.device, dtype: str | torch.dtype = "float32") -> tuple[torch.device, torch.dtype]:
    """Device and dtype as given on the command line -> (torch.device, torch.dtype), checked usable here.

    Raises ValueError naming the problem (CUDA asked for but not available, an index past the
    device count, bfloat16 on a GPU without it, an unknown dtype) instead of failing deep inside a model.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"--device {device!r} is not a device torch understands (try cpu, cuda, cuda:0, mps): {e}") from e
    if isinstance(dtype, torch.dtype):
        dt = dtype
    elif dtype in DTYPES:
        dt = DTYPES[dtype]
    else:
        raise ValueError(f"--dtype {dtype!r} is unknown; choose one of {sorted(DTYPES)}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device} asked for CUDA, but this torch build or machine has no usable CUDA "
                             f"GPU (torch {torch.__version__}, CUDA build {torch.version.cuda}); use --device cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"--device {device}: only {count} CUDA device(s) are visible (cuda:0..cuda:{count - 1})")
        if dt == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise ValueError(f"--dtype bfloat16 is not supported by {torch.cuda.get_device_name(dev)}; use float16 or float32")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {device} asked for Apple MPS, which is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise ValueError(f"--device {device}: benchmarks support cpu, cuda and mps, not {dev.type!r}")
    return dev, dt


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work on `device` (no-op on the CPU), so wall-clock time covers the work."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


class Timer:
    """Context manager measuring wall-clock seconds of its body, synchronising `device` at both ends.

        with Timer(device) as t:
            work()
        t.seconds
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.seconds = float("nan")

    def __enter__(self) -> "Timer":
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start


@dataclass(frozen=True)
class TimingStats:
    """Seconds per call over `repeats` timed calls (after warm-up)."""

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.times)

    @property
    def min(self) -> float:
        return min(self.times)


def time_call(fn: Callable[[], object], device: torch.device | str = "cpu", *, repeats: int = 5,
              warmup: int = 1) -> TimingStats:
    """A zero-argument callable -> TimingStats of `repeats` synchronised calls after `warmup` untimed ones."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"time_call needs repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        with Timer(device) as t:
            fn()
        times.append(t.seconds)
    return TimingStats(tuple(times))


def reset_peak_memory(device: torch.device | str) -> None:
    """Start a new CUDA peak-memory window; the CPU figure (process max RSS) cannot be reset."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)


def peak_memory_bytes(device: torch.device | str) -> int | None:
    """Device -> peak bytes: CUDA max_memory_allocated since the last reset, or on the CPU the
    process-wide peak resident set size since the process started (everything the process ever
    held, Python and libraries included; not resettable). None where neither is measurable
    (MPS, or no `resource` module as on Windows)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.max_memory_allocated(dev))
    if dev.type != "cpu":
        return None
    try:
        import resource
    except ImportError:
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024   # macOS reports bytes, Linux KiB


def describe_peak_memory(device: torch.device | str) -> str:
    """Device -> e.g. '812.4 MiB (CUDA max allocated)' or '1.2 GiB (CPU process peak RSS)'."""
    dev = torch.device(device)
    n = peak_memory_bytes(dev)
    if n is None:
        return f"n/a on {dev.type}"
    what = "CUDA max allocated" if dev.type == "cuda" else "CPU process peak RSS"
    return f"{_bytes(n)} ({what})"


def _bytes(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, floatfmt: str = ".3g") -> str:
    """Column headers and rows of values -> an aligned plain-text table (numbers right-aligned).

    Floats are formatted with `floatfmt`; every row must have one value per header.
    """
    for i, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f"table row {i} has {len(row)} values for {len(headers)} columns: {list(row)}")

    def cell(v: object) -> str:
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    cells = [[cell(v) for v in row] for row in rows]
    numeric = [all(isinstance(r[j], (int, float)) and not isinstance(r[j], bool) for r in rows) and bool(rows)
               for j in range(len(headers))]
    widths = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(headers)]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric)).rstrip()

    return "\n".join([line(list(headers)), line(["-" * w for w in widths])] + [line(r) for r in cells])
