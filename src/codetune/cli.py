"""Command-line entry point: the only place that prints errors and chooses exit codes.

Subcommands live in `codetune.commands.<name>`; each module defines `NAME`, `HELP`,
`add_arguments(parser)` and `run(args) -> int`, and is discovered here, so adding a command
never edits this file. Modules import heavy libraries (torch, transformers) inside `run`.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from typing import Any

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


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parse_args, except that `key=value` overrides may also follow options (`run quick --dry-run
    lora.r=8`): argparse hands positionals after an option back as unknown, and they join the overrides."""
    args, extra = parser.parse_known_args(argv)
    if extra and isinstance(getattr(args, "overrides", None), list):
        overrides = [a for a in extra if "=" in a and not a.startswith("-")]
        args.overrides += overrides
        extra = [a for a in extra if a not in overrides]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run codetune with `argv` (without the program name) and return the exit status."""
    parser = build_parser()
    args = _parse(parser, list(argv) if argv is not None else sys.argv[1:])
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from codetune.device import limit_onednn_cache

    limit_onednn_cache()  # before any matmul of this process: see its docstring
    stdout = sys.stdout = _WatchedStdout(sys.stdout)
    try:
        status = int(args._run(args) or 0)
        sys.stdout.flush()  # output still buffered fails here, not as a traceback while Python exits
        return status
    except CodetuneError as exc:
        # One line: what failed, then the fix.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`codetune config | head`): nothing left to say to it, and no traceback.
        _discard(stdout.stream)
        return 141
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # A write outside codetune.io's (which name their file): standard output (`codetune syntax ... >
        # /dev/full`), or a file the error may name.
        if stdout.failed:
            where, fix = "standard output", "free space there, or send the output elsewhere, and rerun"
            _discard(stdout.stream)
        else:
            where, fix = exc.filename or "a file", "free space and rerun"
        print(f"error: no space left on device writing {where}; {fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; rerun the same command to resume where it stopped", file=sys.stderr)
        return 130
    finally:
        sys.stdout = stdout.stream


class _WatchedStdout:
    """sys.stdout as it was, noting whether a write to it failed (so an OSError can be told apart from a
    file's)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.failed = False

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError:
            self.failed = True
            raise

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError:
            self.failed = True
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _discard(stream: Any) -> None:
    """Point the stream's file descriptor at /dev/null, so the flush at exit has nowhere to fail."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # a test's capture: nothing to redirect
        return
    os.dup2(os.open(os.devnull, os.O_WRONLY), fd)


def console_main() -> None:
    """Console-script shim."""
    sys.exit(main())
