"""Issue 18's false passes, each tried through the real sandbox: (a) read the nonce from stdin, print its
token, exit 0; (b) return an object whose `__eq__` is always true; (c) `sys.settrace` that jumps check()
to its last line. In data mode none of them passes (the program never sees the expected values); in
assert mode (a) no longer passes (the nonce is read before the completion runs), while (b) and (c),
in-process tricks, still do: the documented limit of assert mode, which is why data mode is the default
wherever a task's tests can be turned into data."""

from __future__ import annotations

import shutil

import pytest

from codetune.evaluation import programs
from codetune.evaluation.benchmarks import Task, load_tasks
from codetune.evaluation.harness import evaluate_samples

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
    prompt="const add = (a, b) => {\n",
    test="const testAdd = () => {\n  console.assert(add(2, 3) === 5)\n  console.assert(add(-1, 1) === 0)\n}\ntestAdd()\n",
    canonical_solution="  return a + b\n}\n",
)
JAVA_TASK = Task(
    task_id="Java/0",
    language="java",
    entry_point="pair",
    prompt="import java.util.*;\nimport java.lang.*;\n\nclass Solution {\n    public List<Integer> pair(int a, int b) {\n",
    test=(
        "public class Main {\n    public static void main(String[] args) {\n        Solution s = new Solution();\n"
        "        List<Boolean> correct = Arrays.asList(s.pair(2, 3).equals(Arrays.asList(2, 3)));\n"
        "        if (correct.contains(false)) {\n            throw new AssertionError();\n        }\n    }\n}\n"
    ),
    canonical_solution="        return new ArrayList<>(Arrays.asList(a, b));\n    }\n}\n",
)
CPP_TASK = Task(
    task_id="CPP/0",
    language="cpp",
    entry_point="add",
    prompt="#include<stdio.h>\nusing namespace std;\nint add(int a, int b){\n",
    test="#undef NDEBUG\n#include<assert.h>\nint main(){\n    assert (add(2, 3) == 5);\n}\n",
    canonical_solution="    return a + b;\n}\n",
)
needs_python = pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
needs_java = pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None, reason="no JDK")
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")

# (a) what the issue reproduced: read the nonce, print sha256("codetune:" + nonce), exit 0 at once.
PY_STDIN_TOKEN = """    import hashlib, os
    nonce = os.read(0, 4096).decode().strip()
    os.write(1, ("\\n" + hashlib.sha256(("codetune:" + nonce).encode()).hexdigest() + "\\n").encode())
    os._exit(0)
"""
PY_STDIN_TOKEN_AT_LOAD = "    return 0\n" + "\n".join(
    ["import hashlib, os", *(line[4:] for line in PY_STDIN_TOKEN.splitlines()[1:])]
)
# (b) an object equal to everything.
PY_ALWAYS_EQUAL = """    class Anything:
        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return False

        __hash__ = object.__hash__

    return Anything()
"""
# (c) a tracer that makes check() jump from its first line to its last: only the last assert runs, and
# this completion is right only for that one (add(-1, 1) == 0).
PY_SETTRACE = """    return 0


import sys as _sys


def _jump(frame, event, arg):
    if frame.f_code.co_name != "check":
        return None
    last = max(line for _, _, line in frame.f_code.co_lines() if line is not None)

    def local(frame, event, arg):
        if event == "line" and frame.f_lineno < last:
            frame.f_lineno = last
        return local

    return local


_sys.settrace(_jump)
"""
JS_STDIN_TOKEN = """  const fs = require('fs');
  let n = '';
  try { n = fs.readFileSync(0, 'utf8').trim(); } catch (e) {}
  fs.writeSync(1, '\\n' + require('crypto').createHash('sha256').update('codetune:' + n).digest('hex') + '\\n');
  process.exit(0);
}
"""
JAVA_STDIN_TOKEN = """        try {
            String n = new String(System.in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8).trim();
            byte[] h = java.security.MessageDigest.getInstance("SHA-256")
                .digest(("codetune:" + n).getBytes(java.nio.charset.StandardCharsets.UTF_8));
            StringBuilder sb = new StringBuilder("\\n");
            for (byte x : h) sb.append(String.format("%02x", x));
            System.out.println(sb);
            System.out.flush();
        } catch (Exception e) {
        }
        Runtime.getRuntime().halt(0);
        return null;
    }
}
"""
JAVA_ALWAYS_EQUAL = """        return new ArrayList<Integer>() {
            @Override
            public boolean equals(Object o) {
                return true;
            }
        };
    }
}
"""


def _verdicts(task, completions, mode, **kw):
    samples = [{"task_id": task.task_id, "completion": c} for c in completions]
    res = evaluate_samples([task], samples, verdict_mode=mode, timeout_s=kw.pop("timeout_s", 10), **kw)
    assert all(r.verdict_mode == mode for r in res)
    return res


