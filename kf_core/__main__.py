"""Command line: python -m kf_core {generate,train,train-tiny,extract,eval,bench,fuzz,watermark} ...

Each command lives in its own module exposing `add_arguments(parser)` and `main(args) -> int`;
this file only dispatches, importing the chosen module lazily so `--help` stays fast. A command
with sub-commands maps names to modules; its "" entry (if any) is what the command means without
a sub-command (`train --preset ...` trains the flow model, as `train flow ...` does). A user's
mistake (`kf_core.errors.UserError`) is printed as one line, exit status 2; `--debug` shows its
traceback. Ctrl-C stops with status 130 (outputs being written are removed).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# Before torch is imported: PyTorch's CPU allocator reads this once, at its first allocation, and
# then asks the kernel for transparent huge pages for every tensor of 2 MB or more. A fresh
# multi-MB tensor then costs one page fault per 2 MB instead of one per 4 kB; BigVGAN-v2 on 8 s of
# audio makes tensors of ~34 MB hundreds of times (README, speed table). `THP_MEM_ALLOC_ENABLE=0`
# turns it off; inside ComfyUI, which imports torch first, set it when starting ComfyUI.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from .errors import UserError  # noqa: E402  (after the environment is set)

# command -> module, or command -> {subcommand: module}
COMMANDS: dict[str, str | dict[str, str]] = {
    "generate": "kf_core.cli_generate",
    "train": {
        "": "kf_core.train.cli",
        "flow": "kf_core.train.cli",
        "vae": "kf_core.train.cli_vae",
        "vocoder": "kf_core.train.cli_vocoder",
        "stereo": "kf_core.train.cli_stereo",
    },
    "train-tiny": "kf_core.train.tiny",
    "extract": "kf_core.train.extract",
    "eval": {
        "codec": "kf_core.eval.codec_eval",
        "synthetic": "kf_core.eval.synthetic_eval",
        "stereo": "kf_core.eval.stereo_eval",
        "takes": "kf_core.eval.takes_eval",
        "tiny": "kf_core.eval.tiny_eval",
        "sync-probe": "kf_core.eval.sync_probe",
        "vae-probe": "kf_core.eval.vae_probe",
        "vocoder-probe": "kf_core.eval.vocoder_probe",
    },
    "bench": {
        "dit": "kf_core.eval.bench_dit",
        "e2e": "kf_core.eval.bench_e2e",
        "codec": "kf_core.eval.bench_codec",
        "io": "kf_core.eval.bench_io",
        "encoders": "kf_core.eval.bench_encoders",
        "train": "kf_core.eval.bench_train",
        "long": "kf_core.eval.bench_long",
        "watermark": "kf_core.eval.bench_watermark",
        "mmaudio": "kf_core.eval.bench_mmaudio",
    },
    "fuzz": "kf_core.eval.fuzz",
    "watermark": {
        "detect": "kf_core.watermark.cli",
    },
}


def _module_help(module: str) -> str:
    return f"see `python -m kf_core ... --help` ({module})"


def _add_debug(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: a sub-command's default must not overwrite a --debug given before the command
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback of an error")


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """Parse argv, importing only the module of the chosen command."""
    parser = argparse.ArgumentParser(prog="python -m kf_core", description="Kling-Foley engine")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    words = [a for a in argv if a != "--debug"]  # `--debug` may come before the command
    chosen = words[0] if words else None
    chosen_sub = words[1] if len(words) > 1 else None
    for name, target in COMMANDS.items():
        if isinstance(target, dict):
            named = {k: v for k, v in target.items() if k}
            default = target.get("")
            p = sub.add_parser(name, help=f"{name}: {', '.join(named)}")
            if default is not None and name == chosen and chosen_sub not in named:
                # no sub-command given: the command's default module takes the arguments
                p.description = f"sub-commands: {', '.join(named)} (`{name} WHAT --help`); without one: {default}"
                p.set_defaults(_module=default)
                _add_debug(p)
                importlib.import_module(default).add_arguments(p)
                continue
            inner = p.add_subparsers(dest="subcommand", required=True, metavar="WHAT")
            for sname, module in named.items():
                sp = inner.add_parser(sname, help=_module_help(module))
                sp.set_defaults(_module=module)
                _add_debug(sp)
                if name == chosen and sname == chosen_sub:
                    importlib.import_module(module).add_arguments(sp)
        else:
            p = sub.add_parser(name, help=_module_help(target))
            p.set_defaults(_module=target)
            _add_debug(p)
            if name == chosen:
                importlib.import_module(target).add_arguments(p)
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _, args = build_parser(argv)
    try:
        return int(importlib.import_module(args._module).main(args) or 0)
    except UserError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("stopped (Ctrl-C); unfinished outputs were removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
