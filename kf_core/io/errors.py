"""`MediaError` and the checks that turn a bad media file into a message a person can act on."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import MissingFileError, UserError

__all__ = ["MediaError", "MediaFileNotFound", "check_media_file", "check_dimensions", "MAX_PIXELS_PER_SIDE"]

# Larger than any real video (8K is 7680); anything above is a corrupt header or a mistake.
MAX_PIXELS_PER_SIDE = 16384


class MediaError(UserError):
    """A media file (or frame batch) that cannot be used; the message names it and says what to do."""

    def __init__(self, path: str | os.PathLike | None, problem: str, advice: str = "") -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        where = f"{self.path}: " if self.path is not None else ""
        text = f"{where}{problem}"
        if advice:
            text += f" — {advice}"
        super().__init__(text)


class MediaFileNotFound(MediaError, MissingFileError):
    """A media file that does not exist (also a FileNotFoundError)."""


def check_media_file(path: str | os.PathLike) -> Path:
    """Path in, the same Path out if it names a non-empty regular file; MediaError otherwise."""
    p = Path(path)
    if not p.exists():
        if os.path.islink(p):
            raise MediaFileNotFound(p, "is a broken link (its target does not exist)",
                                    "point it at the file again, or give the file itself")
        raise MediaFileNotFound(p, "file not found", "check the path (relative paths are resolved from "
                                f"{Path.cwd()})")
    if p.is_dir():
        raise MediaError(p, "is a folder, not a media file", "give the path of a video or audio file")
    size = p.stat().st_size
    if size == 0:
        raise MediaError(p, "file is empty (0 bytes)",
                         "the file was probably not finished writing or copying; export it again")
    return p


def check_dimensions(width: int, height: int, what: str, path: str | os.PathLike | None = None) -> None:
    """Raise MediaError when a width/height pair is zero, negative or absurdly large."""
    if not (0 < width <= MAX_PIXELS_PER_SIDE and 0 < height <= MAX_PIXELS_PER_SIDE):
        raise MediaError(path, f"{what} is {width}x{height} pixels; each side must be between 1 and "
                         f"{MAX_PIXELS_PER_SIDE}", "resize the video or use a sensible size")
