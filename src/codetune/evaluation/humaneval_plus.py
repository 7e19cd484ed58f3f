"""HumanEval+ (EvalPlus): each sample also runs on the task's base + plus inputs, its results compared with
the canonical solution's.

A task from `HumanEvalPlus.jsonl[.gz]` keeps HumanEval's own `test` for the base verdict (so base pass@k
is plain HumanEval's) and carries `Task.plus`: the inputs of HumanEval's tests (`base_input`) and the ones
EvalPlus added (`plus_input`). The plus verdict of a sample:

1. Expected outputs: the canonical solution (`prompt + canonical_solution`) runs once per task in the
   sandbox on every input (one process per task, `_plus_runner.py`), which records each result and the
   seconds it took. They are cached under `<codetune cache>/humaneval_plus/`, keyed by the SHA-256 of the
   benchmark file, so a second evaluation does not recompute them.
2. The sample (`prompt + completion`) runs the same way, each input under a time limit of
   max(1 s, 4 x the canonical's seconds) and the whole run under min(60 s, their sum) + 2 s, plus twice
   the canonical run's wall time for loading and encoding (EvalPlus's defaults and rule), and never under
   the harness's own timeout; an input that runs past its limit makes the sample a timeout. As for the
   base tests, it passes only when the runner reached its end and printed the end-of-run token (see
   `programs`), so exiting early never passes. The solution's prints are discarded and reading stdin
   fails, as in EvalPlus; an exception it raises is a runtime error.
3. Its results are compared with the expected ones as EvalPlus compares them: `out == exp`; when not
   equal and the task has an `atol` (or, with atol 0, the expected result is a float or a non-empty
   list/tuple of floats, when 1e-6 is used, decided per input: EvalPlus keeps the 1e-6 for the task's
   later inputs once one float result appeared) the two must have the same type and length and be close
   (|out - exp| <= atol + 1e-7 * |exp| element-wise, as numpy.allclose); `find_zero` (HumanEval/32)
   passes when |poly(xs, out)| <= atol. A list is never equal to a tuple (as in Python). Results larger
   than a few KiB are compared by a digest of a form in which `==`-equal values are equal (1 == 1.0,
   dicts in any order), so for them closeness is not tested, only equality.

A sample `plus_passed` when both its base verdict and its plus verdict passed (EvalPlus's "base + extra").
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from codetune.evaluation import datamode, judging, programs, sandbox
from codetune.evaluation.benchmarks import Task
from codetune.evaluation.sandbox import Limits
from codetune.evaluation.taxonomy import categorize

FORMAT = 1  # of the runner's records and the cache; part of the cache key
MIN_TIME_LIMIT_S = 1.0  # EvalPlus's DEFAULT_MIN_TIME_LIMIT
TIME_LIMIT_FACTOR = 4.0  # EvalPlus's DEFAULT_GT_TIME_LIMIT_FACTOR
TASK_TIME_CAP_S = 60.0  # EvalPlus's EVALPLUS_TIMEOUT_PER_TASK
CANONICAL_WALL_S = 600.0  # one task's canonical run (trusted code; the slowest takes seconds)
DEFAULT_ATOL = 1e-6  # EvalPlus enforces it for float results of tasks whose atol is 0
_OUTPUTS = datamode.OUTPUTS
_TIMEOUT_LINE = re.compile(r"^(?:\S*\.)?CodetuneInputTimeout: .*$", re.MULTILINE)


@dataclass
class Expected:
    """The canonical solution's results on one task's inputs (base, then plus).

    Attributes:
        outputs: one runner record per input ({"h": digest, "v": value when small}).
        seconds: what each call took.
        wall_s: the whole canonical run, in the sandbox.
        error: why there are no outputs (the canonical solution failed), else None.
    """

    outputs: list[dict] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    error: str | None = None


@dataclass
class PlusVerdict:
    """A sample's verdict on the base + plus inputs: a status of `programs.STATUSES` and its category."""

    status: str
    category: str
    detail: str = ""
    wall_s: float = 0.0


