"""evaluate_samples' hooks for appending results as they finish and resuming: `on_result` and `done`."""

from __future__ import annotations

import threading
import time

import pytest

from codetune.errors import BenchmarkError
from codetune.evaluation import harness, programs
from codetune.evaluation.benchmarks import Task
from codetune.evaluation.harness import ExecResult, evaluate_samples

PY_TASK = Task(
    task_id="Python/0",
    language="python",
    entry_point="add",
    prompt='def add(a, b):\n    """Sum of a and b."""\n',
    test="def check(candidate):\n    assert candidate(2, 3) == 5\n",
    canonical_solution="    return a + b\n",
)
needs_python = pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")

RIGHT, WRONG = "    return a + b\n", "    return a - b\n"


def _samples(*completions):
    return [{"task_id": PY_TASK.task_id, "completion": c} for c in completions]


@needs_python
def test_on_result_gets_every_new_result_once_and_one_call_at_a_time():
    seen, inside, overlap = [], [0], []
    guard = threading.Lock()

    def record(r: ExecResult) -> None:
        with guard:
            inside[0] += 1
            overlap.append(inside[0])
        time.sleep(0.05)  # widen the window in which a second call could overlap
        seen.append((r.index, r.status, threading.current_thread() is not threading.main_thread()))
        with guard:
            inside[0] -= 1

    res = evaluate_samples([PY_TASK], _samples(RIGHT, WRONG, RIGHT, WRONG), workers=4, on_result=record)
    assert sorted(i for i, _, _ in seen) == [0, 1, 2, 3]
    assert {i: s for i, s, _ in seen} == {r.index: r.status for r in res}
    assert all(worker for _, _, worker in seen)  # called from the workers, as each result is done
    assert max(overlap) == 1


@needs_python
def test_done_results_are_returned_in_place_and_not_rerun(monkeypatch):
    known = ExecResult(index=1, task_id=PY_TASK.task_id, language="python", status="passed")
    ran = []
    real = harness.evaluate_one
    monkeypatch.setattr(harness, "evaluate_one", lambda t, c, **kw: ran.append(kw["index"]) or real(t, c, **kw))
    called = []
    res = evaluate_samples([PY_TASK], _samples(RIGHT, WRONG, WRONG), done={1: known}, on_result=called.append)
    assert res[1] is known  # a wrong completion, but its verdict was already known: not run again
    assert sorted(ran) == [0, 2] and sorted(r.index for r in called) == [0, 2]
    assert [r.status for r in res] == ["passed", "passed", "failed"]


def test_everything_done_runs_nothing(monkeypatch):
    monkeypatch.setattr(harness, "evaluate_one", lambda *a, **k: pytest.fail("ran a known sample"))
    known = {i: ExecResult(index=i, task_id=PY_TASK.task_id, language="python", status="failed") for i in (0, 1)}
    assert evaluate_samples([PY_TASK], _samples(RIGHT, RIGHT), done=known) == [known[0], known[1]]


def test_done_results_that_do_not_match_the_samples_raise():
    other = ExecResult(index=0, task_id="Python/7", language="python", status="passed")
    with pytest.raises(BenchmarkError, match="does not match the samples"):
        evaluate_samples([PY_TASK], _samples(RIGHT), done={0: other})
    mine = ExecResult(index=5, task_id=PY_TASK.task_id, language="python", status="passed")
    with pytest.raises(BenchmarkError, match="no such sample"):
        evaluate_samples([PY_TASK], _samples(RIGHT), done={5: mine})


@needs_python
def test_an_error_in_on_result_stops_the_evaluation_and_propagates():
    calls = []

    def boom(r: ExecResult) -> None:
        calls.append(r.index)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        evaluate_samples([PY_TASK], _samples(*[RIGHT] * 8), workers=1, on_result=boom)
    assert len(calls) == 1  # samples not started when it failed were dropped
