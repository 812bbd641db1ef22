"""kf_core.heap: free heap memory goes back to the OS between the pieces of a long job."""
import sys

import pytest

from kf_core import heap


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2 ** 20


@pytest.mark.skipif(not sys.platform.startswith("linux") or heap._malloc_trim() is None,
                    reason="malloc_trim is glibc's")
def test_freed_fragments_are_returned_to_the_os():
    # 100 kB blocks live in malloc's heap (below its mmap threshold); freeing every other one leaves
    # ~100 MB of holes that glibc keeps resident, which is how a long clip's memory crept up
    blocks = [bytearray(b"x" * 100_000) for _ in range(2000)]
    del blocks[::2]
    held = _rss_mb()
    heap.release_free_memory()
    assert _rss_mb() < held - 50
    assert all(b[0] == ord("x") and b[-1] == ord("x") for b in blocks)   # what is alive is untouched


def test_release_is_a_no_op_where_there_is_no_malloc_trim(monkeypatch):
    heap._malloc_trim.cache_clear()
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    try:
        assert heap._malloc_trim() is None
        heap.release_free_memory()
    finally:
        heap._malloc_trim.cache_clear()
