"""Efficiency of passing code: CPU time and peak memory on a task's heaviest inputs, against the canonical
solution's on the same inputs, in the same sandbox program.

Which inputs. A task's inputs are the argument lists of its own tests (`testcases.to_data`) and, when it
has them, its extra ones (`Task.plus`: HumanEval+'s inputs, or a generated-tests file's), duplicates
dropped. They are ranked by `input_size`: every string, bytes or container counts its length plus the
sizes of its elements, every number the digits of its integer part (so 10**30 weighs 31 and 7 weighs 1),
anything else 1, summed over the arguments; ties go to the larger sum of absolute numeric values (among
one-number inputs the larger number comes first), then to the earlier input. The top `Settings.top_k` are
the task's heaviest inputs. Size is a proxy for cost, not a measurement of it: a task whose cost grows with
an argument's value (`fib(n)`) is ranked by that value only among inputs of equal size.

How one sample is measured (`measure_pair`, the sandboxed `_perf_runner.py`). One sandbox run holds both
programs, each in a process of its own forked before either is loaded: the sample (prompt + completion) and
the canonical solution (prompt + canonical_solution); a side is stopped (SIGSTOP, its whole process group)
while the other is timed. On each heavy input, each side's loop count is calibrated so one timing lasts
>= `min_time_s`; then `repeats` rounds alternate sample and canonical on every input, the order reversed
every other round (ABBA). A timing is the CPU time (user + system, not wall time, so time other processes
take from the core does not count) of `loops` calls on fresh copies of the arguments, divided by `loops`,
by the clock of the thread that calls (the process-wide clock is too coarse in the sandbox: see
`_perf_runner`; the process's CPU time is recorded beside it as `sample_process_s`, where CPU spent in
other threads shows). Round r gives the sample's total over the heavy inputs S_r and the canonical's C_r;
the sample's *efficiency ratio* is the median over rounds of S_r / C_r (> 1: slower than the canonical
solution). Pairing within a round cancels what drifts between rounds (frequency, load).
The spread of a side is IQR / median of its totals over rounds. Peak memory is `tracemalloc`'s peak of one
call above the level before it (the result included), in a pass after the timings (tracing slows calls):
it counts only this call's Python allocations, where `ru_maxrss` would add the interpreter, the inputs and
their copies and, being a high-water mark of the whole process, show 0 for any call whose peak is below an
earlier one. Memory ratio: sample peak / canonical peak, each at least `MEMORY_FLOOR_B` (a call that
allocates a few bytes does not give a ratio of noise).

Outcomes. `ok`; `timeout`: the sample did not answer in time on a heavy input (its first call may take
max(`min_limit_s`, `limit_factor` x the canonical's first call); a timing, 20x what its calibration
predicts + 5 s): its ratio is then recorded as `limit_factor`, a lower bound (`censored`), so it stays in
the mean and among the slow tasks; `error`: the sample raised on a heavy
input (not timed: such a sample passes the tests but not these inputs); `unavailable`: not measured (no
Python here, a non-Python task, no parsed inputs). A sample whose results on the heavy inputs differ from
the canonical's is still timed, with `agrees` false. Noise: the canonical solution against itself (the same
code in both processes), once per task, gives the ratio a sample would have if it were as fast.

Per configuration (`summarize`): the geometric mean of the ratios (ratios multiply: a 2x-slower and a
2x-faster sample average to 1, where the arithmetic mean would say 1.25), first within each task, then over
tasks, so each task weighs the same, with a percentile bootstrap CI over tasks (of the mean log ratio); the
tasks where some sample is more than `SLOW_FACTOR` x slower; the same for memory and for the
canonical-vs-itself ratio; the median repeat spread.

Measurements run one at a time (timings on a shared core would measure each other). Pinning to one core
(`Settings.pin`) is off by default: on all 164 HumanEval tasks it did not lower the repeat spread or the
canonical-vs-itself band (benchmarks/efficiency_bench.py --pin both; figures in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from codetune import faults
from codetune.evaluation import datamode, judging, programs
from codetune.evaluation.benchmarks import Task
from codetune.evaluation.humaneval_plus import outputs_match
from codetune.evaluation.sandbox import Limits
from codetune.evaluation.testcases import to_data
from codetune.io import append_jsonl, atomic_write_json, atomic_write_jsonl, read_json, read_jsonl

FORMAT = 1  # of the measurement and its records; part of each record's key
OUTPUT = "ct_perf.json"
SLOW_FACTOR = 10.0  # a sample this many times slower than the canonical solution makes its task "slow"
MEMORY_FLOOR_B = 1024


@dataclass(frozen=True)
class Settings:
    """How samples are timed (recorded with every measurement; a change re-measures).

    Attributes:
        top_k: heaviest inputs per task.
        repeats: rounds of sample-then-canonical timings (the median is taken over them).
        min_time_s: one timing lasts at least this long (the loop count is calibrated per side and input).
        pin: pin the measurement to one core.
        limit_factor, min_limit_s: the sample's first call on an input may take max(min_limit_s,
            limit_factor x the canonical's) before it counts as a timeout.
        first_limit_s: the canonical solution's first call on an input (trusted code; the slowest take seconds).
        copy_budget: total argument size one batch of per-call copies may hold.
        max_loops: calls per timing at most.
        wall_s: one sample's whole measurement in the sandbox.
    """

    top_k: int = 3
    repeats: int = 6
    min_time_s: float = 0.01
    pin: bool = False  # measured: no lower spread pinned (benchmarks/RESULTS.md, efficiency_bench)
    limit_factor: float = 100.0
    min_limit_s: float = 2.0
    first_limit_s: float = 60.0
    copy_budget: int = 2_000_000
    max_loops: int = 1_000_000
    wall_s: float = 600.0


def settings_text(settings: Settings) -> str:
    """The settings a report names, in one line (`eff_settings`)."""
    s = settings
    return (
        f"top {s.top_k} inputs, {s.repeats} rounds, >= {s.min_time_s * 1000:g} ms a timing, "
        f"timeout at {s.limit_factor:g}x, {'pinned' if s.pin else 'not pinned'}"
    )


# ---------------------------------------------------------------------------------------------- inputs


def input_size(x: Any) -> int:
    """The size of an argument list (or of one value) by the rule in the module docstring."""
    if isinstance(x, bool) or x is None:
        return 1
    if isinstance(x, int):
        bits = abs(x).bit_length()  # str() of a huge int is slow (and capped): estimated from its bits there
        return len(str(abs(x))) if bits < 10_000 else math.ceil(bits * math.log10(2))
    if isinstance(x, float):
        return 1 if not math.isfinite(x) or abs(x) < 10 else len(str(int(abs(x))))
    if isinstance(x, (str, bytes, bytearray)):
        return len(x)
    if isinstance(x, dict):
        return len(x) + sum(input_size(k) + input_size(v) for k, v in x.items())
    if isinstance(x, (list, tuple, set, frozenset)):
        return len(x) + sum(input_size(v) for v in x)
    return 1


def _magnitude(x: Any) -> float:
    if isinstance(x, bool) or x is None:
        return 0.0
    if isinstance(x, (int, float)):
        return abs(float(x)) if math.isfinite(float(x)) else 0.0
    if isinstance(x, dict):
        return sum(_magnitude(k) + _magnitude(v) for k, v in x.items())
    if isinstance(x, (list, tuple, set, frozenset)):
        return sum(_magnitude(v) for v in x)
    return 0.0


def task_inputs(task: Task) -> list[list] | str:
    """The task's argument lists (Python values): its tests' calls, then its extra inputs, duplicates
    dropped; or why it has none."""
    if task.language != "python":
        return f"efficiency is measured for Python tasks only ({task.language})"
    found: list[list] = []
    tests = to_data(task)
    if not isinstance(tests, str):
        found += [list(c.call) for c in tests.checks]
    if task.plus is not None:
        found += [list(args) for args in task.plus.inputs]  # Python values (a typed file is decoded on load)
    if not found:
        return f"no inputs: {tests}" if isinstance(tests, str) else "no inputs"
    seen, out = set(), []
    for args in found:
        key = json.dumps(judging.encode(args), sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(args)
    return out


def heaviest(inputs: list[list], k: int) -> list[list]:
    """The k heaviest argument lists, heaviest first (the ranking of the module docstring)."""
    order = sorted(range(len(inputs)), key=lambda i: (-input_size(inputs[i]), -_magnitude(inputs[i]), i))
    return [inputs[i] for i in order[:k]]


# --------------------------------------------------------------------------------------------- one pair


def _program(task: Task, code_a: str, code_b: str, inputs: list[list], settings: Settings):
    python = programs.toolchain("python")
    assert python is not None, "_program needs the python toolchain"
    config = {"entry_point": task.entry_point, **asdict(settings)}
    files = {
        "ct_runner.py": datamode._source("_perf_runner.py"),
        "ct_plus_runner.py": datamode._source("_plus_runner.py"),
        "ct_a.py": code_a,
        "ct_b.py": code_b,
        "ct_inputs.json": json.dumps([judging.encode(args) for args in inputs]),
        "ct_config.json": json.dumps(config),
    }
    limits = Limits(wall_s=settings.wall_s, cpu_s=settings.wall_s)
    argv = [python["python"], "-I", "-S", "-B", "ct_runner.py"]
    step = programs.Step("run", argv, limits, fork_server=True, keep_files=(OUTPUT,))
    return programs.Program(files, [step], failed_pattern="\0")


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def _quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _spread(totals: list[float]) -> float | None:
    m = _median(totals)
    return None if m <= 0 else (_quantile(totals, 0.75) - _quantile(totals, 0.25)) / m


def _totals(side: dict, n_inputs: int, repeats: int) -> list[float] | None:
    times = side.get("times") or []
    if len(times) != n_inputs or any(len(t) != repeats for t in times):
        return None
    return [sum(times[i][r] for i in range(n_inputs)) for r in range(repeats)]


def measure_pair(
    task: Task, completion: str | None, inputs: list[list], settings: Settings = Settings()
) -> dict[str, Any]:
    """Time `prompt + completion` against the canonical solution on `inputs` (the heavy ones); with
    `completion` None, the canonical solution against itself. Returns the measurement's record (see the
    module docstring: status, ratio, spreads, peaks, agrees); never raises for what the code did."""
    code_b = task.prompt + task.canonical_solution
    code_a = code_b if completion is None else task.prompt + completion
    base = {"task_id": task.task_id, "kind": "self" if completion is None else "sample"}
    base["input_sizes"] = [input_size(a) for a in inputs]
    if programs.toolchain("python") is None:
        return {**base, "status": "unavailable", "detail": "no toolchain for python on this machine"}
    err = datamode.precheck("python", code_a)
    if err is not None:
        return {**base, "status": "error", "detail": err}
    step, res, wall = programs.execute(_program(task, code_a, code_b, inputs, settings))
    base["wall_s"] = round(wall, 4)
    try:
        out = json.loads(res.files[OUTPUT])
    except (KeyError, ValueError):
        if res.timed_out:
            return {**base, "status": "timeout", "detail": f"the measurement ran past {settings.wall_s:g} s"}
        status, detail = programs.classify(programs.Program({}, [step], "\0"), step, res, "")
        return {**base, "status": "error", "detail": f"the measurement did not finish ({status}: {detail})"}
    return {**base, **_record(task, inputs, out, settings)}


def _record(task: Task, inputs: list[list], out: dict, settings: Settings) -> dict[str, Any]:
    """The record of a finished measurement (ct_perf.json as the runner wrote it)."""
    a, b = out.get("a") or {}, out.get("b") or {}
    rec: dict[str, Any] = {
        "status": out.get("status", "error"),
        "detail": out.get("detail", ""),
        "censored": False,
    }
    rec["pinned"] = out.get("pinned")
    if rec["status"] != "ok":
        if rec["status"] == "timeout" and out.get("who") == "a":
            rec.update(ratio=settings.limit_factor, censored=True)
            rec["detail"] = f"heavy input {out.get('input')}: {rec['detail']}"
        elif out.get("who") == "b":  # the canonical solution itself failed: nothing to compare with
            rec.update(status="unavailable", detail=f"the canonical solution: {rec['detail']}")
        return rec
    n, reps = len(inputs), settings.repeats
    sa, sb = _totals(a, n, reps), _totals(b, n, reps)
    pa = _totals({"times": a.get("process_times")}, n, reps)
    if sa is None or sb is None or min(sb) <= 0:
        return {**rec, "status": "error", "detail": "incomplete timings"}
    ratios = [x / y for x, y in zip(sa, sb)]
    peak_a = max(a["peak_bytes"]) if a.get("peak_bytes") else 0
    peak_b = max(b["peak_bytes"]) if b.get("peak_bytes") else 0
    agrees = all(
        _agrees(task, ra, rb, args) for ra, rb, args in zip(a.get("records", []), b.get("records", []), inputs)
    )
    rec.update(
        ratio=_median(ratios),
        sample_s=_median(sa),
        canonical_s=_median(sb),
        sample_process_s=_median(pa) if pa else None,
        spread=_spread(sa),
        canonical_spread=_spread(sb),
        peak_b=peak_a,
        canonical_peak_b=peak_b,
        mem_ratio=max(peak_a, MEMORY_FLOOR_B) / max(peak_b, MEMORY_FLOOR_B),
        agrees=agrees,
        loops=[a.get("loops"), b.get("loops")],
    )
    return rec


def _agrees(task: Task, got: dict, exp: dict, args: list) -> bool:
    """Whether the sample's result on a heavy input equals the canonical's, as HumanEval+ compares them."""
    atol = task.plus.atol if task.plus is not None else 0.0
    return outputs_match(got, exp, atol, task.entry_point, args)


def pair_key(task: Task, completion: str | None, inputs: list[list], settings: Settings) -> str:
    """What a measurement depends on, hashed: a recorded one is reused only for the same key."""
    parts = [FORMAT, task.task_id, task.prompt, task.canonical_solution, completion, asdict(settings)]
    parts.append([judging.encode(a) for a in inputs])
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------ a configuration


def _geo(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _geo_ci(values: list[float], ci_level: float, n_boot: int) -> tuple[float | None, list[float] | None]:
    """Geometric mean of positive values and its percentile bootstrap CI (of the mean log, over the values)."""
    if not values:
        return None, None
    from codetune.stats.bootstrap import bootstrap_ci

    logs = [math.log(v) for v in values]
    low, high = bootstrap_ci(logs, n_boot=n_boot, alpha=round(1 - ci_level, 12), seed=0)
    return _geo(values), [math.exp(low), math.exp(high)]


def _per_task(records: list[dict], field: str) -> dict[str, float]:
    """Geometric mean of `field` within each task (records that have it and a positive value)."""
    by_task: dict[str, list[float]] = {}
    for r in records:
        v = r.get(field)
        if isinstance(v, (int, float)) and v > 0:
            by_task.setdefault(r["task_id"], []).append(float(v))
    return {t: _geo(vs) for t, vs in by_task.items()}


def summarize(records: list[dict], *, ci_level: float = 0.95, n_boot: int = 1000) -> dict[str, Any]:
    """The configuration's efficiency figures (`eff_*`, results-row columns) from its measurement records."""
    samples = [r for r in records if r.get("kind") == "sample"]
    selfs = [r for r in records if r.get("kind") == "self" and r.get("status") == "ok"]
    ok = [r for r in samples if r.get("status") == "ok"]
    counts = {s: sum(r.get("status") == s for r in samples) for s in ("ok", "timeout", "error", "unavailable")}
    ratios = _per_task(samples, "ratio")  # ok and censored timeouts
    out: dict[str, Any] = {
        "eff_samples": len(samples),
        "eff_timed": counts["ok"],
        "eff_timeouts": counts["timeout"],
        "eff_errors": counts["error"],
        "eff_unmeasured": counts["unavailable"],
        "eff_disagree": sum(r.get("agrees") is False for r in ok),
        "eff_tasks": len(ratios),
    }
    for name, table in (("eff_ratio", ratios), ("eff_mem_ratio", _per_task(ok, "mem_ratio"))):
        value, ci = _geo_ci(list(table.values()), ci_level, n_boot)
        out[name] = _round(value)
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = (_round(x) for x in ci) if ci else (None, None)
    slow = sorted({r["task_id"] for r in samples if (r.get("ratio") or 0) > SLOW_FACTOR})
    out["eff_slow_tasks"] = len(slow)
    out["eff_slow_task_ids"] = " ".join(slow)
    self_ratios = _per_task(selfs, "ratio")
    value, ci = _geo_ci(list(self_ratios.values()), ci_level, n_boot)
    out["eff_self_ratio"] = _round(value)
    out["eff_self_ratio_ci_low"], out["eff_self_ratio_ci_high"] = (_round(x) for x in ci) if ci else (None, None)
    vals = list(self_ratios.values())
    # The range the middle 95% of canonical-vs-itself ratios fall in: a sample's ratio inside it is noise.
    out["eff_self_band_low"] = _round(_quantile(vals, 0.025)) if vals else None
    out["eff_self_band_high"] = _round(_quantile(vals, 0.975)) if vals else None
    spreads = [r["spread"] for r in ok if r.get("spread") is not None]
    self_spreads = [r["spread"] for r in selfs if r.get("spread") is not None]
    out["eff_spread"] = _round(_median(spreads)) if spreads else None
    out["eff_self_spread"] = _round(_median(self_spreads)) if self_spreads else None
    pinned = [r.get("pinned") is not None for r in ok + selfs]
    out["eff_pinned"] = all(pinned) if pinned else None
    return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


