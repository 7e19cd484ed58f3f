"""Verdicts from tests as data: the sandboxed program gets only the inputs, trusted code judges the results.

A task whose tests `testcases.to_data` can turn into calls is judged in *data mode*:

1. The sandboxed program is the prompt + completion and a runner of ours that calls the function under
   test on each test call's inputs and writes each result as plain data, one line per call, to a file
   the harness reads back (Python: `_plus_runner.py`, HumanEval+'s runner, with type-preserving inputs;
   JavaScript: `_data_runner.js` before the completion, the calls after it; Java: a `Main` that makes
   one `Solution` and hands each call to `_data_runner.java`'s serializer). A value that is not plain
   data (an object of the completion's own class, a function, a proxy) is written as an opaque tag,
   equal to nothing.
2. Code outside the sandbox compares each result with the check's expected value (`judging`): the
   test's literal where it has one (Python), else the canonical solution's result on the same call.
   The expected values are never inside the sandbox, so a completion that exits early, prints markers,
   reads stdin, returns an object whose `__eq__` is always true, or rewires the test with `sys.settrace`
   has nothing to forge: only results equal to the expected ones pass.
3. The first call that went wrong decides, as in the test itself: a wrong result makes the sample
   `failed` (category wrong_answer) even if a later call then hung or crashed; a result missing because
   the program timed out, crashed or raised is `timeout`/`runtime_error` (an exception's traceback or
   stack trace names it, as in assert mode); a Java compile error is `compile_error`; results missing
   after a clean exit, extra results or unreadable ones are `failed`, with a one-line detail.

The canonical solution's results (`expected_plans`) are computed once per task in the sandbox, through
the same program, and cached under `<codetune cache>/data_tests/`, keyed by a digest of the task's
prompt, canonical solution, parsed checks, runner format and toolchain. Where expected values are the
canonical solution's results (every Java/JS task; Python's non-literal expectations), the canonical
solution must also pass the task's own test in assert mode, or the task stays in assert mode (two
HumanEval-X JavaScript solutions contradict their tests). A Python task whose expected values come from
the canonical solution is run twice, under PYTHONHASHSEED=0 and =1, and stays in assert mode when the
two disagree (a result that depends on set or dict order of strings). A task whose canonical solution
does not pass its own data checks (or does not run) stays in assert mode too.

Numbers: Python compares as its `==` does (`1 == 1.0`, a list is not a tuple), with the test's own
tolerance where it has one (`abs(...) < TOL`, `math.isclose`). Java and JavaScript results are equal
when the JSON values are (numbers by value, maps and sets in any order, JS objects in key order),
exactly, except calls the test wrote as `Math.abs(CALL - X) < TOL`, judged |result - canonical| < TOL.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from codetune.evaluation import programs, sandbox
from codetune.evaluation.benchmarks import Task
from codetune.evaluation.judging import encode, judge_check, records
from codetune.evaluation.programs import Program, Step
from codetune.evaluation.sandbox import Limits, SandboxResult
from codetune.evaluation.testcases import Check, DataTests, to_data

FORMAT = 1  # of the programs and their records; part of the cache key
OUTPUTS = "ct_outputs.jsonl"
CANONICAL_WALL_S = 120.0  # one task's canonical run (trusted code; javac + JVM under load take seconds)
HASH_SEEDS = ("0", "1")  # the canonical runs of a Python task whose expected values are its results
_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Plan:
    """How a task is judged in data mode: its checks and the canonical solution's record per check."""

    tests: DataTests
    expected: tuple[dict, ...]


# --------------------------------------------------------------------------------------------- programs


@functools.cache
def _source(name: str) -> str:
    return (_HERE / name).read_text(encoding="utf-8")


