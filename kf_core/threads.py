"""How many CPU threads a generation uses, on a CPU that other programs may be using too.

PyTorch's CPU kernels split each operation over `torch.get_num_threads()` threads and wait at the
end for the slowest. On a quiet machine one thread per core is fastest; but when another process
keeps a core busy, the operating system deschedules one of our threads for whole time slices and
every operation waits for it: beside one spinning process on a 2-core machine a kf-tiny 8 s clip
took 1.9 s with 1 thread and 8.7 s with 2 (`bench e2e --threads 1 2 --hog 1`; beside another
PyTorch job, up to 38 s). So `auto` counts the cores the others keep busy and leaves them alone:

    threads = cores we may run on - cores busy with other processes (rounded up past 0.3),
              at least 1 and at most torch's default (physical cores, or OMP_NUM_THREADS)

"Busy with others" is the machine's CPU time over a short window (Linux `/proc/stat`, only the
cores this process may run on) minus this process's own CPU time over the same window, so a
measurement taken while we load models is not fooled by our own work. Where `/proc/stat` is not
there (macOS, Windows), `auto` keeps torch's default.

The knob: `generate --threads N|auto`, or `KF_THREADS=N|auto` in the environment (the command
line wins); the default is `auto`. `bench e2e --threads 1 2 auto` compares settings. The ComfyUI
nodes leave torch's thread count to ComfyUI (`torch.set_num_threads` is process-wide, and other
nodes share the process).
"""
from __future__ import annotations

import math
import os
import time

import torch

__all__ = ["CpuLoad", "usable_cpus", "threads_for", "parse_threads", "apply_threads", "ENV"]

ENV = "KF_THREADS"
MARGIN = 0.3          # cores' worth of others' use that still counts as idle (daemons, the shell)
MIN_WINDOW_S = 0.1    # a load reading spans at least this long
DEFAULT = torch.get_num_threads()   # torch's own choice (physical cores, or OMP_NUM_THREADS): the most auto uses


def _affinity() -> set[int] | None:
    """The cores this process may run on, where the OS says (Linux), else None."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def usable_cpus() -> int:
    """How many cores this process may run on (its affinity mask where the OS has one)."""
    cpus = _affinity()
    return len(cpus) if cpus is not None else os.cpu_count() or 1


def _busy_ticks(cpus: set[int] | None) -> int | None:
    """Busy clock ticks (everything but idle and iowait) summed over `cpus` since boot, or None."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    total = 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        v = [int(x) for x in fields]
        total += sum(v[:8]) - v[3] - v[4]        # user nice system [idle iowait] irq softirq steal
    return total


class CpuLoad:
    """Cores kept busy by other processes, from a window that opens when this is made (or at
    `reset()`) and closes at `others()`."""

    def __init__(self) -> None:
        self._cpus = _affinity()
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.reset()

    def reset(self) -> None:
        self._t, self._own, self._busy = time.monotonic(), time.process_time(), _busy_ticks(self._cpus)

    def others(self) -> float | None:
        """Cores' worth of CPU time others used since the window opened (None: cannot tell here)."""
        if self._busy is None:
            return None
        wait = MIN_WINDOW_S - (time.monotonic() - self._t)
        if wait > 0:
            time.sleep(wait)
        busy = _busy_ticks(self._cpus)
        wall = time.monotonic() - self._t
        own = time.process_time() - self._own
        if busy is None or wall <= 0:
            return None
        return max(0.0, ((busy - self._busy) / self._tick - own) / wall)


def threads_for(others: float | None, cpus: int) -> int | None:
    """Cores busy with others, usable cores -> threads to use (None: keep torch's default)."""
    if others is None:
        return None
    return max(1, min(DEFAULT, cpus - math.ceil(others - MARGIN)))


def parse_threads(value: str | int | None) -> int | str | None:
    """'auto' / a positive whole number / None (then $KF_THREADS, else 'auto') -> 'auto' or an int."""
    if value is None:
        value = os.environ.get(ENV, "auto")
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"threads must be 'auto' or a whole number >= 1, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"threads must be 'auto' or a whole number >= 1, got {value!r}")
    return value


def apply_threads(choice: int | str, load: CpuLoad | None = None) -> int:
    """Set torch's CPU threads to `choice` (an int, or 'auto' read from `load`, a window opened
    earlier: default a fresh 0.1 s one) -> the number now in use."""
    if choice == "auto":
        n = threads_for((load or CpuLoad()).others(), usable_cpus())
    else:
        n = int(choice)
    if n is not None and n != torch.get_num_threads():
        torch.set_num_threads(n)
    return torch.get_num_threads()