def _run(task: Task, code: str, limits: Limits, limits_s: list[float] | None) -> tuple[str, str, dict]:
    """Run `code` on the task's inputs: (status, detail, what the run returned: records, wall_s, stderr)."""
    if programs.toolchain("python") is None:
        return "unavailable", "no toolchain for python on this machine", {}
    err = datamode.precheck("python", code)
    if err is not None:
        return "compile_error", err, {}
    inputs = [judging.encode(list(args)) for args in task.plus.inputs]  # typed: tuples and sets survive
    prog, nonce = datamode.python_program(
        task.entry_point, code, inputs, limits, per_input_s=limits_s, typed_inputs=True
    )
    step, res, _ = programs.execute(prog)
    ran = {"wall_s": res.wall_s, "stderr": res.stderr, "outputs": res.files.get(_OUTPUTS, b"")}
    timed_out = _TIMEOUT_LINE.search(res.stderr)
    if res.returncode != 0 and not res.timed_out and timed_out:
        return "timeout", timed_out.group(0).split(": ", 1)[1], ran
    status, detail = programs.classify(prog, step, res, nonce)
    return status, detail, ran


def _records(data: bytes, n: int) -> list[dict] | str:
    """The runner's n records, or a line saying what is wrong with them."""
    try:
        recs = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    except (UnicodeDecodeError, ValueError) as exc:
        return f"unreadable results ({type(exc).__name__})"
    if len(recs) != n or not all(isinstance(r, dict) and isinstance(r.get("h"), str) for r in recs):
        return f"the run wrote {len(recs)} results for {n} inputs"
    return recs


# ------------------------------------------------------------------------------------- expected outputs


def _canonical(task: Task, limits: Limits) -> Expected:
    """Run the canonical solution on every input of `task` (no per-input limits)."""
    wide = replace(limits, wall_s=max(limits.wall_s, CANONICAL_WALL_S), cpu_s=max(limits.cpu_s, CANONICAL_WALL_S))
    status, detail, ran = _run(task, task.prompt + task.canonical_solution, wide, None)
    if status != "passed":
        return Expected(wall_s=ran.get("wall_s", 0.0), error=f"{status}: {detail}")
    recs = _records(ran["outputs"], len(task.plus.inputs))
    if isinstance(recs, str):
        return Expected(wall_s=ran["wall_s"], error=recs)
    return Expected(
        outputs=[{k: v for k, v in r.items() if k != "t"} for r in recs],
        seconds=[float(r.get("t", 0.0)) for r in recs],
        wall_s=round(ran["wall_s"], 4),
    )


def _cache_file(source_sha256: str) -> Path:
    from codetune.paths import cache_dir

    # The sandbox's interpreter makes the results (its version can change a result's repr or order).
    python = os.path.basename(programs.python_interpreter() or "python")
    return cache_dir() / "humaneval_plus" / f"expected-{source_sha256[:24]}-{python}-f{FORMAT}.json.gz"


def _read_cache(path: Path) -> dict[str, Expected]:
    data = datamode.read_gz_json(path)
    try:
        return {tid: Expected(**rec) for tid, rec in data["tasks"].items()}
    except (AttributeError, KeyError, TypeError):
        return {}  # missing or damaged: recomputed


def _write_cache(path: Path, source_sha256: str, table: dict[str, Expected]) -> None:
    body = {"format": FORMAT, "source_sha256": source_sha256, "tasks": {t: e.__dict__ for t, e in table.items()}}
    datamode.write_gz_json(path, body)


def expected_outputs(
    tasks: list[Task], *, limits: Limits | None = None, workers: int | None = None, progress: bool = False
) -> dict[str, Expected]:
    """The canonical results of every HumanEval+ task in `tasks` (those with `plus`), by task id.

    Read from the cache when there; computed in the sandbox (in parallel) and cached otherwise. A task
    whose canonical solution fails has `error` set (its samples' plus verdict is then `unavailable`).
    """
    limits = limits or Limits()
    out: dict[str, Expected] = {}
    by_source: dict[str, list[Task]] = {}
    for t in tasks:
        if t.plus is not None:
            by_source.setdefault(t.plus.source_sha256, []).append(t)
    for sha, group in by_source.items():
        path = _cache_file(sha)
        table = _read_cache(path)
        todo = [t for t in group if t.task_id not in table]
        if todo:
            table.update(_compute(todo, limits, workers, progress))
            _write_cache(path, sha, table)
        out.update({t.task_id: table[t.task_id] for t in group})
    return out


