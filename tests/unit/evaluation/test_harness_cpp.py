"""C++ execution (HumanEval-X style): compiled with g++, run in the sandbox; only a test that ran to its end
passes, whatever the completion does to `assert`, `NDEBUG` or the process's exit."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from codetune.evaluation.benchmarks import Task, load_tasks
from codetune.evaluation.cpp_program import _rename_test_main
from codetune.evaluation.harness import evaluate_samples

CPP_TASK = Task(
    task_id="CPP/0",
    language="cpp",
    entry_point="add",
    prompt="/* Sum of a and b. */\n#include<stdio.h>\nusing namespace std;\nint add(int a, int b){\n",
    test=(
        "#undef NDEBUG\n#include<assert.h>\nint main(){\n    assert (add(2, 3) == 5);\n"
        "    assert (add(-1, 1) == 0);\n}\n"
    ),
    canonical_solution="    return a + b;\n}\n",
)
SHARED = Path("/work/shared/data/humaneval-x/humaneval_cpp.jsonl.gz")
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")


def test_test_main_is_renamed_and_returns_0():
    test = "#include<assert.h>\nint main(){\n    if (1) { assert (f() == 1); }\n}\n"
    out = _rename_test_main(test, "tm")
    assert "int main" not in out and "int tm() {" in out
    assert out == "#include<assert.h>\nint tm() {\n    if (1) { assert (f() == 1); }\n\nreturn 0;\n}\n"
    assert _rename_test_main("void g() {}\n", "tm") == "void g() {}\n"  # no main: the link fails


@needs_gxx
def test_cpp_verdicts():
    cases = [
        ("    return a + b;\n}\n", "passed"),
        ("    return 0;\n}\n", "failed"),  # a stub: the assert aborts
        ("    exit(0);\n}\n", "failed"),  # exits 0 before the test ran
        ("    return 0;\n}\n#define NDEBUG\n#define assert(x) ((void)0)\n", "failed"),  # assert stays live
        ("    return a +;\n}\n", "compile_error"),
        ('    throw "boom";\n}\n', "runtime_error"),
    ]
    res = evaluate_samples(
        [CPP_TASK], [{"task_id": "CPP/0", "completion": c} for c, _ in cases], workers=2, timeout_s=20
    )
    assert [r.status for r in res] == [s for _, s in cases], [(r.status, r.detail) for r in res]
    assert "Assertion" in res[1].detail and "exited 0 before the test ran to its end" in res[2].detail
    assert "error:" in res[4].detail  # the compiler's first error, not its closing summary


def _first_tasks(path: Path, n: int) -> Path:
    with gzip.open(SHARED, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(n), f)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@needs_gxx
@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_file(), reason="HumanEval-X C++ file not on this machine")
def test_canonical_humaneval_x_cpp_solutions_pass(tmp_path):
    tasks = load_tasks(str(_first_tasks(tmp_path / "cpp.jsonl", 4)), "c++")
    samples = [{"task_id": t.task_id, "completion": t.canonical_solution} for t in tasks]
    res = evaluate_samples(tasks, samples, workers=2, timeout_s=20)
    assert [r.status for r in res] == ["passed"] * len(tasks), [(r.task_id, r.detail) for r in res]
