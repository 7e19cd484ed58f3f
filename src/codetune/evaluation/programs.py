"""Turn (task, completion) into programs to run, and a run's outcome into a status.

How a pass is proven (the threat model)
---------------------------------------
The completion runs in the same process as the test, so in principle it can do anything the test code
can. What we guarantee is narrower and checkable: a sample passes only if (1) every step exited 0 and
(2) stdout ends with `sha256("codetune:" + nonce)`, which the harness appends *after* the test code.
The nonce is fresh per run, is never in the program text or on disk where the program can open it, and
arrives on stdin, which the epilogue reads only after the test returned. So these end as non-passes:

- exiting early with status 0 (`sys.exit(0)`, `os._exit(0)`, `process.exit(0)`, `System.exit(0)`,
  C++ `exit(0)`/`quick_exit(0)`, atexit/uncaught-exception hooks that exit 0): the epilogue never ran;
- printing a fake success marker: it cannot know the nonce or the token;
- replacing `console.assert` (even by shadowing `console` locally): the harness rewrites the test's
  `console.assert(` to a strict assert under a per-run random name the completion cannot know;
  Python's `assert` is a statement and its error is not looked up in builtins; C++'s `assert` is made
  live again right before the test (`#undef NDEBUG`, `<cassert>` re-included), and the C++ epilogue is
  a separate translation unit that the completion's macros cannot reach (see `cpp_program`);
- tampering with stdin, stdout, `hashlib`/`crypto`: the token comes out wrong or missing.

Not covered: a completion written *against this harness* (read stdin itself, hash it the same way,
print it, exit 0), or one that defeats the test's comparisons in-process (e.g. returns an object whose
`__eq__` is always true, patches builtins the test calls, or in C++ `#define`s a name the test calls).
Running the test in a separate process from the completion would close those, at the cost of
serialising every call; the sandbox still bounds what any of them can do to the machine.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import signal
import stat
import sys
from dataclasses import dataclass, field

from codetune import languages
from codetune.evaluation.benchmarks import Task
from codetune.evaluation.sandbox import Limits, SandboxResult

STATUSES = ("passed", "failed", "runtime_error", "timeout", "compile_error", "unavailable")


def token_for(nonce: str) -> str:
    """What the epilogue prints when the test ran to its end."""
    return hashlib.sha256(f"codetune:{nonce}".encode()).hexdigest()


@dataclass
class Step:
    """One sandboxed command of a sample's evaluation (compile, then run)."""

    kind: str  # "compile" or "run"
    argv: list[str]
    limits: Limits
    stdin: bytes | None = None
    env: dict[str, str] = field(default_factory=dict)
    fork_server: bool = False  # Python: fork from a warm interpreter (see sandbox.run_sandboxed)


@dataclass
class Program:
    files: dict[str, str]
    steps: list[Step]
    failed_pattern: str  # in stderr: the test's assertion failed (vs. any other error)
    precheck_error: str | None = None  # found before running (Python syntax), becomes compile_error
    compile_error_line: str | None = None  # regex: its first match in a failed compile's stderr is the detail


def _world_reachable(path: str) -> bool:
    """True when a user other than the owner can execute `path` (every parent dir traversable)."""
    path = os.path.realpath(path)
    try:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        d = os.path.dirname(path)
        while True:
            if not os.stat(d).st_mode & stat.S_IXOTH:
                return False
            if d == "/":
                return True
            d = os.path.dirname(d)
    except OSError:
        return False


@functools.cache
def python_interpreter() -> str | None:
    """A Python the sandbox user can execute: this one when reachable, else the system's python3."""
    cands = [
        sys.executable,
        getattr(sys, "_base_executable", ""),
        shutil.which("python3", path="/usr/bin:/bin"),
        shutil.which("python3"),
    ]
    for c in cands:
        if c and _world_reachable(c):
            return os.path.realpath(c)
    return None if os.geteuid() == 0 else sys.executable


def _executable(name: str) -> str | None:
    # Python samples run under an interpreter the sandbox user can execute, not whatever is first on PATH.
    return python_interpreter() if name == "python" else shutil.which(name)


@functools.cache
def toolchain(language: str) -> dict[str, str] | None:
    """Executables a language needs, or None when one is missing (its samples are `unavailable`)."""
    lang = languages.lookup(language)
    if lang is None or lang.execution is None:
        return None
    found = {n: _executable(n) for n in lang.execution.executables}
    return None if None in found.values() else found  # type: ignore[return-value]