def python_program(
    entry_point: str,
    code: str,
    inputs: list,
    limits: Limits,
    *,
    per_input_s: list[float] | None = None,
    typed_inputs: bool = False,
    hash_seed: str | None = None,
) -> tuple[Program, str]:
    """`_plus_runner.py` calling `entry_point` of `code` on each input (the program and its nonce).

    With `hash_seed`, the interpreter is started afresh with that PYTHONHASHSEED (trusted canonical
    runs only: it cannot be forked from the warm server, whose seed is fixed at its start, nor run with
    -I, which ignores the variable); otherwise it is forked like every sample's program.
    """
    python = programs.toolchain("python")
    assert python is not None, "python_program needs the python toolchain"
    nonce = secrets.token_hex(16)
    config = {"entry_point": entry_point, "limits": per_input_s, "typed_inputs": typed_inputs}
    files = {
        "ct_runner.py": _source("_plus_runner.py"),
        "ct_sample.py": code,
        "ct_inputs.json": json.dumps(inputs),
        "ct_config.json": json.dumps(config),
    }
    if hash_seed is None:
        argv = [python["python"], "-I", "-S", "-B", "ct_runner.py"]
        step = Step("run", argv, limits, stdin=nonce.encode(), fork_server=True, keep_files=(OUTPUTS,))
    else:
        argv = [python["python"], "-s", "-S", "-B", "ct_runner.py"]
        env = {"PYTHONHASHSEED": hash_seed}
        step = Step("run", argv, limits, stdin=nonce.encode(), env=env, keep_files=(OUTPUTS,))
    # No failed_pattern: here an exception from the solution is a runtime error, not a failed assert.
    return Program(files, [step], failed_pattern="\0"), nonce


def build(task: Task, code: str, tests: DataTests, limits: Limits, *, hash_seed: str | None = None):
    """The data-mode program for `code` (prompt + completion) on the task's calls, its nonce (Python),
    or (None, "") when the language's toolchain is missing."""
    tools = programs.toolchain(task.language)
    if tools is None:
        return None, ""
    if task.language == "python":
        inputs = [encode(list(c.call)) for c in tests.checks]
        return python_program(task.entry_point, code, inputs, limits, typed_inputs=True, hash_seed=hash_seed)
    calls = "".join(f"__codetune_data.emit(() => (\n{c.call}\n));\n" for c in tests.checks)
    if task.language == "javascript":
        src = f"{_source('_data_runner.js')}\n{code}\n\n;{calls}"
        step = Step("run", programs.node_argv(tools, limits), programs.node_limits(limits), keep_files=(OUTPUTS,))
        return Program({"program.js": src}, [step], failed_pattern="\0"), ""
    if task.language == "java":
        body = "".join(f"        out.emit(() -> {c.call});\n" for c in tests.checks)
        main = (
            "\n\npublic class Main {\n    public static void main(String[] args) throws Exception {\n"
            f'        CodetuneData out = new CodetuneData("{OUTPUTS}");\n        Solution s = new Solution();\n'
            f"{body}    }}\n}}\n"
        )
        files = {"Main.java": f"{code}{main}", "CodetuneData.java": _source("_data_runner.java")}
        steps = programs.java_steps(
            tools, limits, ["Main.java", "CodetuneData.java"], "Main", None, keep_files=(OUTPUTS,)
        )
        return Program(files, steps, failed_pattern="\0", compile_error_line=r"^.*\berror: .*$"), ""
    raise ValueError(f"no data-mode program for {task.language}")


