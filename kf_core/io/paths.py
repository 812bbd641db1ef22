"""Output files that never overwrite and never half-exist: `unique_path`, `atomic_output`, `sweep_partials`.

The one publishing routine of the engine. A writer fills a hidden temp file in the destination
folder (same file system, so publishing is a hard link) named `.STEM.HOST-PID.RANDOM.partial.EXT`,
and the file gets its final, free name only once the write finished. The temp file is removed on
every exit path Python can see: an exception or a cancel in the block, SIGTERM / SIGINT (the
handler removes the live temp files, then hands the signal to whatever handler was installed
before), and interpreter exit (atexit). What no process can clean up after itself (SIGKILL, power
loss) is removed by `sweep_partials`, which every `atomic_output` runs on its folder: it deletes
this module's partial files whose writing process (same host, by pid) is gone, and never a live
process's file.

- `unique_path(p)`: p if no directory entry of that name exists — a dangling or a normal symbolic
  link counts as taken — else `stem_00001.ext`, `_00002`, ...
- The final file follows the umask (0644 under the usual 022), like any file a program creates.
"""
from __future__ import annotations

import atexit
import errno
import logging
import os
import re
import secrets
import signal
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError, write_error

__all__ = ["unique_path", "atomic_output", "PendingOutput", "sweep_partials", "install_cleanup_handlers",
           "partial_name", "check_writable_folder"]

log = logging.getLogger(__name__)

_HOST = f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFFFFFF:08x}"
# .STEM.HOST-PID.RANDOM.partial.EXT (EXT may be empty); STEM may itself contain dots
_PARTIAL = re.compile(r"^\.(?P<stem>.+)\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\.(?P<rand>[0-9a-z]{8})\.partial"
                      r"(?P<ext>\.[^./]*)?$")
# what this module wrote before pids were part of the name (mkstemp's 8 random characters)
_LEGACY = re.compile(r"^\.(?P<stem>.+)\.[A-Za-z0-9_]{8}\.partial(\.[^./]*)?$")
_LEGACY_AGE = 24 * 3600.0  # seconds without a write after which a legacy partial is surely abandoned
_MAX_NUMBERED = 100_000

_live: dict[Path, int] = {}  # temp files being written -> the pid writing them (a forked child has others')
_lock = threading.RLock()  # re-entrant: a signal handler may run while the main thread holds it
_installed = False
_previous: dict[int, object] = {}


# ---------------------------------------------------------------- names
def unique_path(path: str | os.PathLike) -> Path:
    """Desired path in, the same path if no entry of that name exists, else the first free
    `stem_00001.ext`, `_00002`, ... (any directory entry is taken: files, folders, links, dangling links)."""
    p = Path(path)
    if not os.path.lexists(p):
        return p
    for i in range(1, _MAX_NUMBERED):
        candidate = p.with_name(f"{p.stem}_{i:05d}{p.suffix}")
        if not os.path.lexists(candidate):
            return candidate
    raise UserError(f"{p}: {_MAX_NUMBERED - 1} numbered files of this name exist already — choose another name")


def partial_name(wanted: Path) -> str:
    """The hidden temp-file name for an output `wanted` written by this process."""
    return f".{wanted.stem}.{_HOST}-{os.getpid()}.{secrets.token_hex(4)}.partial{wanted.suffix}"


