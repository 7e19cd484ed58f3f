"""Data mode end to end: the trusted comparisons, the canonical results' cache, and real tasks whose canonical
solutions pass and whose `return None`-style completions fail in both verdict modes (real sandbox)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from codetune.evaluation import datamode, judging, programs
from codetune.evaluation.benchmarks import Task, load_tasks
from codetune.evaluation.harness import evaluate_samples, summarize
from codetune.evaluation.judging import Opaque, judge_check, same
from codetune.evaluation.testcases import Check, to_data

HUMANEVAL_X = Path("/work/shared/data/humaneval-x")
needs_python = pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
needs_java = pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None, reason="no JDK")
needs_humaneval_x = pytest.mark.skipif(not HUMANEVAL_X.is_dir(), reason="no HumanEval-X files here")


def _rec(value) -> dict:
    return {"h": judging._plus_runner._digest(value).hex(), "v": judging.encode(value)}


def _py(rule, expected=None, **kw) -> Check:
    return Check((), rule, expected, **kw)


def test_python_rules_compare_as_the_original_assert_would():
    ok = lambda check, got, canon=None: judge_check("python", check, _rec(got), canon)  # noqa: E731
    assert ok(_py("eq", 1), 1.0) is None and ok(_py("eq", True), 1) is None  # 1 == 1.0 == True
    assert ok(_py("eq", (1, 2)), [1, 2]) == "expected (1, 2), got [1, 2]"  # a list is not a tuple
    assert ok(_py("eq", (1, 2), wrap="tuple"), [1, 2]) is None  # tuple(candidate(...)) == (1, 2)
    assert ok(_py("eq", {"a": 1}), {"a": 1.0}) is None and ok(_py("eq", {1, 2}), frozenset({2, 1})) is None
    assert ok(_py("abs_lt", 0.33, tol=1e-6), 0.3300001) is None
    assert "within 1e-06" in ok(_py("abs_lt", 0.33, tol=1e-6), 0.331)
    assert "a number" in ok(_py("abs_lt", 0.33, tol=1e-6), None)
    assert ok(_py("abs_le", 1, tol=0), 1) is None and ok(_py("abs_lt", 1, tol=0), 1) is not None
    assert ok(_py("isclose", 1.0, isclose=(("rel_tol", 1e-3),)), 1.0005) is None
    assert ok(_py("truthy"), [0]) is None and ok(_py("truthy"), []) is not None
    assert ok(_py("falsy"), 0) is None and ok(_py("is_true"), 1) == "expected True, got 1"
    assert ok(_py("is_false"), False) is None and ok(_py("is_none"), None) is None
    big = list(range(5000))  # written as a digest only: compared by it
    assert "v" not in judging._plus_runner._record(big, 0.0)
    assert judge_check("python", _py("eq", big), judging._plus_runner._record(big, 0.0), None) is None
    assert judge_check("python", _py("eq", big[:-1]), judging._plus_runner._record(big, 0.0), None) is not None
    canon = _rec([3, 1])
    assert judge_check("python", _py("eq", from_canonical=True), _rec([3, 1]), canon) is None
    assert judge_check("python", _py("eq", from_canonical=True), _rec((3, 1)), canon) is not None


def test_python_results_that_are_not_plain_data_never_pass():
    opaque = {"h": "x", "v": {"r": "Anything object"}}
    for check in (_py("eq", 5), _py("truthy"), _py("is_true"), _py("abs_lt", 1.0, tol=10.0)):
        assert judge_check("python", check, opaque, None) is not None
    assert Opaque("x") != Opaque("x")
    assert judge_check("python", _py("eq", 5), None, None) == "an unreadable result"
    assert "cannot be judged" in judge_check("python", _py("eq", 5), {"v": 5}, None)  # no digest
    assert "cannot be judged" in judge_check("python", _py("eq", 5), {"h": "x", "v": {"zz": 1}}, None)


def test_json_results_of_java_and_js():
    assert same(2, 2.0) and not same(True, 1) and not same(None, 0) and not same("1", 1)
    assert same([1, [2, "a"]], [1.0, [2, "a"]]) and not same([1], [1, 2])
    assert same({"map": [["a", 1], ["b", 2]]}, {"map": [["b", 2], ["a", 1]]})  # maps in any order
    assert same({"set": [1, 2.0]}, {"set": [2, 1]}) and not same({"set": [1]}, [1])
    assert not same({"o": [["a", 1], ["b", 2]]}, {"o": [["b", 2], ["a", 1]]})  # JS objects in key order
    assert same({"opt": []}, {"opt": []}) and not same({"opt": [1]}, {"opt": []})
    assert not same({"r": "Foo"}, {"r": "Foo"}) and not same({"u": 0}, None)
    assert same({"f": "NaN"}, {"f": "NaN"}) and not same({"c": "a"}, "a")
    check = Check("f(1)", "abs_lt", from_canonical=True, tol=1e-6)
    assert judge_check("java", check, {"v": 0.3333334}, {"v": 0.3333333}) is None
    assert judge_check("java", Check("f(1)", "same", from_canonical=True), {"v": 0.3333334}, {"v": 0.3333333})
    assert "cannot be judged" in judge_check("javascript", Check("f()", "same"), {"v": 1, "x": 2}, {"v": 1})


def _both_modes(tasks, completions_by_task, **kw):
    samples = [{"task_id": t, "completion": c} for t, cs in completions_by_task.items() for c in cs]
    out = {}
    for mode in ("data", "assert"):
        res = evaluate_samples(tasks, samples, verdict_mode=mode, **kw)
        out[mode] = [(r.task_id, r.status) for r in res]
        assert summarize(res)["verdict_mode_counts"] == {"data": 0, "assert": 0} | {mode: len(res)}
    return out


@needs_python
def test_real_humaneval_tasks_in_both_modes():
    tasks = [t for t in load_tasks("humaneval") if t.task_id in ("HumanEval/4", "HumanEval/33", "HumanEval/95")]
    got = _both_modes(tasks, {t.task_id: [t.canonical_solution, "    return None\n"] for t in tasks}, workers=2)
    want = [(t.task_id, s) for t in tasks for s in ("passed", "failed")]
    # assert mode: the test itself crashes on None (abs(None - x), tuple(None)); data mode: a wrong answer
    crashes = {"HumanEval/4", "HumanEval/33"}
    assert got["assert"] == [(t, "runtime_error" if t in crashes and s == "failed" else s) for t, s in want]
    assert got["data"] == want


@needs_python
def test_task_without_data_tests_is_judged_in_assert_mode_under_auto_and_unavailable_in_data_mode():
    task = next(t for t in load_tasks("humaneval") if t.task_id == "HumanEval/53")
    samples = [{"task_id": task.task_id, "completion": task.canonical_solution}]
    (auto,) = evaluate_samples([task], samples)
    assert (auto.verdict_mode, auto.status) == ("assert", "passed")
    (data,) = evaluate_samples([task], samples, verdict_mode="data")
    assert (data.verdict_mode, data.status) == ("data", "unavailable") and "not an assert" in data.detail
    with pytest.raises(ValueError, match="verdict_mode"):
        evaluate_samples([task], samples, verdict_mode="both")


@needs_node
@needs_humaneval_x
def test_real_js_tasks_in_both_modes():
    tasks = [
        t for t in load_tasks(str(HUMANEVAL_X), "javascript") if t.task_id in ("JavaScript/4", "JavaScript/111")
    ]
    got = _both_modes(
        tasks, {t.task_id: [t.canonical_solution, "return undefined;\n}\n"] for t in tasks}, workers=2
    )
    want = [(t.task_id, s) for t in tasks for s in ("passed", "failed")]
    assert got["data"] == want and [s == "passed" for _, s in got["assert"]] == [True, False, True, False]


@needs_java
@needs_humaneval_x
@pytest.mark.slow
def test_real_java_tasks_in_both_modes():
    tasks = [t for t in load_tasks(str(HUMANEVAL_X), "java") if t.task_id in ("Java/1", "Java/137")]
    got = _both_modes(tasks, {t.task_id: [t.canonical_solution, "return null;\n}\n}\n"] for t in tasks}, workers=2)
    assert [s == "passed" for _, s in got["data"]] == [True, False, True, False]
    assert [s == "passed" for _, s in got["assert"]] == [True, False, True, False]


HASHY = Task(
    task_id="Python/7",
    language="python",
    entry_point="letters",
    prompt="def letters(s):\n",
    # the expected value is no literal: the canonical solution's result, whose order is set order
    test="def check(candidate):\n    assert candidate('abcdefghij') == list(candidate('abcdefghij'))\n",
    canonical_solution="    return list(set(s))\n",
)


@needs_python
def test_canonical_results_that_depend_on_the_hash_seed_keep_the_task_in_assert_mode():
    plans = datamode.expected_plans([HASHY])
    assert "depends on the hash seed" in plans[HASHY.task_id]
    stable = Task(**{**HASHY.__dict__, "canonical_solution": "    return sorted(set(s))\n"})
    plan = datamode.expected_plans([stable])[stable.task_id]
    assert isinstance(plan, datamode.Plan) and plan.tests.checks[0].from_canonical


@needs_node
def test_canonical_results_stand_for_expected_ones_only_if_the_canonical_passes_its_own_test():
    # HumanEval-X has such tasks (JavaScript/112, /155): the test expects 3, the canonical solution gives 4
    broken = Task(
        task_id="JavaScript/8",
        language="javascript",
        entry_point="three",
        prompt="const three = () => {\n",
        test="const t = () => {\n  console.assert(three() === 3)\n}\nt()\n",
        canonical_solution="  return 4\n}\n",
    )
    why = datamode.expected_plans([broken])[broken.task_id]
    assert isinstance(why, str) and "fails the task's own test" in why
    (r,) = evaluate_samples([broken], [{"task_id": broken.task_id, "completion": "  return 3\n}\n"}])
    assert (r.verdict_mode, r.status) == ("assert", "passed")


@needs_python
def test_canonical_results_are_cached_by_task_and_checks(monkeypatch):
    task = next(t for t in load_tasks("humaneval") if t.task_id == "HumanEval/33")
    first = datamode.expected_plans([task])[task.task_id]
    assert isinstance(first, datamode.Plan) and len(first.expected) == len(to_data(task).checks)
    monkeypatch.setattr(datamode, "_canonical", lambda *a: pytest.fail("recomputed a cached result"))
    assert datamode.expected_plans([task])[task.task_id] == first
    changed = Task(**{**task.__dict__, "canonical_solution": task.canonical_solution + "\n"})
    with pytest.raises(pytest.fail.Exception):
        datamode.expected_plans([changed])
