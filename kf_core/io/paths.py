"""Output files that never overwrite and never half-exist: `unique_path` and `atomic_output`.

Writers produce a hidden temp file in the destination folder (same file system, so publishing
is a rename-like link) and publish it under a free name only after the write finished; an
exception or a cancel in between deletes the temp file and leaves nothing behind.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["unique_path", "atomic_output", "PendingOutput"]


def unique_path(path: str | os.PathLike) -> Path:
    """Desired path in, the same path if free, else the first free `stem_00001.ext`, `_00002`, ..."""
    p = Path(path)
    if not p.exists():
        return p
    i = 1
    while True:
        candidate = p.with_name(f"{p.stem}_{i:05d}{p.suffix}")
        if not candidate.exists():
            return candidate
        i += 1


def _publish(tmp: Path, wanted: Path) -> Path:
    """Give the finished temp file its final free name without ever replacing an existing file."""
    while True:
        target = unique_path(wanted)
        try:
            os.link(tmp, target)  # fails if target appeared meanwhile: no overwrite race
        except FileExistsError:
            continue
        except OSError:  # file system without hard links
            if target.exists():
                continue
            os.replace(tmp, target)
            return target
        tmp.unlink()
        return target


@dataclass
class PendingOutput:
    """`tmp`: where to write now; `path`: the published file, set when the `with` block ends."""

    tmp: Path
    path: Path | None = None


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[PendingOutput]:
    """Desired output path in; yields a PendingOutput whose `tmp` (same folder, same extension, so
    format detection works) is written inside the block; on success it is published under
    `unique_path(path)` (read `.path`), on any exception it is deleted."""
    wanted = Path(path)
    wanted.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{wanted.stem}.", suffix=f".partial{wanted.suffix}",
                               dir=wanted.parent)
    os.close(fd)
    pending = PendingOutput(tmp=Path(tmp))
    try:
        yield pending
        pending.path = _publish(pending.tmp, wanted)
    finally:
        if pending.tmp.exists():
            pending.tmp.unlink()