# ------------------------------------------------------------------------------------------ a run's stage

PARTIAL = "efficiency.partial.jsonl"  # each measurement appended as it finishes (what a resumed stage keeps)
RECORDS = "efficiency.jsonl"  # every measurement, in job order
SUMMARY = "efficiency.json"  # settings and figures; written last: the stage is done


@dataclass
class _Job:
    key: str
    task: Task
    completion: str | None  # None: the canonical solution against itself
    inputs: list[list] | None  # None: not measured (`why`)
    why: str = ""
    index: int | None = None  # the sample's index in samples.jsonl


def plan_jobs(tasks: list[Task], samples: list[dict], results: list[dict], settings: Settings) -> list[_Job]:
    """One job per passing sample, and one canonical-vs-itself job per task that has a passing sample,
    task by task (the noise is measured next to the samples it is the noise of)."""
    by_id = {t.task_id: t for t in tasks}
    passing: dict[str, list[int]] = {}
    for row in results:
        i = row.get("index")
        if row.get("status") == "passed" and isinstance(i, int) and 0 <= i < len(samples):
            passing.setdefault(samples[i]["task_id"], []).append(i)
    jobs = []
    for task_id, indices in passing.items():
        task = by_id.get(task_id)
        if task is None:
            continue
        found = task_inputs(task)
        inputs = heaviest(found, settings.top_k) if isinstance(found, list) else None
        why = found if isinstance(found, str) else ""
        if inputs is not None:
            jobs.append(_Job(pair_key(task, None, inputs, settings), task, None, inputs))
        for i in indices:
            completion = samples[i]["completion"]
            key = pair_key(task, completion, inputs or [], settings)
            jobs.append(_Job(key, task, completion, inputs, why, i))
    return jobs


