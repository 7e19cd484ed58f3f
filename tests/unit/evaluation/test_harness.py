"""Verdicts per language on tiny tasks built here: right answers pass, stubs and wrong answers fail, and
completions that try to fake a pass (early exit 0, fake markers, swapped asserts) never pass."""

from __future__ import annotations

import shutil

import pytest

from codetune.errors import BenchmarkError
from codetune.evaluation import programs
from codetune.evaluation.benchmarks import Task
from codetune.evaluation.harness import evaluate_samples, summarize

PY_TASK = Task(
    task_id="Python/0",
    language="python",
    entry_point="add",
    prompt='def add(a, b):\n    """Sum of a and b."""\n',
    test="def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    canonical_solution="    return a + b\n",
)
JS_TASK = Task(
    task_id="JavaScript/0",
    language="javascript",
    entry_point="add",
    prompt="/* Sum of a and b. */\nconst add = (a, b) => {\n",
    test=(
        "const testAdd = () => {\n  console.assert(add(2, 3) === 5)\n  console.assert(add(-1, 1) === 0)\n}\n"
        "\ntestAdd()\n"
    ),
    canonical_solution="  return a + b\n}\n",
)
JAVA_TASK = Task(
    task_id="Java/0",
    language="java",
    entry_point="add",
    prompt="import java.util.*;\nimport java.lang.*;\n\nclass Solution {\n    public int add(int a, int b) {\n",
    test=(
        "public class Main {\n    public static void main(String[] args) {\n        Solution s = new Solution();\n"
        "        List<Boolean> correct = Arrays.asList(s.add(2, 3) == 5, s.add(-1, 1) == 0);\n"
        "        if (correct.contains(false)) {\n            throw new AssertionError();\n        }\n    }\n}\n"
    ),
    canonical_solution="        return a + b;\n    }\n}\n",
)
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
needs_java = pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None, reason="no JDK")
needs_python = pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")


def _statuses(task, completions, **kw):
    res = evaluate_samples([task], [{"task_id": task.task_id, "completion": c} for c in completions], **kw)
    assert [r.index for r in res] == list(range(len(completions)))
    return res


PY_CASES = [
    # (completion, expected status, what it tries); where data mode differs, {mode: status}
    ("    return a + b\n", "passed", "right"),
    ("    pass\n", "failed", "stub returning None"),
    ("    return a - b\n", "failed", "wrong answer"),
    ("    return a +\n", "compile_error", "syntax error"),
    ("    raise ValueError('boom')\n", "runtime_error", "exception"),
    ("    while True:\n        pass\n", "timeout", "infinite loop"),
    ("    return a - b\nimport sys\nsys.exit(0)\n", "failed", "sys.exit(0) before the test"),
    ("    import os\n    os._exit(0)\n", "failed", "os._exit(0) inside the call"),
    ("    print('PASSED'); print('all tests passed')\n    raise SystemExit(0)\n", "failed", "fake success output"),
    (
        "    return a - b\nimport sys, os\nsys.excepthook = lambda *e: os._exit(0)\n",
        "failed",
        "excepthook exits 0",
    ),
    ("    return a - b\nimport atexit, os\natexit.register(lambda: os._exit(0))\n", "failed", "atexit exits 0"),
    (
        "    return a - b\nimport builtins\nbuiltins.AssertionError = type('X', (Exception,), {})\n",
        "failed",
        "replace AssertionError",
    ),
    (  # data mode: the runner makes reading stdin raise, as EvalPlus does
        "    return 0\nimport sys\nprint(sys.stdin.read())\nsys.stdout.flush()\nsys.exit(0)\n",
        {"assert": "failed", "data": "runtime_error"},
        "echo stdin",
    ),
    (  # data mode: a right answer; where its prints go does not matter, the results are a file
        "    return a + b\nimport sys\nsys.stdout = open('/dev/null', 'w')\n",
        {"assert": "failed", "data": "passed"},
        "hide stdout",
    ),
]


def _expected(status, mode: str) -> str:
    return status[mode] if isinstance(status, dict) else status


@needs_python
@pytest.mark.parametrize("mode", ["assert", "data"])
def test_python_verdicts(mode):
    res = _statuses(PY_TASK, [c for c, _, _ in PY_CASES], timeout_s=2, verdict_mode=mode)
    got = [(r.status, why) for r, (_, _, why) in zip(res, PY_CASES)]
    assert got == [(_expected(s, mode), why) for _, s, why in PY_CASES]
    assert all(r.verdict_mode == mode for r in res)
    assert res[0].detail == "" and "exited 0" in res[6].detail
    if mode == "assert":
        assert "AssertionError" in res[1].detail
        assert "exited 0 before the test ran to its end" in res[6].detail
        assert "PASSED" in res[8].stdout  # what it printed is kept, minus the harness's token
    else:
        assert res[1].detail == "call 1 of 2, add(2, 3): expected 5, got None"
        assert res[2].detail == "call 1 of 2, add(2, 3): expected 5, got -1"
        assert "ValueError: boom" in res[4].detail
    assert all(len(r.stdout) < 20_000 for r in res)
    assert res[0].isolation and "network" in res[0].isolation


