"""Infilling sets built from canonical bodies (evaluation/infilling.py) and judged in the sandbox
(experiments/infilling.py's execution): HumanEval's single-line set, multi-line, HumanEval-X Java/JS."""

from __future__ import annotations

from pathlib import Path

import pytest

from codetune.errors import BenchmarkError
from codetune.evaluation import programs
from codetune.evaluation.benchmarks import Task, load_tasks
from codetune.evaluation.infilling import build_infilling, cut_middle, exact_match
from codetune.experiments.infilling import execute_middles, infilling_items, infilling_metrics, item_verdicts
from codetune.rundir import BenchmarkDir

HUMANEVAL_X = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "humaneval-x"
needs_python = pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")

BODY = "    if x < 0:\n        return -x\n\n    return x\n"
TASK = Task("T/0", "python", 'def f(x):\n    """abs"""\n', "def check(c):\n    assert c(-2) == 2\n", "f", "", BODY)


def test_single_line_masks_each_non_blank_line_with_prefix_and_suffix():
    items = build_infilling([TASK], "single_line")
    assert [it.task_id for it in items] == ["T/0/single_line/0", "T/0/single_line/1", "T/0/single_line/3"]
    second = items[1]
    assert second.prefix == TASK.prompt + "    if x < 0:\n"
    assert second.middle == "        return -x\n"
    assert second.suffix == "\n    return x\n"
    assert second.base_id == "T/0" and second.kind == "single_line"
    for it in items:
        assert it.prefix.startswith(TASK.prompt)
        assert it.prefix + it.middle + it.suffix == TASK.prompt + BODY
        # what the harness runs after the base prompt: the rest of the prefix, the middle, the suffix
        assert TASK.prompt + it.completion(it.middle) == TASK.prompt + BODY
    assert items[2].suffix == "" and items[0].prefix == TASK.prompt
    assert second.exec_task.task_id == second.task_id and second.exec_task.prompt == TASK.prompt


def test_multi_line_masks_every_block_of_two_or_more_lines_between_non_blank_lines():
    items = build_infilling([TASK], "multi_line")
    assert [it.task_id.rsplit("/", 1)[1] for it in items] == ["0-1", "0-3", "1-3"]
    block = items[2]
    assert block.middle == "        return -x\n\n    return x\n" and block.suffix == ""
    assert all(it.prefix + it.middle + it.suffix == TASK.prompt + BODY for it in items)


def test_tasks_without_canonical_solution_or_an_unknown_kind_are_one_error():
    with pytest.raises(BenchmarkError, match="canonical solution"):
        build_infilling([Task("T/1", "python", "def g():\n", "", "g")], "single_line")
    with pytest.raises(BenchmarkError, match="unknown infilling kind"):
        build_infilling([TASK], "random_span")
    one_line = Task("T/2", "python", "def g():\n", "", "g", "", "    return 1\n")
    with pytest.raises(BenchmarkError, match="no multi_line infilling items"):
        infilling_items([one_line], "multi_line")


def test_exact_match_ignores_trailing_whitespace_only():
    assert exact_match("    return x  \n", "    return x\n")
    assert exact_match("    return x", "    return x\n")
    assert not exact_match("    return  x\n", "    return x\n")
    assert not exact_match("  return x\n", "    return x\n")  # indentation counts
    assert not exact_match("    a\n    b\n", "    a\n")
    assert not exact_match("", "    return x\n")


def test_single_line_middles_end_after_their_first_newline():
    assert cut_middle("    return x\n    y = 1\n", "single_line") == "    return x\n"
    assert cut_middle("    return x", "single_line") == "    return x"
    assert cut_middle("", "single_line") == "" and cut_middle("   ", "single_line") == "   "
    assert cut_middle("    a\n    b\n", "multi_line") == "    a\n    b\n"


def test_humaneval_single_line_set_is_deterministic():
    tasks = load_tasks("humaneval")
    first = build_infilling(tasks, "single_line")
    again = build_infilling(load_tasks("humaneval"), "single_line")
    assert [it.task_id for it in first] == [it.task_id for it in again]
    assert [(it.prefix, it.middle, it.suffix) for it in first] == [
        (it.prefix, it.middle, it.suffix) for it in again
    ]
    assert len({it.task_id for it in first}) == len(first)
    assert len(first) == sum(1 for t in tasks for line in t.canonical_solution.splitlines() if line.strip())
    # task order, then line order
    order = [(int(it.base_id.split("/")[1]), int(it.task_id.rsplit("/", 1)[1])) for it in first]
    assert order == sorted(order)
    assert {it.base_id for it in first} == {t.task_id for t in tasks}