def _limits(base: Limits, **kw) -> Limits:
    d = {f: getattr(base, f) for f in Limits.__dataclass_fields__}
    d.update(kw)
    return Limits(**d)


_PY_EPILOGUE = """

import hashlib as _ct_hashlib, sys as _ct_sys
_ct_nonce = _ct_sys.stdin.read().strip()
_ct_sys.stdout.write("\\n" + _ct_hashlib.sha256(("codetune:" + _ct_nonce).encode()).hexdigest() + "\\n")
_ct_sys.stdout.flush()
"""


def build_python(task: Task, completion: str, nonce: str, limits: Limits, tools: dict) -> Program:
    test = task.test
    if not re.search(r"^check\(\s*\w+\s*\)\s*$", test, re.MULTILINE):
        test = f"{test}\n\ncheck({task.entry_point})\n"  # HumanEval's tests define check() but do not call it
    src = f"{task.prompt}{completion}\n\n{test}\n{_PY_EPILOGUE}"
    err = None
    try:
        compile(src, "program.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:  # ValueError: NUL bytes
        err = f"{type(exc).__name__}: {exc}"
    except (RecursionError, MemoryError) as exc:
        err = f"{type(exc).__name__} while compiling"
    argv = [tools["python"], "-I", "-S", "-B", "program.py"]  # run by the fork server with these flags
    return Program(
        {"program.py": src},
        [Step("run", argv, limits, stdin=nonce.encode(), fork_server=True)],
        failed_pattern="AssertionError",
        precheck_error=err,
    )


def build_javascript(task: Task, completion: str, nonce: str, limits: Limits, tools: dict) -> Program:
    tag = hashlib.sha256(f"tag:{nonce}".encode()).hexdigest()[:12]  # unguessable names, per run
    req, ok = f"__ct_require_{tag}", f"__ct_assert_{tag}"
    prelude = (
        f"const {req} = require;\n"
        f"const {ok} = function (c) {{ if (!c) {{ throw new Error('codetune: assertion failed'); }} }};\n"
    )
    # Node's console.assert only prints; the test's asserts must throw, and the completion must not be
    # able to swap them out (it can shadow `console`, but it cannot name this function).
    test = re.sub(r"\bconsole\s*\.\s*assert\s*\(", f"{ok}(", task.test)
    epilogue = (
        f"\n;(function () {{ const fs = {req}('fs'); const n = fs.readFileSync(0, 'utf8').trim();\n"
        f"  fs.writeSync(1, '\\n' + {req}('crypto').createHash('sha256').update('codetune:' + n)"
        f".digest('hex') + '\\n'); }})();\n"
    )
    src = f"{prelude}{task.prompt}{completion}\n\n{test}\n{epilogue}"
    # V8 reserves address space it never touches: bound its heap instead of RLIMIT_AS.
    heap = max(64, limits.memory_mb // 2)
    argv = [tools["node"], f"--max-old-space-size={heap}", "--stack-size=2048", "program.js"]
    return Program(
        {"program.js": src},
        [Step("run", argv, _limits(limits, address_space_mb=None), stdin=nonce.encode())],
        failed_pattern="codetune: assertion failed",
    )


_JAVA_RUNNER = """public class CodetuneMain {
    public static void main(String[] args) throws Exception {
        Main.main(args);
        String nonce = new String(System.in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8).trim();
        byte[] h = java.security.MessageDigest.getInstance("SHA-256")
            .digest(("codetune:" + nonce).getBytes(java.nio.charset.StandardCharsets.UTF_8));
        StringBuilder sb = new StringBuilder("\\n");
        for (byte b : h) sb.append(String.format("%02x", b));
        System.out.println(sb);
        System.out.flush();
    }
}
"""
# Fast start for short programs: class-data sharing, C1 only, one GC thread.
_JVM_FLAGS = ["-Xshare:auto", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData"]


def build_java(task: Task, completion: str, nonce: str, limits: Limits, tools: dict) -> Program:
    src = f"{task.prompt}{completion}\n\n{task.test}\n"
    heap = max(64, limits.memory_mb // 2)
    jlimits = _limits(
        limits, address_space_mb=None, processes=max(limits.processes, 256), open_files=max(limits.open_files, 512)
    )
    compile_limits = _limits(
        jlimits,
        wall_s=max(limits.wall_s, 60.0),
        cpu_s=max(limits.cpu_s, 60.0),
        memory_mb=max(limits.memory_mb, 1024),
    )
    javac = [
        tools["javac"],
        *(f"-J{f}" for f in _JVM_FLAGS),
        "-J-Xmx512m",
        "-encoding",
        "UTF-8",
        "-nowarn",
        "-d",
        ".",
        "Main.java",
        "CodetuneMain.java",
    ]
    java = [tools["java"], *_JVM_FLAGS, f"-Xmx{heap}m", "-ea", "-cp", ".", "CodetuneMain"]
    return Program(
        {"Main.java": src, "CodetuneMain.java": _JAVA_RUNNER},
        [Step("compile", javac, compile_limits), Step("run", java, jlimits, stdin=nonce.encode())],
        failed_pattern="java.lang.AssertionError",
    )


def supported(language: str) -> bool:
    """True when samples of `language` can be executed (given its toolchain)."""
    lang = languages.lookup(language)
    return lang is not None and lang.execution is not None


def build_program(task: Task, completion: str, nonce: str, limits: Limits) -> Program | None:
    """The files and commands that evaluate one sample; None when the language's toolchain is missing."""
    tools = toolchain(task.language)
    if tools is None:
        return None
    builder = languages.load(languages.get(task.language).execution.builder)
    return builder(task, completion, nonce, limits, tools)


def classify(program: Program, step: Step, res: SandboxResult, nonce: str) -> tuple[str, str]:
    """Status and a one-line reason for the step that ended the sample (or the last, for a pass)."""
    if res.timed_out:
        return "timeout", f"killed after the wall-clock limit of {step.limits.wall_s:g} s"
    if step.kind == "compile":
        if res.returncode != 0:
            named = program.compile_error_line and re.search(program.compile_error_line, res.stderr, re.MULTILINE)
            if named:
                return "compile_error", named.group(0).strip()[:300]
            return "compile_error", _last_line(res.stderr) or f"compiler exited {res.returncode}"
        return "passed", ""
    sig = res.signal
    if sig == signal.SIGABRT and program.failed_pattern in res.stderr:  # C/C++ `assert` aborts
        return "failed", _last_line(res.stderr) or "assertion failed"
    if sig is not None:
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if name == "SIGXCPU":  # the CPU-time limit is the same budget as the wall clock, spent busy
            return "timeout", f"terminated by SIGXCPU (CPU time limit of {step.limits.cpu_s:g} s)"
        why = {
            "SIGKILL": "killed: CPU hard limit or out of memory",
            "SIGXFSZ": "file size limit",
            "SIGSEGV": "crashed",
        }.get(name, "killed")
        return "runtime_error", f"terminated by {name} ({why})"
    if res.returncode != 0:
        if program.failed_pattern in res.stderr:
            return "failed", _last_line(res.stderr) or "assertion failed"
        if step.argv and "node" in os.path.basename(step.argv[0]) and _is_js_syntax_error(res.stderr):
            return "compile_error", _last_line(res.stderr)
        return "runtime_error", _last_line(res.stderr) or f"exited with status {res.returncode}"
    lines = [x for x in res.stdout_tail.splitlines() if x.strip()]
    if lines and lines[-1].strip() == token_for(nonce):
        return "passed", ""
    return "failed", "exited 0 before the test ran to its end (no end-of-test token)"


def _is_js_syntax_error(stderr: str) -> bool:
    # A parse error is reported before anything runs: no stack frame points into the program
    # ("program.js:LINE:COL"); a SyntaxError thrown at run time (JSON.parse) has one.
    return bool(re.search(r"^SyntaxError:", stderr, re.MULTILINE)) and not re.search(
        r"program\.js:\d+:\d+", stderr
    )


_ERROR_LINE = re.compile(r"^(?:Exception in thread .*|[\w.$]*(?:Error|Exception|Exit)\b.*)$")


def _last_line(text: str) -> str:
    """The line that names the error: the last `XxxError: ...` line (Python's traceback ends with it,
    node's and Java's come before their stack frames), else the last line."""
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    lines = [x for x in lines if not x.startswith("Node.js v")]
    named = [x for x in lines if _ERROR_LINE.match(x)]
    return (named or lines or [""])[-1][:300]


def strip_token(stdout: str, nonce: str) -> str:
    """Stdout as the program printed it, without the harness's end-of-test token."""
    tok = token_for(nonce)
    return stdout.replace("\n" + tok + "\n", "").replace(tok, "")
