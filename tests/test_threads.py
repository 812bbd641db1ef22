"""kf_core.threads: `auto` leaves the cores other programs keep busy, and the knob's parsing."""
import os
import subprocess
import sys
import time

import pytest
import torch

from kf_core import threads as T

linux_proc = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc/stat")


@pytest.mark.parametrize("others, cpus, want", [(0.0, 2, 2), (0.25, 2, 2), (0.5, 2, 1), (1.0, 2, 1),
                                                (1.6, 2, 1), (3.0, 2, 1), (None, 2, None)])
def test_threads_leave_the_busy_cores(monkeypatch, others, cpus, want):
    monkeypatch.setattr(T, "DEFAULT", cpus)
    assert T.threads_for(others, cpus) == want


def test_auto_never_goes_past_torchs_default(monkeypatch):
    monkeypatch.setattr(T, "DEFAULT", 4)           # e.g. 4 physical cores, 8 logical
    assert T.threads_for(0.0, 8) == 4
    assert T.threads_for(5.0, 8) == 3


@pytest.mark.parametrize("value, want", [("auto", "auto"), (" AUTO ", "auto"), ("3", 3), (2, 2)])
def test_parse_threads(value, want):
    assert T.parse_threads(value) == want


@pytest.mark.parametrize("value", ["0", "-1", "two", 0, 1.5, True])
def test_parse_threads_refuses_nonsense_with_what_to_give(value):
    with pytest.raises(ValueError, match="'auto' or a whole number >= 1"):
        T.parse_threads(value)


def test_parse_threads_reads_the_environment(monkeypatch):
    monkeypatch.setenv(T.ENV, "1")
    assert T.parse_threads(None) == 1
    monkeypatch.delenv(T.ENV)
    assert T.parse_threads(None) == "auto"


@linux_proc
def test_a_spinning_neighbour_counts_and_our_own_work_does_not():
    load = T.CpuLoad()
    time.sleep(0.4)
    ambient = load.others()                         # whatever else this machine runs now
    if ambient > T.usable_cpus() - 1.2:
        pytest.skip(f"other programs keep {ambient:.1f} cores busy: no room to see one more")
    load.reset()
    t = time.monotonic()
    while time.monotonic() - t < 0.4:               # our own busy work is subtracted
        pass
    assert load.others() < ambient + 0.5
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)                             # let it start
        load.reset()
        time.sleep(0.4)
        assert load.others() > ambient + 0.6
    finally:
        spinner.kill()
        spinner.wait()


def test_apply_threads_sets_torch(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert T.apply_threads(1) == 1 == torch.get_num_threads()
        monkeypatch.setattr(T, "threads_for", lambda others, cpus: None)   # cannot tell: unchanged
        assert T.apply_threads("auto") == 1
    finally:
        torch.set_num_threads(before)
