"""The extra-test verdict of Java and JavaScript samples: a file of generated calls (`testgen_x`), judged in
data mode.

A task read from a file that `codetune tests augment --language java|javascript` wrote carries, in
`Task.plus`, its test's own calls (`base_inputs`) and the generated ones (`plus_inputs`), as source text
(`s.entry(...)`, `entry(...)`; records with `input_form: "source"`). Its samples get an extra verdict as
HumanEval+ samples get a plus verdict (same result fields, `plus_status` ..., and the same summary: a
sample passes "extra" when it passes its base tests and every base and generated call returns what the
canonical solution returns):

1. Expected results: the canonical solution runs all the calls in one data-mode program
   (`datamode`: `_data_runner.java` / `_data_runner.js`; cached like any data-mode plan, keyed by the
   calls), and must pass the task's own test; otherwise the task's extra verdicts are `unavailable`.
2. A sample runs the same program with its completion, under the harness's limits; results are compared
   as data mode compares Java/JS results (`judging.same`), except that when the test wrote a tolerance
   (`Math.abs(CALL - X) < TOL`, the file's `atol`), every call whose canonical result is a number is
   judged |result - canonical| < atol. The first call that went wrong decides, and the detail says whether
   it was a base or an extra call.

A task with no calls at all (its test could not be parsed) passes its extra verdict trivially: there is
nothing beyond the base test to fail.
"""

from __future__ import annotations

import re
from dataclasses import replace

from codetune.evaluation import datamode, sandbox
from codetune.evaluation.benchmarks import PlusTests, Task
from codetune.evaluation.humaneval_plus import PlusVerdict
from codetune.evaluation.sandbox import Limits
from codetune.evaluation.taxonomy import categorize
from codetune.evaluation.testcases import Check, DataTests

LANGUAGES = ("java", "javascript")


def plus_tests(rec: dict) -> PlusTests:
    """The `Task.plus` of a file row with calls as source text (as `benchmarks.load_tasks` builds it)."""
    return PlusTests(list(rec["base_input"]), list(rec["plus_input"]), float(rec.get("atol") or 0), "")


def data_tests(task: Task) -> DataTests:
    """Every base and generated call of the task, each judged against the canonical solution's result."""
    calls = task.plus.inputs
    checks = tuple(Check(c, "same", from_canonical=True, source=" ".join(c.split())[:120]) for c in calls)
    return DataTests(task.language, checks)


def _is_number(v) -> bool:
    return type(v) in (int, float)


def with_tolerance(plan: datamode.Plan, atol: float) -> datamode.Plan:
    """The plan with every call whose canonical result is a number judged within `atol` (when > 0)."""
    if atol <= 0:
        return plan
    checks = tuple(
        replace(c, rule="abs_lt", tol=atol) if _is_number(rec.get("v")) else c
        for c, rec in zip(plan.tests.checks, plan.expected)
    )
    return datamode.Plan(DataTests(plan.tests.language, checks), plan.expected)


def _plan(task: Task, limits: Limits) -> datamode.Plan | str:
    tests = data_tests(task)
    if not tests.checks:
        return datamode.Plan(tests, ())
    plan = datamode._plan(task, tests, limits)  # cached by the calls' digest, like the base plans
    return plan if isinstance(plan, str) else with_tolerance(plan, task.plus.atol)


def expected_plans(
    tasks: list[Task], *, limits: Limits | None = None, workers: int | None = None, progress: bool = False
) -> dict[str, datamode.Plan | str]:
    """The extra-call plan of each Java/JS task with `plus`, or why it has none, by task id."""
    limits = limits or Limits()
    todo = [t for t in tasks if t.plus is not None and t.language in LANGUAGES]
    if not todo:
        return {}
    plans = sandbox.map_tasks(
        lambda t: _plan(t, limits), todo, desc="extra-test results", workers=workers, progress=progress
    )
    return {t.task_id: p for t, p in zip(todo, plans)}


_CALL = re.compile(r"^call (\d+) of \d+")


def _which(task: Task, detail: str) -> str:
    """`call 12 of 57, ...` as `extra call 5 of 50, ...` (or `base call ...`)."""
    m = _CALL.match(detail)
    if m is None:
        return detail
    i, n_base = int(m.group(1)), len(task.plus.base_inputs)
    which = (
        f"base call {i} of {n_base}" if i <= n_base else f"extra call {i - n_base} of {len(task.plus.plus_inputs)}"
    )
    return which + detail[m.end() :]


def evaluate_extra(
    task: Task, completion: str, plan: datamode.Plan | str, limits: Limits | None = None
) -> PlusVerdict:
    """The extra verdict of one completion of a Java/JS task; every outcome is a status, never an exception."""
    if isinstance(plan, str):
        return PlusVerdict("unavailable", "unavailable", f"no expected results for the extra calls: {plan}")
    if not plan.tests.checks:
        return PlusVerdict("passed", categorize("passed"), "no calls beyond the base test")
    ran = datamode.run(task, task.prompt + completion, plan, limits or Limits())
    if ran is None:
        return PlusVerdict("unavailable", "unavailable", f"no toolchain for {task.language} on this machine")
    status, detail, _, res, wall = ran
    detail = _which(task, detail)
    return PlusVerdict(status, categorize(status, detail, res.stderr), detail, round(wall, 4))
