"""Generated tests (evaluation/testgen.py) on a tiny task file made here, through the real sandbox: the
canonical solution passes all its generated tests, a solution wrong on edge cases that passes the base
tests fails them, the file round-trips through load_tasks with its types, and the same seed writes the
same bytes."""

from __future__ import annotations

import gzip
import json

import pytest

from codetune.errors import BenchmarkError
from codetune.evaluation import programs, testgen
from codetune.evaluation.benchmarks import load_tasks
from codetune.evaluation.harness import evaluate_samples, summarize

pytestmark = pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")


def _task(i: int, sig: str, doc: str, body: str, asserts: list[str]) -> dict:
    name = sig.split("(")[0]
    return {
        "task_id": f"HumanEval/{i}",
        "prompt": f'def {sig}:\n    """{doc}"""\n',
        "canonical_solution": body,
        "test": "def check(candidate):\n" + "".join(f"    assert {a}\n" for a in asserts),
        "entry_point": name,
    }


TASKS = [
    _task(
        0,
        "abs_sum(xs)",
        "Sum of the absolute values.",
        "    return sum(abs(x) for x in xs)\n",
        ["candidate([1, 2, 3]) == 6", "candidate([4]) == 4", "candidate([]) == 0"],
    ),
    _task(
        1,
        "count_vowels(s)",
        "Vowels in s, either case.",
        '    return sum(c in "aeiouAEIOU" for c in s)\n',
        ['candidate("abc") == 1', 'candidate("hello") == 2'],
    ),
    _task(
        2,
        "swap(pair, table)",
        "The pair reversed, and the sum of the table's int keys.",
        "    return pair[::-1], sum(k for k in table if isinstance(k, int))\n",
        ['candidate((1, 2), {1: "a", "b": 2}) == ((2, 1), 1)'],
    ),
    _task(
        3,
        "first(xs)",
        "The first item.",
        "    return xs[0]\n",
        ["candidate([3, 1]) == 3", "candidate([7]) == 7"],
    ),
    {
        **_task(4, "loop(n)", "n.", "    return n\n", []),
        "test": "def check(candidate):\n    for i in range(3):\n        assert candidate(i) == i\n",
    },
]
# Wrong on inputs the base tests do not try, right on those they do.
WRONG = {
    "HumanEval/0": "    return sum(xs)\n",  # negatives
    "HumanEval/1": '    return sum(c in "aeiou" for c in s)\n',  # upper-case vowels
    "HumanEval/2": "    return (pair[1], pair[0]), sum(k for k in table if isinstance(k, int))\n",  # fine
    "HumanEval/3": "    return xs[0] if len(xs) < 3 else xs[1]\n",  # longer lists
}
SETTINGS = testgen.Settings(per_task=20, seed=0)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The task file, and the generated file written from it (once for the module)."""
    d = tmp_path_factory.mktemp("testgen")
    src = d / "tasks.jsonl"
    src.write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    gens = testgen.augment(load_tasks(str(src)), SETTINGS, workers=2)
    out = testgen.write_records(d / "generated.jsonl.gz", [testgen.to_record(g, SETTINGS, str(src)) for g in gens])
    return src, out, gens


def _evaluate(tasks, completions: dict[str, str]):
    samples = [{"task_id": t, "completion": c} for t, c in completions.items()]
    return evaluate_samples(tasks, samples, timeout_s=10, workers=2)


def test_each_task_gets_its_tests_or_a_reason(made):
    _, _, gens = made
    by = {g.task.task_id: g for g in gens}
    for tid in ("HumanEval/0", "HumanEval/1", "HumanEval/2", "HumanEval/3"):
        assert by[tid].skipped is None and len(by[tid].plus_inputs) == SETTINGS.per_task, tid
    assert by["HumanEval/4"].skipped.startswith("its tests cannot be parsed")
    assert by["HumanEval/4"].plus_inputs == []
    assert by["HumanEval/3"].counts["raised"] > 0  # empty lists: xs[0] raises, those inputs were dropped
    assert by["HumanEval/0"].base_inputs == [[[1, 2, 3]], [[4]], [[]]]  # the test's own calls, in its order
    assert all(args[0] for args in by["HumanEval/3"].plus_inputs)


def test_the_file_round_trips_with_its_types(made):
    _, out, gens = made
    tasks = {t.task_id: t for t in load_tasks(str(out))}
    assert len(tasks) == len(TASKS) and all(t.plus is not None for t in tasks.values())
    swap = tasks["HumanEval/2"]
    assert swap.plus.base_inputs == [[(1, 2), {1: "a", "b": 2}]]
    assert all(isinstance(p, tuple) and isinstance(d, dict) for p, d in swap.plus.plus_inputs)
    assert any(isinstance(k, int) for _, d in swap.plus.plus_inputs for k in d)  # int keys survived JSON
    by = {g.task.task_id: g for g in gens}
    assert tasks["HumanEval/0"].plus.plus_inputs == by["HumanEval/0"].plus_inputs
    rows = [json.loads(line) for line in gzip.open(out, "rt")]
    assert rows[0]["generator"] | {"source": None} == {
        "name": "codetune.testgen",
        "version": testgen.VERSION,
        "mutation_version": testgen.mutation.VERSION,
        "seed": 0,
        "per_task": 20,
        "source": None,
        "skipped": None,
    }
    assert rows[4]["generator"]["skipped"].startswith("its tests cannot be parsed")
    assert set(rows[0]) >= {"task_id", "prompt", "entry_point", "canonical_solution", "test", "base_input"}
    assert rows[0]["input_form"] == "typed" and rows[0]["atol"] == 0


def test_canonical_passes_all_its_generated_tests_and_edge_case_bugs_fail_them(made):
    _, out, _ = made
    tasks = load_tasks(str(out))
    canon = _evaluate(tasks, {t.task_id: t.canonical_solution for t in tasks})
    assert [(r.status, r.plus_status) for r in canon] == [("passed", "passed")] * len(tasks)
    wrong = {r.task_id: r for r in _evaluate(tasks, WRONG)}
    assert all(r.status == "passed" for r in wrong.values())  # the base tests do not see the bugs
    for tid in ("HumanEval/0", "HumanEval/1", "HumanEval/3"):
        assert wrong[tid].plus_status == "failed", (tid, wrong[tid].plus_detail)
    assert wrong["HumanEval/2"].plus_status == "passed"  # right everywhere: the extra tests agree
    summary = summarize(list(wrong.values()), ks=[1])
    assert summary["base_pass_plus_fail"] == 3


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_inputs(made, tmp_path):
    src, out, _ = made
    tasks = load_tasks(str(src))[:2]
    again = testgen.augment(tasks, SETTINGS, workers=1)
    path = testgen.write_records(
        tmp_path / "again.jsonl.gz", [testgen.to_record(g, SETTINGS, str(src)) for g in again]
    )
    first_two = [json.loads(line) for line in gzip.open(out, "rt")][:2]
    assert [json.loads(line) for line in gzip.open(path, "rt")] == first_two
    assert path.read_bytes() == testgen.write_records(tmp_path / "b.jsonl.gz", first_two).read_bytes()
    other = testgen.Settings(per_task=20, seed=1)
    moved = testgen.augment(tasks, other, workers=1)
    assert [g.plus_inputs for g in moved] != [g.plus_inputs for g in again]


def test_hash_order_dependent_results_are_dropped(tmp_path):
    """A result in set order (strings) differs between hash seeds: such inputs are not kept."""
    task = _task(
        0,
        "uniq(words)",
        "The distinct words.",
        "    return list(set(words))\n",
        ['sorted(candidate(["a", "b", "a"])) == ["a", "b"]'],
    )
    src = tmp_path / "uniq.jsonl"
    src.write_text(json.dumps(task) + "\n")
    (g,) = testgen.augment(load_tasks(str(src)), testgen.Settings(per_task=10), workers=1)
    assert g.counts["unstable"] > 0 and g.skipped is None


def test_extra_tests_attach_to_the_same_tasks_only(made, tmp_path):
    src, out, _ = made
    tasks, kind = testgen.attach_extra_tests(load_tasks(str(src))[:3], out)
    assert kind == "generated tests (20 per task, seed 0)" and all(t.plus is not None for t in tasks)
    assert len(tasks[0].plus.plus_inputs) == 20
    other = [{**t, "prompt": t["prompt"].replace("Sum", "Total")} for t in TASKS]
    changed = tmp_path / "changed.jsonl"
    changed.write_text("".join(json.dumps(t) + "\n" for t in other))
    with pytest.raises(BenchmarkError, match="prompt of 'HumanEval/0'"):
        testgen.attach_extra_tests(load_tasks(str(changed)), out)
    more = tmp_path / "more.jsonl"
    more.write_text(
        "".join(
            json.dumps(t) + "\n" for t in [*TASKS, _task(9, "f(x)", "x.", "    return x\n", ["candidate(1) == 1"])]
        )
    )
    with pytest.raises(BenchmarkError, match="no extra tests for task 'HumanEval/9'"):
        testgen.attach_extra_tests(load_tasks(str(more)), out)
    with pytest.raises(BenchmarkError, match="no extra tests"):
        testgen.attach_extra_tests(load_tasks(str(src)), src)  # a plain benchmark file
    with pytest.raises(BenchmarkError, match="not found"):
        testgen.attach_extra_tests(load_tasks(str(src)), tmp_path / "missing.jsonl")


def test_a_humaneval_plus_file_attaches_too(tmp_path):
    """eval.extra_tests with EvalPlus's form (plain JSON inputs, no `generator`): labelled HumanEval+."""
    rows = [{**t, "base_input": [], "plus_input": [], "atol": 0} for t in TASKS[:2]]
    rows[0]["base_input"], rows[0]["plus_input"] = [[[1, 2, 3]]], [[[-1, 5]], [[0]]]
    plus = tmp_path / "HumanEvalPlus.jsonl"
    plus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    src = tmp_path / "tasks.jsonl"
    src.write_text("".join(json.dumps(t) + "\n" for t in TASKS[:2]))
    tasks, kind = testgen.attach_extra_tests(load_tasks(str(src)), plus)
    assert kind == "HumanEval+" and tasks[0].plus.plus_inputs == [[[-1, 5]], [[0]]]
    (r,) = _evaluate(tasks[:1], {"HumanEval/0": WRONG["HumanEval/0"]})
    assert r.status == "passed" and r.plus_status == "failed"  # sum([-1, 5]) != 6
