"""Handing freed heap memory back to the operating system between the pieces of a long job.

glibc's malloc keeps memory that tensors freed inside its heaps and arenas instead of returning it,
and a long clip's stages (windows of sampling, chunks of decoding and vocoding) free and allocate
blocks of many sizes over and over, so the resident set creeps up with the clip's length: a
60-minute generation peaked 1.59x as high as an 8 s one. Calling `malloc_trim` between pieces
returns that memory (about a millisecond a call at these heap sizes): 1.32x, and 1.17x at 10 min
(`python -m kf_core bench long`). Elsewhere (macOS, Windows, musl) this does nothing.
"""
from __future__ import annotations

import ctypes
import sys
from functools import cache

__all__ = ["release_free_memory"]


@cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim    # the process's own C library
    except (OSError, AttributeError):           # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> None:
    """Return the C heap's free pages to the OS (glibc `malloc_trim(0)`); a no-op where there is none."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
