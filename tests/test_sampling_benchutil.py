"""Benchmark helpers (kf_core.eval.benchutil): device/dtype validation, timing, peak memory, tables."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest
import torch

from kf_core.eval.benchutil import (Timer, add_device_arguments, describe_peak_memory, format_table,
                                    peak_memory_bytes, reset_peak_memory, resolve_device, time_call)


def test_device_arguments_parse_and_resolve():
    p = argparse.ArgumentParser()
    add_device_arguments(p)
    args = p.parse_args(["--dtype", "bf16"])
    assert resolve_device(args.device, args.dtype) == (torch.device("cpu"), torch.bfloat16)
    assert resolve_device("cpu", torch.float16) == (torch.device("cpu"), torch.float16)
    with pytest.raises(SystemExit):
        p.parse_args(["--dtype", "int8"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given when CUDA is missing")
def test_cuda_requested_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="no usable CUDA GPU.*--device cpu"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="no usable CUDA GPU"):
        resolve_device("cuda:1", "float16")


def test_bad_device_and_dtype_are_named():
    with pytest.raises(ValueError, match="'gpu0' is not a device torch understands"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match=r"--dtype 'double' is unknown; choose one of \[.*bfloat16"):
        resolve_device("cpu", "double")


def test_timer_and_time_call_measure_wall_clock():
    with Timer("cpu") as t:
        time.sleep(0.03)
    assert 0.025 <= t.seconds < 1.0
    calls = []
    stats = time_call(lambda: calls.append(time.sleep(0.002)), "cpu", repeats=4, warmup=2)
    assert len(calls) == 6 and len(stats.times) == 4
    assert stats.min <= stats.median <= max(stats.times) and stats.min >= 0.0015
    with pytest.raises(ValueError, match="repeats >= 1"):
        time_call(lambda: None, repeats=0)


def test_cpu_peak_memory_is_the_process_peak_rss():
    reset_peak_memory("cpu")                                   # a no-op on the CPU, must not fail
    peak = peak_memory_bytes("cpu")
    status = Path("/proc/self/status")
    if status.exists():                                        # Linux: VmHWM is the same peak, in kB
        hwm = next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM"))
        assert abs(peak - hwm * 1024) <= 0.05 * peak
    assert peak > 20 * 2**20                                   # python + torch alone are far above 20 MiB
    assert "CPU process peak RSS" in describe_peak_memory("cpu")


def test_table_aligns_columns_and_checks_row_lengths():
    text = format_table(["sampler", "steps", "ms"], [["euler", 20, 1.23456], ["rk4", 5, 12.5]])
    lines = text.splitlines()
    assert lines[0].split() == ["sampler", "steps", "ms"] and set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["euler", "20", "1.23"] and lines[3].split() == ["rk4", "5", "12.5"]
    assert len({len(line) for line in lines[1:]}) == 1           # numbers right-aligned to one width
    assert lines[2].startswith("euler ") and lines[3].endswith("12.5")
    with pytest.raises(ValueError, match="row 1 has 2 values for 3 columns"):
        format_table(["a", "b", "c"], [[1, 2, 3], [1, 2]])