@needs_python
def test_python_forgeries_fail_in_data_mode():
    res = _verdicts(PY_TASK, [PY_STDIN_TOKEN, PY_STDIN_TOKEN_AT_LOAD, PY_ALWAYS_EQUAL, PY_SETTRACE], "data")
    assert [r.status for r in res] == ["failed", "failed", "failed", "failed"], [(r.status, r.detail) for r in res]
    assert "exited 0" in res[0].detail or "no end-of-test token" in res[0].detail
    assert "expected 5, got <Anything object>" in res[2].detail
    assert "expected 5, got 0" in res[3].detail


@needs_python
def test_python_stdin_token_fails_in_assert_mode():
    res = _verdicts(PY_TASK, [PY_STDIN_TOKEN, PY_STDIN_TOKEN_AT_LOAD], "assert")
    assert [r.status for r in res] == ["failed", "failed"], [(r.status, r.detail) for r in res]
    assert all("no end-of-test token" in r.detail for r in res)


@needs_python
def test_python_in_process_tricks_are_assert_modes_documented_limit():
    # If these ever fail, assert mode got stronger: update programs' threat model, then this test.
    res = _verdicts(PY_TASK, [PY_ALWAYS_EQUAL, PY_SETTRACE], "assert")
    assert [r.status for r in res] == ["passed", "passed"]


@needs_python
def test_auto_mode_judges_humaneval_in_data_mode():
    task = load_tasks("humaneval")[0]
    completions = [PY_ALWAYS_EQUAL, PY_SETTRACE, PY_STDIN_TOKEN, task.canonical_solution]
    res = evaluate_samples([task], [{"task_id": task.task_id, "completion": c} for c in completions])  # auto
    assert [(r.verdict_mode, r.status) for r in res] == [("data", "failed")] * 3 + [("data", "passed")]


@needs_node
@pytest.mark.parametrize("mode", ["data", "assert"])
def test_js_stdin_token_fails(mode):
    (r,) = _verdicts(JS_TASK, [JS_STDIN_TOKEN], mode)
    assert r.status == "failed", r.detail


@needs_java
@pytest.mark.slow
def test_java_forgeries():
    data = _verdicts(
        JAVA_TASK, [JAVA_STDIN_TOKEN, JAVA_ALWAYS_EQUAL, JAVA_TASK.canonical_solution], "data", timeout_s=30
    )
    assert [r.status for r in data] == ["failed", "failed", "passed"], [(r.status, r.detail) for r in data]
    asserted = _verdicts(JAVA_TASK, [JAVA_STDIN_TOKEN, JAVA_ALWAYS_EQUAL], "assert", timeout_s=30)
    assert asserted[0].status == "failed", asserted[0].detail
    assert asserted[1].status == "passed"  # an overridden equals(): in process, out of assert mode's reach


@needs_gxx
def test_cpp_completion_reads_no_nonce_from_stdin():
    # A static constructor runs before main; by then the harness has already taken the nonce off stdin.
    grab = (
        "    return a + b;\n}\n#include <iostream>\n#include <string>\n"
        "static std::string grabbed = [] { std::string s; std::getline(std::cin, s); "
        'std::cout << "grabbed:[" << s << "]" << std::endl; return s; }();\n'
    )
    (r,) = _verdicts(CPP_TASK, [grab], "assert", timeout_s=30)
    assert r.status == "passed" and "grabbed:[]" in r.stdout, (r.status, r.detail, r.stdout)


@needs_python
def test_garbled_missing_or_extra_results_fail_with_a_one_line_detail():
    junk = (  # the second call's result is a garbled line
        "    import os\n    if a < 0:\n        open('ct_outputs.jsonl', 'a').write('not json\\n')\n"
        "        os._exit(0)\n    return a + b\n"
    )
    extra = (
        "    return a + b\nimport atexit, json\n"
        "atexit.register(lambda: open('ct_outputs.jsonl', 'a').write(json.dumps({'h': 'x', 'v': 1}) + '\\n'))\n"
    )
    early = "    import os\n    if a < 0:\n        os._exit(0)\n    return a + b\n"
    res = _verdicts(PY_TASK, [junk, extra, early], "data")
    assert [r.status for r in res] == ["failed", "failed", "failed"], [(r.status, r.detail) for r in res]
    assert res[0].detail == "call 2 of 2, add(-1, 1): an unreadable result"
    assert res[1].detail == "the program wrote 3 results for 2 calls"
    assert "after 1 of 2 calls" in res[2].detail or "no end-of-test token" in res[2].detail
    assert all("\n" not in r.detail for r in res)
