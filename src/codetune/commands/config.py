"""`codetune config --explain [KEY]`: every config key with its type, default and description."""

from __future__ import annotations

import argparse
import textwrap

NAME = "config"
HELP = "explain the run config's keys: type, default, description, and whether a key defines the result"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "key", nargs="?", help="a dotted key (train.lr) or a section (train) to explain; default: every key"
    )
    p.add_argument("--explain", action="store_true", help="print the keys with their descriptions (the default)")


def run(args: argparse.Namespace) -> int:
    from codetune.config import describe_keys
    from codetune.errors import ConfigError

    keys = describe_keys()
    if args.key:
        wanted = args.key.removeprefix("base.")
        chosen = [k for k in keys if k.key == wanted or k.key.startswith(wanted + ".")]
        if not chosen:
            import difflib

            names = [k.key for k in keys] + sorted({k.key.split(".")[0] for k in keys if "." in k.key})
            close = difflib.get_close_matches(wanted, names, n=1, cutoff=0.5)
            hint = f"did you mean `{close[0]}`?" if close else "run `codetune config --explain` for every key"
            raise ConfigError(f"unknown key `{args.key}`", hint)
        keys = chosen
    for group, execution in (
        ("Defines the result (hashed into the run id)", False),
        ("How a run executes (recorded in its results, not hashed)", True),
    ):
        part = [k for k in keys if k.execution == execution]
        if not part:
            continue
        print(f"{group}:")
        for k in part:
            print(f"  {k.key}: {k.type} = {k.default!r}")
            for line in textwrap.wrap(k.description, 100):
                print(f"      {line}")
        print()
    print("Set a key with key=value after the experiment (codetune run quick train.lr=3e-4); a list value")
    print("makes a grid axis (seed=[0,1,2]).")
    return 0