def _compute(tasks: list[Task], limits: Limits, workers: int | None, progress: bool) -> dict[str, Expected]:
    found = sandbox.map_tasks(
        lambda t: _canonical(t, limits), tasks, desc="expected outputs", workers=workers, progress=progress
    )
    return {t.task_id: e for t, e in zip(tasks, found)}


# ------------------------------------------------------------------------------------------- comparing


_decode, _close = judging.decode, judging.close


def _is_floats(x) -> bool:
    if isinstance(x, float):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, float) for i in x)


def _poly(xs: list, x: float) -> float:
    return sum(c * math.pow(x, i) for i, c in enumerate(xs))


def _find_zero(out, args: list, atol: float) -> bool:
    return isinstance(out, (int, float)) and abs(_poly(*args, out)) <= atol


# Tasks EvalPlus checks by a property of the result instead of comparing it (by entry point).
SPECIAL_ORACLES = {"find_zero": _find_zero}


def outputs_match(got: dict, exp: dict, atol: float, entry_point: str, args: list) -> bool:
    """Whether a sample's result (a runner record) passes against the canonical one, as in EvalPlus."""
    oracle = SPECIAL_ORACLES.get(entry_point)
    if "v" not in got or "v" not in exp:
        return oracle is None and got.get("h") == exp.get("h")
    try:
        out, want = _decode(got["v"]), _decode(exp["v"])
        if oracle is not None:
            return oracle(out, args, atol)
        if out == want:
            return True
        tol = atol or (DEFAULT_ATOL if _is_floats(want) else 0.0)
        return bool(tol) and type(out) is type(want) and _close(out, want, tol)
    except (ValueError, TypeError, OverflowError, RecursionError):
        return False


def _preview(rec: dict) -> str:
    if "v" not in rec:
        return "a large result"
    try:
        text = repr(_decode(rec["v"]))
    except (ValueError, TypeError, RecursionError):
        return "an unreadable result"
    return text if len(text) <= 80 else text[:77] + "..."


def compare(task: Task, expected: Expected, data: bytes) -> tuple[str, str]:
    """("passed", "") when every result the run wrote matches, else ("failed", which input and why)."""
    recs = _records(data, len(expected.outputs))
    if isinstance(recs, str):
        return "failed", recs
    n_base = len(task.plus.base_inputs)
    for i, (got, exp) in enumerate(zip(recs, expected.outputs)):
        args = task.plus.inputs[i]
        if not outputs_match(got, exp, task.plus.atol, task.entry_point, args):
            which = f"base input {i}" if i < n_base else f"plus input {i - n_base}"
            return "failed", f"{which}: expected {_preview(exp)}, got {_preview(got)}"
    return "passed", ""


# ------------------------------------------------------------------------------------------- a sample


def time_limits(expected: Expected, limits: Limits) -> tuple[list[float], Limits]:
    """Per-input seconds and the whole run's limits for a sample (see the module docstring)."""
    per_input = [max(MIN_TIME_LIMIT_S, TIME_LIMIT_FACTOR * t) for t in expected.seconds]
    wall = min(TASK_TIME_CAP_S, sum(per_input)) + 2.0 + 2.0 * expected.wall_s
    wall = max(wall, limits.wall_s)
    return [round(x, 4) for x in per_input], replace(limits, wall_s=wall, cpu_s=wall)


def evaluate_plus(task: Task, completion: str, expected: Expected, limits: Limits | None = None) -> PlusVerdict:
    """The plus verdict of one completion of a HumanEval+ task; every outcome is a status, never an exception."""
    assert task.plus is not None, "evaluate_plus needs a HumanEval+ task"
    if expected.error is not None:
        why = f"no expected outputs: the canonical solution gave {expected.error}"
        return PlusVerdict("unavailable", "unavailable", why)
    per_input, run_limits = time_limits(expected, limits or Limits())
    status, detail, ran = _run(task, task.prompt + completion, run_limits, per_input)
    if status == "passed":
        status, detail = compare(task, expected, ran["outputs"])
    wall = round(ran.get("wall_s", 0.0), 4)
    return PlusVerdict(status, categorize(status, detail, ran.get("stderr", "")), detail, wall)
