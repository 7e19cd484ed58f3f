"""Infilling benchmarks built from a benchmark's canonical solutions, after Bavarian et al. 2022 ("Efficient
Training of Language Models to Fill in the Middle").

Each item masks part of a task's canonical body: the model sees the prompt and the body's lines before the
mask as its prefix and the lines after it as its suffix, and writes the middle. The program run against
the task's tests is prefix + middle + suffix + test, so an item passes when the infilled function passes.

* single_line: each non-blank line of the body masked in turn;
* multi_line: each contiguous block of two or more lines of the body that starts and ends on a non-blank
  line (every such block, so a body of n non-blank lines has n (n - 1) / 2 items).

On HumanEval's 164 tasks that makes 1,033 single_line items (the paper's count) and 4,782 multi_line
ones; the paper's 5,815 multi-line tasks are these plus the 1,033 single lines (its blocks may be one line).

The body is the task's `canonical_solution` as written: for HumanEval-X Java/JavaScript it ends with the
closing braces, so those lines are masked too. Items come in task order, then by the masked lines' start
(then end), so the same tasks always give the same items in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from codetune.errors import BenchmarkError
from codetune.evaluation.benchmarks import Task

KINDS = ("single_line", "multi_line")


@dataclass(frozen=True)
class InfillTask:
    """One infilling item.

    Attributes:
        task_id: "<base task id>/<kind>/<first line>" for single_line ("HumanEval/0/single_line/3"),
            "<base task id>/multi_line/<first line>-<last line>" for multi_line; lines count from 0 in the body.
        task: the base task (its prompt, tests and canonical solution).
        prefix: the task's prompt and the body's lines before the masked ones.
        suffix: the body's lines after the masked ones.
        middle: the masked line(s), with their newlines (the canonical middle).
        kind: one of KINDS.
    """

    task_id: str
    task: Task
    prefix: str
    suffix: str
    middle: str
    kind: str

    @property
    def base_id(self) -> str:
        return self.task.task_id

    @property
    def exec_task(self) -> Task:
        """The task the harness runs this item as: the base task under the item's id (its verdicts and
        pass@1 are per item) without HumanEval+'s extra inputs (infilling is judged on the task's tests)."""
        return replace(self.task, task_id=self.task_id, plus=None)

    def completion(self, middle: str) -> str:
        """What follows the base task's prompt once `middle` is infilled: the harness runs prompt +
        completion + test, which is prefix + middle + suffix + test."""
        return self.prefix[len(self.task.prompt) :] + middle + self.suffix


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise BenchmarkError(f"unknown infilling kind '{kind}'", f"use one of: {', '.join(KINDS)}")


def _items(task: Task, kind: str) -> list[InfillTask]:
    lines = task.canonical_solution.splitlines(keepends=True)
    solid = [i for i, line in enumerate(lines) if line.strip()]
    if kind == "single_line":
        spans = [(i, i) for i in solid]
    else:
        spans = [(i, j) for i in solid for j in solid if j > i]
    out = []
    for i, j in spans:
        name = f"{i}" if kind == "single_line" else f"{i}-{j}"
        item = InfillTask(
            task_id=f"{task.task_id}/{kind}/{name}",
            task=task,
            prefix=task.prompt + "".join(lines[:i]),
            suffix="".join(lines[j + 1 :]),
            middle="".join(lines[i : j + 1]),
            kind=kind,
        )
        assert item.prefix + item.middle + item.suffix == task.prompt + task.canonical_solution
        out.append(item)
    return out


def build_infilling(tasks: list[Task], kind: str) -> list[InfillTask]:
    """The infilling items of `tasks` (see the module docstring), in task order, then line order.

    Raises:
        BenchmarkError: an unknown kind, or a task without a canonical solution (its items cannot be made).
    """
    _check_kind(kind)
    missing = [t.task_id for t in tasks if not t.canonical_solution.strip()]
    if missing:
        raise BenchmarkError(
            f"infilling needs each task's canonical solution; {len(missing)} task(s) have none "
            f"(first: {missing[0]})",
            "use a benchmark whose records have `canonical_solution` (HumanEval, HumanEval-X)",
        )
    return [item for t in tasks for item in _items(t, kind)]


def _norm(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def exact_match(generated: str, canonical: str) -> bool:
    """The generated middle equals the canonical one once each line's trailing whitespace is stripped
    (a missing final newline does not count; an extra or missing line does)."""
    return _norm(generated) == _norm(canonical)


def cut_middle(text: str, kind: str) -> str:
    """A generated middle as it is infilled: single_line middles end after their first newline; multi_line
    ones are kept whole. An empty or blank middle is kept as generated (it fails where the line matters)."""
    _check_kind(kind)
    if kind == "single_line" and "\n" in text:
        return text[: text.index("\n") + 1]
    return text
