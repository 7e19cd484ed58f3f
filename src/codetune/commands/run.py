"""`codetune run PRESET|FILE [key=value ...]`: run an experiment grid, resuming finished work."""

from __future__ import annotations

import argparse
import sys

NAME = "run"
HELP = "run an experiment (a preset such as quick/rank/scale/lang, or a YAML file) and write its results"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="preset name (quick, rank, scale, lang) or path to an experiment YAML")
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="e.g. lora.r=8, seed=[0,1,2], data.train_size=50"
    )
    p.add_argument(
        "--out", default="runs", help="output root; results go to OUT/<experiment name>/ (default: runs)"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="list the runs with their ids and estimated cost, run nothing"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--executor",
        choices=("local", "ray"),
        help="where the cells run: local (one after another here, the default) or ray (Ray tasks on a "
        "cluster; OUT must be a directory every node reaches); the same as executor=...",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="HOST:PORT of the Ray cluster's head, or auto (the one `ray start` made here); default: start Ray "
        "on this machine. Implies --executor ray; the same as ray.address=...",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from codetune.config import load_experiment

    exp = load_experiment(args.experiment, [*args.overrides, *_executor_overrides(args)])
    if args.dry_run:
        from codetune.experiments.estimate import describe_plan

        print(describe_plan(exp, Path(args.out)))
        return 0
    from codetune.experiments.runner import Runner

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    runner = Runner(exp, Path(args.out), progress=not args.no_progress, log=log)
    rows = runner.run_all()
    exp_dir = runner.exp_dir
    outside = sum(not r.get("in_grid", True) for r in rows)
    kept = f", {outside} of them finished earlier outside this grid (in_grid False)" if outside else ""
    print(f"results: {exp_dir / 'results.csv'} ({len(rows)} runs{kept}), plot: {exp_dir / 'results.png'}")
    return 0


def _executor_overrides(args: argparse.Namespace) -> list[str]:
    """--executor / --ray-address as the key=value overrides they stand for."""
    import json

    out = []
    if args.executor or args.ray_address:
        out.append(f"executor={args.executor or 'ray'}")
    if args.ray_address:
        out.append(f"ray.address={json.dumps(args.ray_address)}")  # quoted: YAML would read 1:2 as a number
    return out
