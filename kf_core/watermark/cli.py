"""`python -m kf_core watermark detect FILE...`: is the pack's watermark in these audio or video files?

Prints one line per file: MARKED or not marked, the score (z, with the threshold and p-value)
and the payload. Exit status: 0 when every file is marked, 1 when at least one is not, 2 when a
file could not be read (that file's line says why).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..io import MediaError, read_audio
from .detect import DEFAULT_FPR, detect_watermark
from .pattern import DEFAULT_KEY

EXIT_ALL_MARKED, EXIT_SOME_UNMARKED, EXIT_UNREADABLE = 0, 1, 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="audio (.wav/.flac/.mp3/...) or video files")
    p.add_argument("--key", default=DEFAULT_KEY, help="the watermark key (default: the pack's public key)")
    p.add_argument("--fpr", type=float, default=DEFAULT_FPR,
                   help=f"false-positive rate the verdict is held to (default {DEFAULT_FPR:g})")


def main(args: argparse.Namespace) -> int:
    if not args.key:
        raise UserError("--key must not be empty (leave it out for the pack's public key)")
    if not 0 < args.fpr < 1:
        raise UserError(f"--fpr must be a probability between 0 and 1, got {args.fpr}")
    status = EXIT_ALL_MARKED
    for path in args.files:
        try:
            wave, sr = read_audio(path)
        except MediaError as e:  # its message names the file and says what is wrong
            print(f"error: {e}")
            status = EXIT_UNREADABLE
            continue
        d = detect_watermark(wave, sr, key=args.key, fpr=args.fpr)
        print(f"{path}: {d} [{d.seconds:.1f} s]")
        if not d.present and status == EXIT_ALL_MARKED:
            status = EXIT_SOME_UNMARKED
    return status
