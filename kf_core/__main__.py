"""Command line: python -m kf_core {generate,train,train-tiny,extract,eval,bench,watermark} ...

Each command lives in its own module exposing `add_arguments(parser)` and `main(args) -> int`;
this file only dispatches, importing the chosen module lazily so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command -> module, or command -> {subcommand: module}
COMMANDS: dict[str, str | dict[str, str]] = {
    "generate": "kf_core.cli_generate",
    "train": "kf_core.train.cli",
    "train-tiny": "kf_core.train.tiny",
    "extract": "kf_core.train.extract",
    "eval": {
        "codec": "kf_core.eval.codec_eval",
        "synthetic": "kf_core.eval.synthetic_eval",
    },
    "bench": {
        "dit": "kf_core.eval.bench_dit",
        "codec": "kf_core.eval.bench_codec",
        "io": "kf_core.eval.bench_io",
        "encoders": "kf_core.eval.bench_encoders",
        "train": "kf_core.eval.bench_train",
        "watermark": "kf_core.eval.bench_watermark",
    },
    "watermark": {
        "detect": "kf_core.watermark.cli",
    },
}


def _module_help(module: str) -> str:
    return f"see `python -m kf_core ... --help` ({module})"


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """Parse argv, importing only the module of the chosen command."""
    parser = argparse.ArgumentParser(prog="python -m kf_core", description="Kling-Foley engine")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = argv[0] if argv else None
    chosen_sub = argv[1] if len(argv) > 1 else None
    for name, target in COMMANDS.items():
        if isinstance(target, dict):
            p = sub.add_parser(name, help=f"{name}: {', '.join(target)}")
            inner = p.add_subparsers(dest="subcommand", required=True, metavar="WHAT")
            for sname, module in target.items():
                sp = inner.add_parser(sname, help=_module_help(module))
                sp.set_defaults(_module=module)
                if name == chosen and sname == chosen_sub:
                    importlib.import_module(module).add_arguments(sp)
        else:
            p = sub.add_parser(name, help=_module_help(target))
            p.set_defaults(_module=target)
            if name == chosen:
                importlib.import_module(target).add_arguments(p)
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _, args = build_parser(argv)
    return int(importlib.import_module(args._module).main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