def precheck(language: str, code: str) -> str | None:
    """A Python syntax error found before running (as assert mode's precheck), else None."""
    if language != "python":
        return None
    try:
        compile(code, "ct_sample.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:  # ValueError: NUL bytes
        return f"{type(exc).__name__}: {exc}"
    except (RecursionError, MemoryError) as exc:
        return f"{type(exc).__name__} while compiling"
    return None


# ------------------------------------------------------------------------------------------- judging


def _call_text(task: Task, check: Check) -> str:
    if isinstance(check.call, str):
        text = " ".join(check.call.split())
    else:
        text = f"{task.entry_point}({', '.join(repr(a) for a in check.call)})"
    return text if len(text) <= 60 else text[:57] + "..."


def verdict(
    task: Task, plan: Plan, program: Program, step: Step, res: SandboxResult, nonce: str
) -> tuple[str, str]:
    """Status and one-line detail of a data-mode run (the rules of the module docstring)."""
    checks = plan.tests.checks
    if step.kind == "compile":
        return programs.classify(program, step, res, nonce)
    recs = records(res.files.get(OUTPUTS, b""))
    for i, (check, rec) in enumerate(zip(checks, recs)):
        why = judge_check(task.language, check, rec, plan.expected[i])
        if why is not None:
            return "failed", f"call {i + 1} of {len(checks)}, {_call_text(task, check)}: {why}"
    if len(recs) > len(checks):
        return "failed", f"the program wrote {len(recs)} results for {len(checks)} calls"
    status, detail = programs.classify(program, step, res, nonce) if nonce else _run_status(program, step, res)
    if status != "passed":
        return status, detail
    if len(recs) < len(checks):
        return "failed", f"the program exited 0 after {len(recs)} of {len(checks)} calls"
    return "passed", ""


def _run_status(program: Program, step: Step, res: SandboxResult) -> tuple[str, str]:
    """A Java/JS run's own outcome: classify's, where exiting 0 is enough (the results decide)."""
    if res.returncode == 0 and not res.timed_out and res.signal is None:
        return "passed", ""
    return programs.classify(program, step, res, "")


def run(task: Task, code: str, plan_or_tests, limits: Limits, *, hash_seed: str | None = None):
    """Build and run the data-mode program: (status, detail, step, result, wall_s), or None without toolchain.

    `plan_or_tests` is a Plan (a sample: judged) or DataTests (the canonical run: status is the run's
    own, and the records are in `result.files`).
    """
    tests = plan_or_tests.tests if isinstance(plan_or_tests, Plan) else plan_or_tests
    program, nonce = build(task, code, tests, limits, hash_seed=hash_seed)
    if program is None:
        return None
    step, res, wall = programs.execute(program)
    if isinstance(plan_or_tests, Plan):
        status, detail = verdict(task, plan_or_tests, program, step, res, nonce)
    elif step.kind == "compile":
        status, detail = programs.classify(program, step, res, nonce)
    else:
        status, detail = programs.classify(program, step, res, nonce) if nonce else _run_status(program, step, res)
    return status, detail, step, res, wall


# ------------------------------------------------------------------------------------- expected outputs


def _canonical(task: Task, tests: DataTests, limits: Limits) -> Plan | str:
    """Run the canonical solution through the data-mode program; its records, checked, or why not."""
    n = len(tests.checks)
    if not task.canonical_solution.strip():
        if task.language == "python" and not tests.needs_canonical:
            return Plan(tests, tuple({} for _ in range(n)))  # literal checks only: nothing to compute
        return "the task has no canonical solution to compute expected outputs from"
    wide = replace(limits, wall_s=max(limits.wall_s, CANONICAL_WALL_S), cpu_s=max(limits.cpu_s, CANONICAL_WALL_S))
    code = task.prompt + task.canonical_solution
    seeds = HASH_SEEDS if task.language == "python" and tests.needs_canonical else (None,)
    runs = []
    for seed in seeds:
        ran = run(task, code, tests, wide, hash_seed=seed)
        if ran is None:
            return f"no toolchain for {task.language} on this machine"
        status, detail, _, res, _ = ran
        recs = records(res.files.get(OUTPUTS, b""))
        if status != "passed":
            return f"the canonical solution's data-mode run gave {status}: {detail}"
        if len(recs) != n or None in recs:
            return f"the canonical solution's data-mode run wrote {len(recs)} readable results for {n} calls"
        runs.append(recs)
    recs = runs[0]
    for i, check in enumerate(tests.checks):
        if check.from_canonical and any(r[i].get("h") != recs[i].get("h") for r in runs):
            return f"the canonical result of call {i + 1} depends on the hash seed"
        if task.language != "python" and _has_opaque(recs[i].get("v")):
            return f"the canonical result of call {i + 1} is not plain data"
        why = judge_check(task.language, check, recs[i], recs[i])
        if why is not None:
            return f"the canonical solution fails call {i + 1} in data mode: {why}"
    if tests.needs_canonical:  # its results stand for the expected ones only if it passes the test itself
        why = _fails_own_test(task, wide)
        if why is not None:
            return f"the canonical solution fails the task's own test ({why}), so its results cannot be the expected ones"
    return Plan(tests, tuple(recs))


def _fails_own_test(task: Task, limits: Limits) -> str | None:
    """None when the canonical solution passes the task's test in assert mode, else the status and detail."""
    nonce = secrets.token_hex(16)
    program = programs.build_program(task, task.canonical_solution, nonce, limits)
    if program is None:
        return f"no toolchain for {task.language}"
    if program.precheck_error:
        return f"compile_error: {program.precheck_error}"
    step, res, _ = programs.execute(program)
    status, detail = programs.classify(program, step, res, nonce)
    return None if status == "passed" else f"{status}: {detail}"


def _has_opaque(v: Any) -> bool:
    if isinstance(v, list):
        return any(_has_opaque(x) for x in v)
    if isinstance(v, dict):
        return "r" in v or any(_has_opaque(x) for x in v.values())
    return False


def _cache_key(task: Task, tests: DataTests) -> str:
    tools = programs.toolchain(task.language) or {}
    seeds = HASH_SEEDS if task.language == "python" and tests.needs_canonical else ()
    text = json.dumps(
        [FORMAT, tests.key(), task.language, task.entry_point, task.prompt, task.canonical_solution]
        + [sorted((k, os.path.realpath(v)) for k, v in tools.items()), list(seeds)],
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _cache_file(task: Task, key: str) -> Path:
    from codetune.paths import cache_dir

    return cache_dir() / "data_tests" / f"{task.language}-{key[:32]}.json.gz"


def read_gz_json(path: Path) -> Any:
    """A gzipped JSON file's content, or None when it is missing or damaged (then recomputed)."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, EOFError, ValueError):
        return None


def write_gz_json(path: Path, body: Any) -> None:
    """Write `body` as gzipped JSON atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            json.dump(body, f)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _plan(task: Task, tests: DataTests, limits: Limits) -> Plan | str:
    key = _cache_key(task, tests)
    path = _cache_file(task, key)
    body = read_gz_json(path)
    if isinstance(body, dict) and body.get("key") == key and isinstance(body.get("expected"), list):
        if len(body["expected"]) == len(tests.checks):
            return Plan(tests, tuple(body["expected"]))
    plan = _canonical(task, tests, limits)
    if isinstance(plan, Plan):  # failures are not cached: a timeout under load may not recur
        write_gz_json(path, {"key": key, "task_id": task.task_id, "expected": list(plan.expected)})
    return plan


def expected_plans(
    tasks: list[Task], *, limits: Limits | None = None, workers: int | None = None, progress: bool = False
) -> dict[str, Plan | str]:
    """Each task's data-mode plan, or the reason it stays in assert mode, by task id.

    Canonical results are read from the cache when there, else computed in the sandbox (in parallel).
    """
    limits = limits or Limits()
    out: dict[str, Plan | str] = {}
    todo = []
    for t in tasks:
        tests = to_data(t)
        if isinstance(tests, str):
            out[t.task_id] = tests
        elif programs.toolchain(t.language) is None:
            out[t.task_id] = f"no toolchain for {t.language} on this machine"
        else:
            todo.append((t, tests))
    if not todo:
        return out
    plans = sandbox.map_tasks(
        lambda job: _plan(*job, limits), todo, desc="expected outputs", workers=workers, progress=progress
    )
    out.update((t.task_id, p) for (t, _), p in zip(todo, plans))
    return out