# ---------------------------------------------------------------- cleanup
def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def sweep_partials(folder: str | os.PathLike) -> list[Path]:
    """Delete this module's abandoned temp files in `folder`; -> the paths removed.

    A partial file is abandoned when it names this host and a process that no longer exists, or,
    for the older pid-less names, when nothing wrote to it for a day. Files of live processes,
    of other hosts and every other file are left alone."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        name = entry.name
        if not name.startswith(".") or ".partial" not in name:
            continue
        m = _PARTIAL.match(name)
        try:
            if m is not None:
                if m["host"] != _HOST or _pid_alive(int(m["pid"])):
                    continue
            elif _LEGACY.match(name) is None or now - entry.stat(follow_symlinks=False).st_mtime < _LEGACY_AGE:
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:  # vanished meanwhile, or not ours to delete
            continue
    if removed:
        log.info("removed %d unfinished output file(s) left by an interrupted run in %s", len(removed), folder)
    return removed


def _remove_live() -> None:
    me = os.getpid()
    with _lock:
        paths = [p for p, pid in _live.items() if pid == me]
        for p in paths:
            del _live[p]
    for p in paths:
        try:
            p.unlink()
        except OSError:
            pass


def _on_signal(signum, frame) -> None:
    previous = _previous.get(signum, signal.SIG_DFL)
    if previous == signal.SIG_IGN:
        return  # the program chose to ignore this signal: its writes go on
    _remove_live()
    if callable(previous):
        previous(signum, frame)
        return
    # default action (terminate): restore it and re-deliver, so the exit status says "killed by signum"
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_cleanup_handlers() -> bool:
    """Chain SIGTERM/SIGINT handlers (and an atexit hook) that remove live temp files; -> whether the
    signal handlers are in place (only the main thread may install them; elsewhere the sweep of the
    next run cleans up). The handlers that were installed before keep running after ours."""
    global _installed
    if _installed:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    with _lock:
        if _installed:
            return True
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                prev = signal.getsignal(signum)
                if prev is None:  # a handler installed outside Python: leave it alone
                    continue
                signal.signal(signum, _on_signal)
            except (ValueError, OSError):  # not allowed here (embedded interpreter, ...)
                continue
            _previous[signum] = prev
        atexit.register(_remove_live)
        _installed = True
    return True


# ---------------------------------------------------------------- folders and publishing
def check_writable_folder(folder: Path, for_path: Path) -> None:
    """Raise UserError unless a file can be created in `folder` (tried for real, then removed)."""
    probe = folder / partial_name(for_path)
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as e:
        raise (write_error(for_path, e, "creating the file") or
               UserError(f"{for_path}: cannot create a file in {folder} ({e.strerror}) — choose another folder")) from e
    os.close(fd)
    os.unlink(probe)


def _make_folder(folder: Path, for_path: Path) -> None:
    if folder.is_dir():
        return
    if os.path.lexists(folder) and not folder.is_dir():
        raise UserError(f"{for_path}: {folder} is a file, not a folder — choose another output path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise (write_error(for_path, e, "creating its folder") or
               UserError(f"{for_path}: cannot create the folder {folder} ({e.strerror}) — choose another folder")) from e


def _new_temp(wanted: Path) -> Path:
    """Create the empty temp file with mode 0666 & ~umask (so the published file follows the umask)."""
    for _ in range(100):
        tmp = wanted.parent / partial_name(wanted)
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        except OSError as e:
            raise (write_error(wanted, e, "creating the file") or
                   UserError(f"{wanted}: cannot create a file there ({e.strerror})")) from e
        os.close(fd)
        return tmp
    raise UserError(f"{wanted}: could not create a temporary file next to it")


def _publish(tmp: Path, wanted: Path) -> Path:
    """Give the finished temp file its final free name without ever replacing an existing entry."""
    for _ in range(_MAX_NUMBERED):
        target = unique_path(wanted)
        try:
            os.link(tmp, target)  # fails if target appeared meanwhile: no overwrite race
        except FileExistsError:
            continue
        except FileNotFoundError as e:
            if not os.path.lexists(tmp):
                raise UserError(f"{wanted}: the unfinished file was removed while it was written "
                                "(the process was being stopped); nothing was saved") from e
            raise
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise (write_error(wanted, e, "saving") or e) from e
            # a file system without hard links: reserve the name, then move the file onto the reservation
            try:
                fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                continue
            os.close(fd)
            os.replace(tmp, target)
            return target
        tmp.unlink()
        return target
    raise UserError(f"{wanted}: no free name found after {_MAX_NUMBERED} tries — choose another name")


@dataclass
class PendingOutput:
    """`tmp`: where to write now; `path`: the published file, set when the `with` block ends."""

    tmp: Path
    wanted: Path
    path: Path | None = None


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[PendingOutput]:
    """Desired output path in; yields a PendingOutput whose `tmp` (same folder, same extension, so
    format detection works) is written inside the block; on success it is published under
    `unique_path(path)` (read `.path`), on any exception or signal it is deleted. An OSError
    raised in the block (disk full, read-only, ...) becomes a UserError naming `path`."""
    wanted = Path(path)
    install_cleanup_handlers()
    _make_folder(wanted.parent, wanted)
    sweep_partials(wanted.parent)
    tmp = _new_temp(wanted)
    with _lock:
        _live[tmp] = os.getpid()
    pending = PendingOutput(tmp=tmp, wanted=wanted)
    try:
        try:
            yield pending
        except OSError as e:
            friendly = write_error(wanted, e)
            if friendly is None:
                raise
            raise friendly from e
        pending.path = _publish(tmp, wanted)
    finally:
        with _lock:
            _live.pop(tmp, None)
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
