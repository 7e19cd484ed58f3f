"""The error taxonomy: real programs through the real sandbox land in the category their failure names."""

from __future__ import annotations

import shutil

import pytest

from codetune.evaluation import programs, sandbox
from codetune.evaluation.benchmarks import Task
from codetune.evaluation.harness import CATEGORIES, ExecResult, evaluate_samples, summarize
from codetune.evaluation.taxonomy import categorize

PY_TASK = Task(
    task_id="Python/0",
    language="python",
    entry_point="add",
    prompt='def add(a, b):\n    """Sum of a and b."""\n',
    test="def check(candidate):\n    assert candidate(2, 3) == 5\n",
    canonical_solution="    return a + b\n",
)
JS_TASK = Task(
    task_id="JavaScript/0",
    language="javascript",
    entry_point="add",
    prompt="const add = (a, b) => {\n",
    test="const t = () => {\n  console.assert(add(2, 3) === 5)\n}\nt()\n",
    canonical_solution="  return a + b\n}\n",
)
JAVA_TASK = Task(
    task_id="Java/0",
    language="java",
    entry_point="add",
    prompt="class Solution {\n    public int add(int a, int b) {\n",
    test=(
        "public class Main {\n    public static void main(String[] args) {\n"
        "        if (new Solution().add(2, 3) != 5) { throw new AssertionError(); }\n    }\n}\n"
    ),
    canonical_solution="        return a + b;\n    }\n}\n",
)
needs_python = pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
needs_java = pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None, reason="no JDK")

# (completion, category, what it does)
PY_CASES = [
    ("    return a + b\n", "passed", "right"),
    ("    return a - b\n", "wrong_answer", "wrong answer"),
    ("    import sys\n    sys.exit(0)\n", "wrong_answer", "exits 0 before the test ends"),
    ("    return a +\n", "syntax_error", "SyntaxError"),
    ("  return a + b\n    return 1\n", "syntax_error", "IndentationError"),
    ("\treturn a + b\n        return 1\n", "syntax_error", "TabError or IndentationError"),
    ("    raise ValueError('boom')\n", "runtime_error", "exception"),
    ("    return add(a, b)\n", "runtime_error", "RecursionError: CPython's own limit, not the sandbox's"),
    ("    while True:\n        pass\n", "timeout", "infinite loop"),
    ("    x = bytearray(8 * 1024 ** 3)\n    return a + b\n", "resource_limit", "MemoryError"),
    (
        "    with open('big.bin', 'wb') as f:\n        f.write(b'x' * (20 * 1024 * 1024))\n    return a + b\n",
        "resource_limit",
        "file size limit (EFBIG)",
    ),
    (
        "    fs = [open('/dev/null') for _ in range(1000)]\n    return a + b\n",
        "resource_limit",
        "open files limit (EMFILE)",
    ),
]


@needs_python
@pytest.mark.parametrize("mode", ["data", "assert"])
def test_python_categories(mode):
    samples = [{"task_id": "Python/0", "completion": c} for c, _, _ in PY_CASES]
    res = evaluate_samples([PY_TASK], samples, timeout_s=3, workers=2, verdict_mode=mode)
    got = [(r.category, why) for r, (_, _, why) in zip(res, PY_CASES)]
    assert got == [(cat, why) for _, cat, why in PY_CASES], [(r.status, r.detail) for r in res]
    assert all(r.to_dict()["category"] == r.category for r in res)
    assert "plus_status" not in res[0].to_dict()  # only HumanEval+ results carry a plus verdict
    assert "RecursionError" in res[7].detail and "MemoryError" in res[9].detail


@needs_python
@pytest.mark.skipif("nproc" not in sandbox.isolation().rlimits, reason="no process limit on this machine")
def test_process_limit_is_a_resource_limit():
    threads = (
        "    import threading, time\n"
        "    for _ in range(500):\n"
        "        threading.Thread(target=time.sleep, args=(3,), daemon=True).start()\n"
        "    return a + b\n"
    )
    forks = "    import os\n    for _ in range(500):\n        if os.fork() == 0:\n            os._exit(0)\n    return a + b\n"
    samples = [{"task_id": "Python/0", "completion": c} for c in (threads, forks)]
    res = evaluate_samples([PY_TASK], samples, timeout_s=5, workers=1)
    assert [r.category for r in res] == ["resource_limit", "resource_limit"], [r.detail for r in res]


