"""Efficiency of passing code: heavy inputs chosen by size, samples timed against the canonical solution in
the real sandbox (tiny HumanEval+-format task files made here), and the figures of a configuration.

Timings are CPU-time ratios of two programs measured side by side, never wall times; the bounds asserted
are far from the values expected (a quadratic solution on 4,000 elements is hundreds of times slower)."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from codetune.evaluation import efficiency, programs
from codetune.evaluation.benchmarks import load_tasks
from codetune.evaluation.efficiency import Settings, heaviest, input_size, measure_pair, measure_run, summarize

needs_python = pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")

N = 4000
RECORDS = [
    {  # linear: the number of distinct values
        "task_id": "HumanEval/0",
        "prompt": 'def distinct(xs):\n    """How many distinct values xs holds."""\n',
        "entry_point": "distinct",
        "canonical_solution": "    return len(set(xs))\n",
        "test": "def check(candidate):\n    assert candidate([1, 2, 2]) == 2\n    assert candidate([]) == 0\n",
        "base_input": [[[1, 2, 2]], [[]]],
        "plus_input": [[list(range(N))], [[5, 5, 5]], [list(range(N // 2)) * 2]],
        "atol": 0,
    },
    {  # sorts its argument in place: each timed call must get its own copy
        "task_id": "HumanEval/1",
        "prompt": 'def smallest(xs):\n    """The smallest value of xs (non-empty)."""\n',
        "entry_point": "smallest",
        "canonical_solution": "    return min(xs)\n",
        "test": "def check(candidate):\n    assert candidate([3, 1, 2]) == 1\n",
        "base_input": [[[3, 1, 2]]],
        "plus_input": [[list(range(N, 0, -1))]],
        "atol": 0,
    },
]
QUADRATIC = "    return sum(1 for i, x in enumerate(xs) if x not in xs[:i])\n"
FAST = Settings(top_k=2, repeats=3, min_time_s=0.005)


def _tasks(tmp_path: Path, records=RECORDS):
    path = tmp_path / "HumanEvalPlus-tiny.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return load_tasks(str(path))


# ------------------------------------------------------------------------------------------ heavy inputs


def test_size_counts_lengths_elements_and_digits():
    assert input_size([[1, 2, 3]]) == 1 + (3 + 3)  # the argument list, then the list and its three ints
    assert input_size(["abcd"]) == 1 + 4
    assert input_size([10**30]) == 1 + 31 and input_size([7]) == 2 and input_size([True, None]) == 4
    assert input_size([{"a": [1, 2]}]) == 1 + (1 + 1 + (2 + 2))


def test_heaviest_ranks_by_size_then_magnitude_then_order():
    inputs = [[5], [[2, 1]], [9], ["abc"], [[7, 8]], [[1, 2]]]
    # sizes 2, 5, 2, 4, 5, 5: [7, 8] has the larger numbers; [2, 1] and [1, 2] tie and keep their order
    assert heaviest(inputs, 4) == [[[7, 8]], [[2, 1]], [[1, 2]], ["abc"]]
    assert heaviest([[3], [12], [40]], 2) == [[40], [12]]  # numbers of equal digits: the larger first


def test_task_inputs_are_the_tests_calls_and_the_extra_inputs_without_duplicates(tmp_path):
    task = _tasks(tmp_path)[0]
    found = efficiency.task_inputs(task)
    assert found[0] == [[1, 2, 2]] and found[1] == [[]]  # the test's calls first (base inputs are the same)
    assert len(found) == 5 and [list(range(N))] in found
    assert heaviest(found, 2) == [[list(range(N))], [list(range(N // 2)) * 2]]


# ---------------------------------------------------------------------------------------------- figures


def _rec(task, ratio, kind="sample", status="ok", **kw):
    return {"task_id": task, "kind": kind, "status": status, "ratio": ratio, "spread": 0.1, "pinned": 0, **kw}


def test_summary_is_the_geometric_mean_over_tasks_with_slow_tasks_and_noise():
    records = [
        _rec("T/0", 1.0, kind="self"),
        _rec("T/0", 2.0, mem_ratio=1.0, agrees=True),
        _rec("T/0", 8.0, mem_ratio=4.0, agrees=False),  # task T/0: geomean 4
        _rec("T/1", 0.25, mem_ratio=1.0, agrees=True),
        _rec("T/1", 100.0, status="timeout", censored=True),  # lower bound: kept in the mean, a slow task
        _rec("T/2", None, status="error"),
        {"task_id": "T/3", "kind": "sample", "status": "unavailable"},
    ]
    out = summarize(records, n_boot=200)
    assert out["eff_samples"] == 6 and out["eff_timed"] == 3 and out["eff_timeouts"] == 1
    assert out["eff_errors"] == 1 and out["eff_unmeasured"] == 1 and out["eff_disagree"] == 1
    # T/0: sqrt(2 * 8) = 4; T/1: sqrt(0.25 * 100) = 5; over tasks sqrt(4 * 5)
    assert out["eff_tasks"] == 2 and out["eff_ratio"] == pytest.approx(math.sqrt(20), abs=1e-4)
    assert out["eff_ratio_ci_low"] <= out["eff_ratio"] <= out["eff_ratio_ci_high"]
    assert out["eff_slow_tasks"] == 1 and out["eff_slow_task_ids"] == "T/1"
    assert out["eff_mem_ratio"] == pytest.approx(math.sqrt(2 * 1.0), abs=1e-4)  # T/0: 2, T/1: 1
    assert out["eff_self_ratio"] == 1.0 and out["eff_spread"] == 0.1 and out["eff_pinned"] is True


def test_summary_of_nothing_measured_has_no_ratio():
    out = summarize([])
    assert out["eff_samples"] == 0 and out["eff_ratio"] is None and out["eff_self_ratio"] is None


# ------------------------------------------------------------------------------------- in the sandbox


@needs_python
def test_canonical_against_itself_is_about_one_and_quadratic_code_is_slower(tmp_path):
    task = _tasks(tmp_path)[0]
    inputs = heaviest(efficiency.task_inputs(task), FAST.top_k)
    same = measure_pair(task, None, inputs, FAST)
    assert same["status"] == "ok" and same["kind"] == "self" and same["agrees"] is True
    assert 0.5 < same["ratio"] < 2.0  # the noise band is measured by benchmarks/efficiency_bench.py
    assert len(same["loops"][0]) == 2 and same["canonical_s"] > 0 and same["peak_b"] > 0
    slow = measure_pair(task, QUADRATIC, inputs, FAST)
    assert slow["status"] == "ok" and slow["agrees"] is True
    assert slow["ratio"] > 10 * max(same["ratio"], 1.0)  # O(n^2) on n = 4,000: hundreds of times slower


@needs_python
def test_in_place_mutation_gets_a_fresh_copy_per_call(tmp_path):
    task = _tasks(tmp_path)[1]
    empties = "    v = min(xs)\n    xs.clear()\n    return v\n"  # min() of the list it emptied would raise
    rec = measure_pair(task, empties, heaviest(efficiency.task_inputs(task), 1), FAST)
    assert rec["status"] == "ok" and rec["agrees"] is True and min(rec["loops"][0]) > 1


@needs_python
def test_raising_wrong_and_endless_samples(tmp_path):
    task = _tasks(tmp_path)[0]
    inputs = heaviest(efficiency.task_inputs(task), 1)
    raises = "    if len(xs) > 100:\n        raise ValueError('too long')\n    return len(set(xs))\n"
    rec = measure_pair(task, raises, inputs, FAST)
    assert rec["status"] == "error" and "ValueError: too long" in rec["detail"]
    wrong = "    return len(set(xs)) + (len(xs) > 100)\n"
    assert measure_pair(task, wrong, inputs, FAST)["agrees"] is False
    endless = "    while len(xs) > 100:\n        pass\n    return len(set(xs))\n"
    quick = Settings(top_k=1, repeats=3, min_time_s=0.005, min_limit_s=0.5, limit_factor=50.0)
    rec = measure_pair(task, endless, inputs, quick)
    assert rec["status"] == "timeout" and rec["censored"] is True and rec["ratio"] == 50.0


def _stage_inputs(tasks):
    """Four samples: two passing, one failing (never timed), one passing quadratic one."""
    samples = [
        {"task_id": "HumanEval/0", "completion": RECORDS[0]["canonical_solution"]},
        {"task_id": "HumanEval/0", "completion": QUADRATIC},
        {"task_id": "HumanEval/0", "completion": "    return 0\n"},
        {"task_id": "HumanEval/1", "completion": RECORDS[1]["canonical_solution"]},
    ]
    statuses = ["passed", "passed", "failed", "passed"]
    results = [
        {"index": i, "task_id": s["task_id"], "status": st} for i, (s, st) in enumerate(zip(samples, statuses))
    ]
    return samples, results


@needs_python
def test_a_run_stage_times_passing_samples_only_and_resumes(tmp_path, monkeypatch):
    tasks = _tasks(tmp_path)
    samples, results = _stage_inputs(tasks)
    out = tmp_path / "bench"
    calls = []
    real = efficiency.measure_pair

    def killed_after_two(task, completion, inputs, settings):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the stage is killed mid-way: what was appended stays
        calls.append((task.task_id, completion))
        return real(task, completion, inputs, settings)

    monkeypatch.setattr(efficiency, "measure_pair", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        measure_run(tasks, samples, results, out, settings=FAST)
    assert (
        len((out / efficiency.PARTIAL).read_text().splitlines()) == 2 and not (out / efficiency.SUMMARY).exists()
    )

    calls.clear()
    monkeypatch.setattr(efficiency, "measure_pair", lambda *a: calls.append(a[:2]) or real(*a))
    metrics = measure_run(tasks, samples, results, out, settings=FAST)
    # jobs: self + samples 0, 1 of task 0, then self + sample 3 of task 1; the first two were kept
    assert [(t.task_id, c) for t, c in calls] == [
        ("HumanEval/0", QUADRATIC),
        ("HumanEval/1", None),
        ("HumanEval/1", RECORDS[1]["canonical_solution"]),
    ]
    assert metrics["eff_resumed"] == 2 and metrics["eff_samples"] == 3 and metrics["eff_timed"] == 3
    records = [json.loads(x) for x in (out / efficiency.RECORDS).read_text().splitlines()]
    assert [r["index"] for r in records if r["kind"] == "sample"] == [0, 1, 3]  # the failing sample: not timed
    assert metrics["eff_slow_task_ids"] == "HumanEval/0" and metrics["eff_slow_tasks"] == 1
    assert not (out / efficiency.PARTIAL).exists()

    calls.clear()  # finished: read back, nothing measured again
    assert measure_run(tasks, samples, results, out, settings=FAST) == metrics and calls == []


def test_a_sample_of_a_task_without_inputs_is_recorded_unmeasured(tmp_path):
    record = {
        **RECORDS[0],
        "test": "def check(candidate):\n    for x in range(3):\n        assert candidate([x])\n",
    }
    for key in ("base_input", "plus_input", "atol"):
        record.pop(key)
    path = tmp_path / "HumanEval-tiny.jsonl"
    path.write_text(json.dumps(record) + "\n")
    tasks = load_tasks(str(path))
    samples = [{"task_id": "HumanEval/0", "completion": "    return len(set(xs))\n"}]
    metrics = measure_run(tasks, samples, [{"index": 0, "status": "passed"}], tmp_path / "b", settings=FAST)
    assert metrics["eff_unmeasured"] == 1 and metrics["eff_timed"] == 0 and metrics["eff_ratio"] is None
    (rec,) = [json.loads(x) for x in (tmp_path / "b" / efficiency.RECORDS).read_text().splitlines()]
    assert rec["status"] == "unavailable" and rec["detail"].startswith("no inputs")
