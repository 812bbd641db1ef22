"""The one kind of error a person can fix: `UserError` (and `MissingFileError` for absent files).

Every mistake a user can make (a wrong path, a bad weight file, an impossible duration, a full
disk) raises a UserError whose message says what was wrong and what to do. The command line
prints it as one line (exit status 2; `--debug` shows the traceback); any other exception is a
bug and keeps its traceback. UserError is a ValueError, and MissingFileError also a
FileNotFoundError, so callers that caught those before still do.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["UserError", "MissingFileError", "write_error", "WRITE_ERRNOS"]


class UserError(ValueError):
    """A mistake in the input, the files or the environment; the message says what to do."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


# errno -> what it means for someone writing a file, and what to do about it
WRITE_ERRNOS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", "free some space or choose another folder"),
    errno.EDQUOT: ("the disk quota is used up", "free some space or choose another folder"),
    errno.EFBIG: ("the file grew past the size this file system (or a ulimit) allows",
                  "choose another folder or raise the file size limit"),
    errno.EROFS: ("the folder is on a read-only file system", "choose a writable folder"),
    errno.EACCES: ("permission denied", "choose a folder you may write to"),
    errno.EPERM: ("permission denied", "choose a folder you may write to"),
    errno.EIO: ("the device reported an input/output error", "check the disk and try again"),
}


def write_error(path: str | os.PathLike, err: BaseException, doing: str = "writing") -> UserError | None:
    """An OSError met while writing `path` -> a UserError naming `path` (not a hidden temp file) and
    the cause in plain words; None when the error is not one a user can fix by choosing a place."""
    code = getattr(err, "errno", None)
    if code is None or code < 0:  # FFmpeg reports errno values negated
        code = -code if isinstance(code, int) else None
    if code not in WRITE_ERRNOS:
        return None
    what, advice = WRITE_ERRNOS[code]
    return UserError(f"{Path(path)}: {doing} failed: {what} — {advice}")
