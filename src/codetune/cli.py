"""Command-line entry point: the only place that prints errors and chooses exit codes.

Subcommands live in `codetune.commands.<name>`; each module defines `NAME`, `HELP`,
`add_arguments(parser)` and `run(args) -> int`, and is discovered here, so adding a command
never edits this file. Modules import heavy libraries (torch, transformers) inside `run`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from codetune import __version__
from codetune.errors import CodetuneError


def _command_modules() -> list:
    import codetune.commands as pkg

    mods = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mods.append(importlib.import_module(f"codetune.commands.{info.name}"))
    return mods


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every discovered subcommand."""
    parser = argparse.ArgumentParser(
        prog="codetune",
        description="Fine-tune small code LMs with LoRA, evaluate them, and report findings with error bars.",
    )
    parser.add_argument("--version", action="version", version=f"codetune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        # argparse %-formats help strings: a literal "95%" would crash `--help`.
        text = mod.HELP.replace("%", "%%")
        p = sub.add_parser(mod.NAME, help=text, description=text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run codetune with `argv` (without the program name) and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from codetune.device import limit_onednn_cache

    limit_onednn_cache()  # before any matmul of this process: see its docstring
    try:
        return int(args._run(args) or 0)
    except CodetuneError as exc:
        # One line: what failed, then the fix.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`codetune config | head`): nothing left to say to it, and no traceback.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("error: interrupted; rerun the same command to resume where it stopped", file=sys.stderr)
        return 130


def console_main() -> None:
    """Console-script shim."""
    sys.exit(main())