def measure_run(
    tasks: list[Task],
    samples: list[dict],
    results: list[dict],
    out_dir: Path,
    *,
    settings: Settings = Settings(),
    ci_level: float = 0.95,
    n_boot: int = 1000,
    progress: bool = False,
    log: Any = None,
) -> dict[str, Any]:
    """Measure every passing sample of a benchmark stage (results.jsonl rows by sample index) into `out_dir`
    (efficiency.jsonl + efficiency.json); the configuration's `eff_*` figures.

    Resumable: each measurement is appended to efficiency.partial.jsonl as it finishes; rerun, the stage
    measures only the jobs without a record there (same key: task, code, inputs, settings). A finished
    stage (efficiency.json present) is read back, not measured again.
    """
    out_dir = Path(out_dir)
    if (out_dir / SUMMARY).is_file():
        return read_json(out_dir / SUMMARY, "efficiency summary", "delete it to measure again")["metrics"]
    jobs = plan_jobs(tasks, samples, results, settings)
    wanted = {j.key for j in jobs}
    done = {
        r["key"]: r
        for r in read_jsonl(out_dir / PARTIAL, torn_tail=True, missing_ok=True)
        if r.get("key") in wanted
    }
    resumed = len(done)
    if done and log is not None:
        log(f"  efficiency resumes: {len(done)} of {len(jobs)} measurements already made")
    t0 = time.perf_counter() - max((float(r.get("_elapsed_s") or 0) for r in done.values()), default=0.0)
    out_dir.mkdir(parents=True, exist_ok=True)
    bar = _bar(len(jobs), progress)
    with (out_dir / PARTIAL).open("w", encoding="utf-8") as f:
        append_jsonl(f, done.values())
        for job in jobs:
            if job.key not in done:
                done[job.key] = {**_run_job(job, settings), "_elapsed_s": round(time.perf_counter() - t0, 3)}
                append_jsonl(f, [done[job.key]])
                faults.checkpoint("eff_measure")
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    records = [done[j.key] for j in jobs]
    metrics = summarize(records, ci_level=ci_level, n_boot=n_boot)
    metrics["eff_seconds"] = round(time.perf_counter() - t0, 3)
    metrics["eff_settings"] = settings_text(settings)
    metrics["eff_resumed"] = resumed  # measurements an earlier, killed stage had already made
    atomic_write_jsonl(out_dir / RECORDS, records)
    body = {"format": FORMAT, "settings": asdict(settings), "slow_factor": SLOW_FACTOR, "metrics": metrics}
    atomic_write_json(out_dir / SUMMARY, body)
    (out_dir / PARTIAL).unlink(missing_ok=True)
    return metrics