@needs_python
def test_humaneval_style_test_without_check_call_gets_one():
    # HumanEval's tests define check() but never call it; a stub must still fail.
    res = _statuses(PY_TASK, ["    return None\n", "    return a + b\n"])
    assert [r.status for r in res] == ["failed", "passed"]


@needs_node
@pytest.mark.parametrize("mode", ["assert", "data"])
def test_js_verdicts(mode):
    cases = [
        ("  return a + b\n}\n", "passed"),
        ("  return 0\n}\n", "failed"),  # console.assert alone would only print
        ("  return 0\n}\nconsole.assert = () => {};\n", "failed"),
        ("  return 0\n}\nconst console = { assert() {}, log() {} };\n", "failed"),
        ("  return 0\n}\nglobalThis.console = { assert() {} };\n", "failed"),
        ("  process.exit(0)\n}\n", "failed"),
        ("  return 0\n}\nprocess.on('exit', () => process.exit(0));\n", "failed"),
        ("  return 0\n}\nprocess.on('uncaughtException', () => { console.log('ok'); });\n", "failed"),
        ("  return a +\n}\n", "compile_error"),
        ("  return undefinedThing.x\n}\n", "runtime_error"),
        ("  while (true) {}\n}\n", "timeout"),
        ("  return undefined\n}\n", "failed"),
        ("  return [a + b]\n}\n", "failed"),  # data mode: an array is not the number in it
    ]
    res = _statuses(JS_TASK, [c for c, _ in cases], timeout_s=2, verdict_mode=mode)
    assert [r.status for r in res] == [s for _, s in cases], [(r.status, r.detail) for r in res]
    if mode == "assert":
        assert "assertion failed" in res[1].detail
    else:
        assert res[1].detail == "call 1 of 2, add(2, 3): expected 5, got 0"
        assert res[5].detail == "the program exited 0 after 0 of 2 calls"
        assert res[11].detail == "call 1 of 2, add(2, 3): expected 5, got undefined"
        assert "ReferenceError" in res[9].detail


@needs_java
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["assert", "data"])
def test_java_verdicts(mode):
    cases = [
        ("        return a + b;\n    }\n}\n", "passed"),
        ("        return 0;\n    }\n}\n", "failed"),
        ("        System.exit(0);\n        return 0;\n    }\n}\n", "failed"),
        ("        Runtime.getRuntime().halt(0);\n        return 0;\n    }\n}\n", "failed"),
        ("        return a +;\n    }\n}\n", "compile_error"),
        ('        return "x";\n    }\n}\n', "compile_error"),
        ("        return a / (b - b);\n    }\n}\n", "runtime_error"),
        ("        while (true) {}\n    }\n}\n", "timeout"),
    ]
    res = _statuses(JAVA_TASK, [c for c, _ in cases], timeout_s=10, verdict_mode=mode)
    assert [r.status for r in res] == [s for _, s in cases], [(r.status, r.detail) for r in res]
    assert "ArithmeticException" in res[6].detail
    if mode == "data":
        assert res[1].detail == "call 1 of 2, s.add(2, 3): expected 5, got 0"
        assert res[4].detail.startswith("Main.java:") and "error:" in res[4].detail


def test_missing_toolchain_is_unavailable(monkeypatch):
    monkeypatch.setattr(programs, "toolchain", lambda lang: None)
    res = _statuses(JS_TASK, ["  return a + b\n}\n"])
    assert res[0].status == "unavailable" and "toolchain" in res[0].detail


def test_bad_samples_raise_benchmark_error():
    with pytest.raises(BenchmarkError, match="not in the benchmark"):
        evaluate_samples([PY_TASK], [{"task_id": "Python/99", "completion": ""}])
    with pytest.raises(BenchmarkError, match="completion"):
        evaluate_samples([PY_TASK], [{"task_id": "Python/0"}])


@needs_python
def test_summarize_counts_and_pass_at_k():
    t2 = Task(**{**PY_TASK.__dict__, "task_id": "Python/1"})
    samples = [
        {"task_id": "Python/0", "completion": "    return a + b\n"},
        {"task_id": "Python/1", "completion": "    return 0\n"},
        {"task_id": "Python/0", "completion": "    return 1\n"},
        {"task_id": "Python/1", "completion": "    return a + b\n"},
    ]
    res = evaluate_samples([PY_TASK, t2], samples, workers=2)
    assert [r.task_id for r in res] == [s["task_id"] for s in samples]
    s = summarize(res, [1, 2, 3])
    assert s["pass@k"] == {"pass@1": 0.5, "pass@2": 1.0}
    assert s["skipped_k"] == [3]
    assert s["status_counts"]["passed"] == 2 and s["status_counts"]["failed"] == 2
    assert s["per_task"]["Python/0"] == {"n": 2, "c": 1, "pass@1": 0.5, "pass@2": 1.0}
    assert isinstance(s["isolation"], dict) and s["isolation"]["network"] in ("netns", "host")