def _run(items, samples, tmp_path, name="out", **kw):
    bdir = BenchmarkDir(tmp_path / name)
    summary = execute_middles(items, samples, bdir, workers=2, progress=False, **kw)
    return summary, item_verdicts(bdir)


def _canonical(items):
    return [{"task_id": it.task_id, "completion": it.middle} for it in items]


@needs_python
def test_canonical_middles_pass_humaneval_single_line_first_tasks(tmp_path):
    """The fast suite's share of the full check (test_canonical_middles_pass_all_of_humaneval_single_line)."""
    items = infilling_items(load_tasks("humaneval"), "single_line", limit=12)
    summary, verdicts = _run(items, _canonical(items), tmp_path)
    assert summary["pass@k"]["pass@1"] == 1.0, [k for k, v in verdicts.items() if not v]
    assert summary["exact_match"] == 1.0 and summary["infill_n"] == len(items) == len(verdicts)
    m = infilling_metrics(summary, "single_line", len(items), None)
    assert m["infill_pass@1"] == 100.0 and m["infill_exact_match"] == 100.0
    assert m["infill_pass@1_ci_low"] == m["infill_pass@1_ci_high"] == 100.0


@needs_python
@pytest.mark.slow
def test_canonical_middles_pass_all_of_humaneval_single_line(tmp_path):
    items = infilling_items(load_tasks("humaneval"), "single_line")
    summary, verdicts = _run(items, _canonical(items), tmp_path)
    assert [k for k, v in verdicts.items() if not v] == []
    assert summary["pass@k"]["pass@1"] == 1.0 and summary["n_samples"] == len(items)


@needs_python
def test_an_empty_middle_fails_where_the_line_matters(tmp_path):
    items = infilling_items(load_tasks("humaneval"), "single_line", limit=12)
    returns = [it for it in items if it.middle.strip().startswith("return ")]
    assert len(returns) >= 10
    blank = [{"task_id": it.task_id, "completion": ""} for it in returns]
    summary, verdicts = _run(returns, blank, tmp_path)
    assert summary["pass@k"]["pass@1"] == 0.0 and not any(verdicts.values())
    assert summary["exact_match"] == 0.0
    # a blank line in place of the return line fails too; the canonical one passes on the same items
    ws = [{"task_id": it.task_id, "completion": "    \n"} for it in returns]
    assert not any(_run(returns, ws, tmp_path, "ws")[1].values())


@needs_python
def test_multi_line_canonical_middles_pass_and_a_wrong_block_fails(tmp_path):
    items = infilling_items(load_tasks("humaneval"), "multi_line", limit=3)
    assert all(it.middle.count("\n") >= 2 for it in items)
    summary, verdicts = _run(items, _canonical(items), tmp_path)
    assert summary["pass@k"]["pass@1"] == 1.0 and len(verdicts) == len(items) > 10
    whole = [it for it in items if it.prefix == it.task.prompt and it.suffix == ""]  # the whole body masked
    assert len(whole) == 2  # HumanEval/2's body is one line: no block
    wrong = [{"task_id": it.task_id, "completion": "    return None\n"} for it in whole]
    assert not any(_run(whole, wrong, tmp_path, "wrong")[1].values())


def _humaneval_x(lang: str) -> list:
    path = HUMANEVAL_X / f"humaneval_{lang}.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"HumanEval-X data not present ({path})")
    tasks = load_tasks(str(path))
    if programs.toolchain(tasks[0].language) is None:
        pytest.skip(f"no toolchain for {tasks[0].language}")
    return tasks


def test_humaneval_x_javascript_canonical_middles_pass(tmp_path):
    items = infilling_items(_humaneval_x("js"), "single_line", limit=3)
    assert items[0].task_id.startswith("JavaScript/0/single_line/")
    assert any(it.middle.strip() == "}" for it in items)  # the closing braces are part of the body
    summary, verdicts = _run(items, _canonical(items), tmp_path)
    assert summary["pass@k"]["pass@1"] == 1.0, [k for k, v in verdicts.items() if not v]


@pytest.mark.slow
def test_humaneval_x_java_canonical_middles_pass(tmp_path):
    items = infilling_items(_humaneval_x("java"), "single_line", limit=1)
    assert items[0].task_id.startswith("Java/0/single_line/")
    summary, verdicts = _run(items, _canonical(items), tmp_path)
    assert summary["pass@k"]["pass@1"] == 1.0, [k for k, v in verdicts.items() if not v]
    # the closing brace of the method is one of the masked lines: left out, the program does not compile
    brace = next(it for it in items if it.middle.strip() == "}")
    assert not any(_run([brace], [{"task_id": brace.task_id, "completion": ""}], tmp_path, "b")[1].values())