def _run_job(job: _Job, settings: Settings) -> dict[str, Any]:
    if job.inputs is None:
        rec = {"task_id": job.task.task_id, "kind": "sample", "status": "unavailable", "detail": job.why}
    else:
        rec = measure_pair(job.task, job.completion, job.inputs, settings)
    return {**rec, "key": job.key, "index": job.index}


def _bar(total: int, progress: bool):
    if not progress or not total:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="efficiency", unit="measurement", file=sys.stderr)


def run_stage(bench: Any, bdir: Any, eval_cfg: Any, *, progress: bool = False, log: Any = None) -> dict[str, Any]:
    """An experiment run's efficiency stage (`eval.efficiency`), after its benchmark was executed: the
    `eff_*` columns of its results row ({"eff_note": why} when there is nothing to measure)."""
    if not bench.available:
        return {"eff_note": f"no benchmark ({bench.note})"}
    if not bdir.is_executed():
        return {"eff_note": "the benchmark was not executed"}
    if log is not None:
        log("  efficiency: timing the passing samples against the canonical solutions")
    return measure_run(
        bench.tasks,
        bdir.read_samples(),
        bdir.read_results(),
        bdir.path,
        ci_level=eval_cfg.ci_level,
        n_boot=eval_cfg.n_boot,
        progress=progress,
        log=log,
    )


def summary_line(metrics: dict[str, Any], out_dir: Path) -> str:
    """One line of a stage's figures, for a command's output."""
    m = metrics

    def ci(key: str) -> str:
        if m.get(key) is None:
            return "n/a"
        low, high = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
        return f"{m[key]:.2f}" + ("" if low is None else f" [{low:.2f}, {high:.2f}]")

    slow = f"{m['eff_slow_tasks']} task(s) > {SLOW_FACTOR:g}x slower" + (
        f" ({m['eff_slow_task_ids']})" if m.get("eff_slow_task_ids") else ""
    )
    return (
        f"efficiency: {m['eff_timed']} of {m['eff_samples']} passing samples timed on {m['eff_tasks']} task(s): "
        f"CPU-time ratio {ci('eff_ratio')} (geometric mean vs the canonical solutions; canonical vs itself "
        f"{ci('eff_self_ratio')}), {slow}, peak-memory ratio {ci('eff_mem_ratio')}; "
        f"{m['eff_timeouts']} timeout(s), {m['eff_errors']} error(s); records in {Path(out_dir) / RECORDS}"
    )