@needs_node
@pytest.mark.parametrize("mode", ["data", "assert"])
def test_js_parse_error_is_a_syntax_error(mode):
    cases = ["  return a +\n}\n", "  return JSON.parse('{')\n}\n", "  return 0\n}\n"]
    samples = [{"task_id": "JavaScript/0", "completion": c} for c in cases]
    res = evaluate_samples([JS_TASK], samples, timeout_s=5, verdict_mode=mode)
    # A SyntaxError thrown while running (JSON.parse) is a runtime error, not a parse error.
    assert [r.category for r in res] == ["syntax_error", "runtime_error", "wrong_answer"], [r.detail for r in res]


@needs_java
@pytest.mark.slow
def test_javac_failure_is_a_compile_error():
    cases = [
        "        return a +;\n    }\n}\n",
        '        return "x";\n    }\n}\n',
        "        return a + b;\n    }\n}\n",
    ]
    res = evaluate_samples([JAVA_TASK], [{"task_id": "Java/0", "completion": c} for c in cases], timeout_s=20)
    assert [r.category for r in res] == ["compile_error", "compile_error", "passed"], [r.detail for r in res]


@pytest.mark.parametrize(
    "status, detail, stderr, category",
    [
        ("passed", "", "", "passed"),
        ("failed", "AssertionError", "", "wrong_answer"),
        ("timeout", "killed after the wall-clock limit of 10 s", "", "timeout"),
        ("unavailable", "no toolchain for java on this machine", "", "unavailable"),
        ("compile_error", "SyntaxError: invalid syntax (program.py, line 3)", "", "syntax_error"),
        ("compile_error", "ValueError: source code string cannot contain null bytes", "", "syntax_error"),
        ("compile_error", "SyntaxError: Unexpected token '}'", "", "syntax_error"),  # node
        ("compile_error", "Main.java:5: error: ';' expected", "", "compile_error"),
        ("compile_error", "sample.cpp:4:12: error: expected primary-expression", "", "compile_error"),
        ("runtime_error", "terminated by SIGKILL (killed: CPU hard limit or out of memory)", "", "resource_limit"),
        ("runtime_error", "terminated by SIGXFSZ (file size limit)", "", "resource_limit"),
        ("runtime_error", "terminated by SIGSEGV (crashed)", "", "runtime_error"),
        (
            "runtime_error",
            "terminated by SIGABRT (killed)",
            "terminate called after throwing an instance of 'std::bad_alloc'",
            "resource_limit",
        ),
        (
            "runtime_error",
            'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space',
            "",
            "resource_limit",
        ),
        ("runtime_error", "java.lang.OutOfMemoryError: unable to create native thread", "", "resource_limit"),
        (
            "runtime_error",
            "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
            "",
            "resource_limit",
        ),
        ("runtime_error", "BlockingIOError: [Errno 11] Resource temporarily unavailable", "", "resource_limit"),
        ("runtime_error", "RecursionError: maximum recursion depth exceeded", "", "runtime_error"),
        ("runtime_error", "RangeError: Maximum call stack size exceeded", "", "runtime_error"),
        ("runtime_error", 'Exception in thread "main" java.lang.StackOverflowError', "", "runtime_error"),
        ("runtime_error", "ZeroDivisionError: division by zero", "", "runtime_error"),
    ],
)
def test_categorize_rules(status, detail, stderr, category):
    assert categorize(status, detail, stderr) == category
    assert category in CATEGORIES


def test_unknown_status_is_an_error():
    with pytest.raises(ValueError, match="unknown status"):
        categorize("exploded")


def test_category_counts_in_the_summary():
    res = [
        ExecResult(0, "T/0", "python", "passed"),
        ExecResult(1, "T/0", "python", "failed", detail="AssertionError"),
        ExecResult(2, "T/1", "python", "compile_error", detail="SyntaxError: invalid syntax"),
        ExecResult(3, "T/1", "python", "runtime_error", detail="MemoryError"),
    ]
    s = summarize(res)
    assert list(s["category_counts"]) == list(CATEGORIES)
    assert s["category_counts"] == {
        "passed": 1,
        "syntax_error": 1,
        "compile_error": 0,
        "runtime_error": 0,
        "wrong_answer": 1,
        "timeout": 0,
        "resource_limit": 1,
        "unavailable": 0,
    }
    assert "pass@k_plus" not in s  # not HumanEval+ results
    assert ExecResult(0, "T/0", "python", "failed", category="timeout").category == "timeout"  # kept when given
