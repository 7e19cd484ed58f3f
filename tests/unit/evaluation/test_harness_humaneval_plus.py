"""HumanEval+ from a path: tiny HumanEvalPlus-format files built here, run through the real sandbox.

Base verdicts come from the task's own `test`; plus verdicts from the base + plus inputs compared with the
canonical solution's results as EvalPlus compares them."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

from codetune.errors import BenchmarkError
from codetune.evaluation import humaneval_plus, programs
from codetune.evaluation.benchmarks import load_tasks
from codetune.evaluation.harness import evaluate_samples, summarize
from codetune.evaluation.humaneval_plus import outputs_match

needs_python = pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")

RECORDS = [
    {  # exact ints; HumanEval's test only tries small even numbers
        "task_id": "HumanEval/0",
        "prompt": 'def is_even(n):\n    """True when n is even."""\n',
        "entry_point": "is_even",
        "canonical_solution": "    return n % 2 == 0\n",
        "test": "def check(candidate):\n    assert candidate(2) is True\n    assert candidate(3) is False\n",
        "base_input": [[2], [3]],
        "plus_input": [[0], [7], [10**30], [-4]],
        "atol": 0,
    },
    {  # a float result with a tolerance
        "task_id": "HumanEval/1",
        "prompt": 'def third(x):\n    """x / 3."""\n',
        "entry_point": "third",
        "canonical_solution": "    return x / 3\n",
        "test": "def check(candidate):\n    assert abs(candidate(3.0) - 1.0) < 1e-6\n",
        "base_input": [[3.0]],
        "plus_input": [[1.0], [2.5], [1e6]],
        "atol": 1e-6,
    },
    {  # a tuple result (a list is not equal to it), from a large input
        "task_id": "HumanEval/2",
        "prompt": 'def span(xs):\n    """(min, max) of xs."""\n',
        "entry_point": "span",
        "canonical_solution": "    return (min(xs), max(xs))\n",
        "test": "def check(candidate):\n    assert list(candidate([1, 2])) == [1, 2]\n",
        "base_input": [[[1, 2]]],
        "plus_input": [[[5, -1, 3]], [list(range(3000))]],
        "atol": 0,
    },
]


def _write(path: Path, records=RECORDS) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


@pytest.fixture
def plus_file(tmp_path) -> Path:
    return _write(tmp_path / "HumanEvalPlus.jsonl.gz")


def _run(tasks, completions: dict[str, list[str]]):
    samples = [{"task_id": t, "completion": c} for t, cs in completions.items() for c in cs]
    return evaluate_samples(tasks, samples, timeout_s=5, workers=2)


def test_load_recognises_humaneval_plus(plus_file):
    tasks = load_tasks(str(plus_file))
    assert [t.task_id for t in tasks] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    t0 = tasks[0]
    assert t0.language == "python" and t0.entry_point == "is_even" and t0.test == RECORDS[0]["test"]
    assert t0.plus.inputs == [[2], [3], [0], [7], [10**30], [-4]]  # base first
    assert tasks[1].plus.atol == 1e-6 and len(t0.plus.source_sha256) == 64
    with pytest.raises(BenchmarkError, match="is python, but --lang is java"):
        load_tasks(str(plus_file), "java")


@pytest.mark.parametrize(
    "change, match",
    [({"plus_input": "[[1]]"}, "`plus_input`"), ({"atol": -1}, "`atol`"), ({"base_input": [1, 2]}, "each input")],
)
def test_bad_plus_records(tmp_path, change, match):
    path = _write(tmp_path / "bad.jsonl.gz", [{**RECORDS[0], **change}])
    with pytest.raises(BenchmarkError, match=match):
        load_tasks(str(path))


@needs_python
def test_base_and_plus_verdicts(plus_file):
    tasks = load_tasks(str(plus_file))
    res = _run(
        tasks,
        {
            "HumanEval/0": [
                "    return n % 2 == 0\n",  # right
                "    return n in (2, 4)\n",  # passes HumanEval's test, fails plus input 0
                "    return n % 2 == 0 and n < 10**9\n",  # wrong only on a big plus input
                "    return n % 2 ==\n",  # syntax error: both
            ],
            "HumanEval/1": [
                "    return x / 3 + 1e-9\n",  # within atol
                "    return x / 3 + 1e-3\n",  # outside atol: fails both
                "    return int(x) // 3\n",  # 3.0 -> 1 passes the base test; 2.5 -> 0 fails
            ],
            "HumanEval/2": [
                "    return (min(xs), max(xs))\n",
                "    return [min(xs), max(xs)]\n",  # a list: passes HumanEval's list() test, never equal to a tuple
            ],
        },
    )
    got = [(r.task_id, r.status, r.plus_status, r.plus_category) for r in res]
    assert got == [
        ("HumanEval/0", "passed", "passed", "passed"),
        ("HumanEval/0", "passed", "failed", "wrong_answer"),
        ("HumanEval/0", "passed", "failed", "wrong_answer"),
        ("HumanEval/0", "compile_error", "compile_error", "syntax_error"),
        ("HumanEval/1", "passed", "passed", "passed"),
        ("HumanEval/1", "failed", "failed", "wrong_answer"),
        ("HumanEval/1", "passed", "failed", "wrong_answer"),
        ("HumanEval/2", "passed", "passed", "passed"),
        ("HumanEval/2", "passed", "failed", "wrong_answer"),
    ], [r.plus_detail for r in res]
    assert res[1].plus_detail == "plus input 0: expected True, got False"
    assert res[2].plus_detail.startswith("plus input 2: ")
    assert res[8].plus_detail == "base input 0: expected (1, 2), got [1, 2]"
    d = res[1].to_dict()
    assert d["plus_status"] == "failed" and d["plus_category"] == "wrong_answer" and d["category"] == "passed"

    s = summarize(res)
    assert s["pass@k"]["pass@1"] == pytest.approx((3 / 4 + 2 / 3 + 2 / 2) / 3)
    assert s["pass@k_plus"]["pass@1_plus"] == pytest.approx((1 / 4 + 1 / 3 + 1 / 2) / 3)
    assert s["base_pass_plus_fail"] == 4
    assert s["per_task"]["HumanEval/0"] == {"n": 4, "c": 3, "pass@1": 0.75, "c_plus": 1, "pass@1_plus": 0.25}
    assert s["plus_status_counts"]["failed"] == 5 and s["plus_category_counts"]["syntax_error"] == 1


@needs_python
def test_plus_run_keeps_the_pass_proof(plus_file):
    tasks = load_tasks(str(plus_file))
    res = _run(
        tasks,
        {
            "HumanEval/0": [
                # exits 0 on a plus input only: HumanEval's test never gets there
                "    if n == 7:\n        import os\n        os._exit(0)\n    return n % 2 == 0\n",
                "    if n == 7:\n        raise SystemExit(0)\n    return n % 2 == 0\n",
                "    if n == 7:\n        raise ValueError('seven')\n    return n % 2 == 0\n",
                "    while n == 7:\n        pass\n    return n % 2 == 0\n",  # the per-input limit (1 s)
                "    print('PASSED', n)\n    return n % 2 == 0\n",  # prints are swallowed, as in EvalPlus
            ]
        },
    )
    assert [r.status for r in res] == ["passed"] * 5
    assert [(r.plus_status, r.plus_category) for r in res] == [
        ("failed", "wrong_answer"),
        ("failed", "wrong_answer"),
        ("runtime_error", "runtime_error"),
        ("timeout", "timeout"),
        ("passed", "passed"),
    ], [r.plus_detail for r in res]
    assert "exited 0 before the test ran to its end" in res[0].plus_detail
    assert res[2].plus_detail == "ValueError: seven"
    assert res[3].plus_detail == "input 3 ran past its time limit of 1 s"


@needs_python
def test_expected_outputs_are_cached_by_file_hash(plus_file, monkeypatch, tmp_path):
    tasks = load_tasks(str(plus_file))
    first = humaneval_plus.expected_outputs(tasks)
    assert first["HumanEval/0"].error is None and len(first["HumanEval/0"].outputs) == 6
    assert first["HumanEval/2"].outputs[-1]["v"] == {"t": [0, 2999]}  # a tuple, kept as one
    assert len(first["HumanEval/0"].seconds) == 6 and first["HumanEval/0"].wall_s > 0

    def boom(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(humaneval_plus, "_canonical", boom)
    again = humaneval_plus.expected_outputs(load_tasks(str(plus_file)))
    assert again["HumanEval/1"].outputs == first["HumanEval/1"].outputs
    changed = _write(tmp_path / "other.jsonl.gz", [{**RECORDS[0], "plus_input": [[9]]}])
    with pytest.raises(AssertionError, match="recomputed"):  # another file, another key
        humaneval_plus.expected_outputs(load_tasks(str(changed)))


@needs_python
def test_a_failing_canonical_solution_makes_plus_unavailable(tmp_path):
    rec = {**RECORDS[0], "canonical_solution": "    return 1 // (n - 7)\n"}
    tasks = load_tasks(str(_write(tmp_path / "p.jsonl.gz", [rec])))
    (r,) = _run(tasks, {"HumanEval/0": ["    return n % 2 == 0\n"]})
    assert r.status == "passed" and (r.plus_status, r.plus_category) == ("unavailable", "unavailable")
    assert "ZeroDivisionError" in r.plus_detail


@needs_python
def test_large_results_compare_by_value_equality(tmp_path):
    rec = {
        "task_id": "HumanEval/5",
        "prompt": "def halves(n):\n",
        "entry_point": "halves",
        "canonical_solution": "    return [i / 2 * 2 for i in range(n)]\n",  # floats: 0.0, 1.0, ...
        "test": "def check(candidate):\n    assert candidate(2) == [0, 1]\n",
        "base_input": [[2]],
        "plus_input": [[5000]],
        "atol": 0,
    }
    tasks = load_tasks(str(_write(tmp_path / "p.jsonl.gz", [rec])))
    res = _run(
        tasks,
        {"HumanEval/5": ["    return list(range(n))\n", "    return [i if i < 4999 else 0 for i in range(n)]\n"]},
    )
    # ints equal to the canonical floats pass (1 == 1.0), as in EvalPlus; a wrong last item does not
    assert [r.plus_status for r in res] == ["passed", "failed"], [r.plus_detail for r in res]
    assert res[1].plus_detail == "plus input 0: expected a large result, got a large result"


def test_outputs_match_follows_evalplus():
    def rec(v):
        return {"v": v, "h": "x"}

    assert outputs_match(rec(1), rec(1.0), 0, "f", [])  # == semantics
    assert outputs_match(rec(True), rec(1), 0, "f", [])
    assert not outputs_match(rec([1, 2]), rec({"t": [1, 2]}), 0, "f", [])  # list vs tuple
    assert outputs_match(rec({"t": [1.0, 2.0]}), rec({"t": [1.0000001, 2.0]}), 0, "f", [])  # 1e-6 for floats
    assert not outputs_match(rec([1.0, 2.0]), rec({"t": [1.0000001, 2.0]}), 0, "f", [])  # same type needed
    assert not outputs_match(rec(1.001), rec(1.0), 0, "f", [])
    assert outputs_match(rec(1.001), rec(1.0), 0.01, "f", [])
    assert not outputs_match(rec(1), rec(2), 0.01, "f", [])  # ints: exact unless within atol
    assert not outputs_match(rec(float("nan")), rec(1.0), 1.0, "f", [])
    assert outputs_match(rec({"d": [["a", 1], ["b", 2]]}), rec({"d": [["b", 2], ["a", 1]]}), 0, "f", [])
    assert outputs_match(rec({"s": [1, 2]}), rec({"fs": [2, 1]}), 0, "f", [])
    assert not outputs_match(rec({"r": "Weird object"}), rec({"r": "Weird object"}), 0, "f", [])
    assert not outputs_match(rec({"bogus": 1}), rec(1), 0, "f", [])
    # find_zero (HumanEval/32): any root within atol passes; the canonical root does not matter
    assert outputs_match(rec(2.0), rec(-1.0), 1e-4, "find_zero", [[-2, 1]])
    assert not outputs_match(rec(1.0), rec(2.0), 1e-4, "find_zero", [[-2, 1]])
    assert outputs_match({"h": "a"}, {"h": "a", "v": 1}, 0, "f", [])  # one large side: digests
    assert not outputs_match({"h": "a"}, {"h": "b"}, 0, "f", [])


def _runner():
    path = Path(humaneval_plus.__file__).with_name("_plus_runner.py")
    spec = importlib.util.spec_from_file_location("ct_plus_runner", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # defines only: main() runs under __main__
    return mod


def test_runner_digest_equals_for_values_python_calls_equal():
    r = _runner()
    d = r._digest
    assert d([1, 2.0, True]) == d([1.0, 2, 1])
    assert d([1, "a"]) == d([1.0, "a"])  # the general path agrees with itself
    assert d([1]) != d((1,)) and d("1") != d(1) and d([1.5]) != d([1.25])
    assert d({"a": 1, "b": [2]}) == d({"b": [2.0], "a": 1})
    assert d({1, 2}) == d(frozenset({2, 1}))
    assert d(10**5000) != d(10**5000 + 1)
    assert d([2**60]) == d([2.0**60]) and d([2**60 + 1]) != d([2.0**60])
    rec = r._record(10**5000, 0.0)
    assert "v" not in rec and rec["h"]  # too large to write as a value
    assert r._record((1, [2.5], {"k": None}), 0.0)["v"] == {"t": [1, [2.5], {"d": [["k", None]]}]}
