"""Turn (task, completion) into assert-mode programs to run, and a run's outcome into a status.

Two verdict modes exist (the harness records per sample which one judged it). In *data mode*
(`datamode`, the default wherever `testcases.to_data` can turn a task's tests into calls) the program
gets only the inputs and trusted code outside the sandbox compares its results with expected values it
never sees, so none of the tricks below has anything to forge. This module builds *assert mode*
programs: the task's own test runs in the same process as the completion, for the tests that cannot be
turned into data (loops, random inputs, helper calls; C++ always).

How a pass is proven in assert mode (the threat model)
------------------------------------------------------
The completion runs in the same process as the test, so in principle it can do anything the test code
can. What we guarantee is narrower and checkable: a sample passes only if (1) every step exited 0 and
(2) stdout ends with `sha256("codetune:" + nonce)`, which the harness prints *after* the test code.
The nonce is fresh per run, is never in the program text or on disk where the program can open it, and
arrives on stdin, which trusted code reads *before any code of the completion runs* (a prologue ahead of
the prompt in Python and JavaScript; `CodetuneMain` before the test's classes are loaded in Java; a
`.preinit_array` function ahead of every static constructor in C++); stdin is /dev/null (or closed)
from then on and only the token is kept, for the epilogue. So these end as non-passes:

- exiting early with status 0 (`sys.exit(0)`, `os._exit(0)`, `process.exit(0)`, `System.exit(0)`,
  C++ `exit(0)`/`quick_exit(0)`, atexit/uncaught-exception hooks that exit 0): the epilogue never ran;
- reading stdin to compute the token itself and printing it before exiting 0 (issue 18's finding):
  stdin is empty by the time the completion runs;
- printing a fake success marker: it cannot know the nonce or the token;
- replacing `console.assert` (even by shadowing `console` locally): the harness rewrites the test's
  `console.assert(` to a strict assert under a per-run random name; Python's `assert` is a statement
  and its error is not looked up in builtins; C++'s `assert` is made live again right before the test
  (`#undef NDEBUG`, `<cassert>` re-included), and the C++ epilogue is a separate translation unit that
  the completion's macros cannot reach (see `cpp_program`);
- tampering with stdin, stdout, `hashlib`/`crypto`: the token comes out wrong or missing.

Still possible in assert mode (in-process tricks; data mode is the answer where it applies):
- defeating the test's comparisons: a result whose `__eq__` is always true (Python), an overridden
  `equals` (Java), patched builtins the test calls, a C++ `#define` of a name the test calls;
- changing how the test runs: `sys.settrace` jumping over its asserts, rebinding `check`;
- finding the token in-process and printing it early: it is in the prologue's closure (Python: the
  emitter's cell, reachable through `globals()`, `gc` or frames; JavaScript: a module-level constant
  whose per-run name the completion can read from the program file), in a local of `CodetuneMain.main`
  (Java: beyond reflection, not beyond reading /proc/self/mem), or in a static buffer (C++); reading
  the program's own source reveals the test and its expected values.
The sandbox bounds what any of them can do to the machine, not to the verdict.
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
from codetune.evaluation import sandbox
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
    keep_files: tuple[str, ...] = ()  # read back after the run (the results of a data-mode program)


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


def _tag(nonce: str) -> str:
    """A per-run name suffix derived from the nonce (it does not reveal the nonce)."""
    return hashlib.sha256(f"tag:{nonce}".encode()).hexdigest()[:12]


# Runs before the prompt and the completion: takes the nonce off stdin (stdin is /dev/null from then
# on) and keeps only its token, in the closure of the emitter the epilogue calls.
_PY_PROLOGUE = """def _ct_prologue():
    import hashlib, os, sys
    nonce = sys.stdin.read().strip()
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
    except OSError:
        os.close(0)
    token = hashlib.sha256(("codetune:" + nonce).encode()).hexdigest()

    def emit():
        sys.stdout.write("\\n" + token + "\\n")
        sys.stdout.flush()

    return emit


_ct_emit_TAG = _ct_prologue()
del _ct_prologue
"""


def build_python(task: Task, completion: str, nonce: str, limits: Limits, tools: dict) -> Program:
    test = task.test
    if not re.search(r"^check\(\s*\w+\s*\)\s*$", test, re.MULTILINE):
        test = f"{test}\n\ncheck({task.entry_point})\n"  # HumanEval's tests define check() but do not call it
    emit = f"_ct_emit_{_tag(nonce)}"
    src = f"{_PY_PROLOGUE.replace('_ct_emit_TAG', emit)}{task.prompt}{completion}\n\n{test}\n\n{emit}()\n"
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
    tag = _tag(nonce)  # names the completion cannot guess (unless it reads the program, see above)
    req, ok, emit = f"__ct_require_{tag}", f"__ct_assert_{tag}", f"__ct_emit_{tag}"
    # The nonce is read (and stdin closed) before any completion code runs; only its token is kept.
    prelude = (
        f"const {req} = require;\n"
        f"const {ok} = function (c) {{ if (!c) {{ throw new Error('codetune: assertion failed'); }} }};\n"
        f"const {emit} = (function () {{ const fs = {req}('fs'); const n = fs.readFileSync(0, 'utf8').trim();\n"
        f"  try {{ fs.closeSync(0); }} catch (e) {{}}\n"
        f"  const t = {req}('crypto').createHash('sha256').update('codetune:' + n).digest('hex');\n"
        f"  return function () {{ fs.writeSync(1, '\\n' + t + '\\n'); }}; }})();\n"
    )
    # Node's console.assert only prints; the test's asserts must throw, and the completion must not be
    # able to swap them out (it can shadow `console`, but it cannot name this function).
    test = re.sub(r"\bconsole\s*\.\s*assert\s*\(", f"{ok}(", task.test)
    epilogue = f"\n;{emit}();\n"
    src = f"{prelude}{task.prompt}{completion}\n\n{test}\n{epilogue}"
    return Program(
        {"program.js": src},
        [Step("run", node_argv(tools, limits), node_limits(limits), stdin=nonce.encode())],
        failed_pattern="codetune: assertion failed",
    )


def node_argv(tools: dict, limits: Limits, script: str = "program.js") -> list[str]:
    # V8 reserves address space it never touches: bound its heap instead of RLIMIT_AS.
    heap = max(64, limits.memory_mb // 2)
    return [tools["node"], f"--max-old-space-size={heap}", "--stack-size=2048", script]


def node_limits(limits: Limits) -> Limits:
    return _limits(limits, address_space_mb=None)


# The nonce is read and stdin closed before the test's Main (and so any completion class) is loaded;
# the token lives in a local variable of this frame, which no other code can reach by reflection.
_JAVA_RUNNER = """public class CodetuneMain {
    public static void main(String[] args) throws Exception {
        String nonce = new String(System.in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8).trim();
        System.in.close();
        byte[] h = java.security.MessageDigest.getInstance("SHA-256")
            .digest(("codetune:" + nonce).getBytes(java.nio.charset.StandardCharsets.UTF_8));
        StringBuilder sb = new StringBuilder("\\n");
        for (byte b : h) sb.append(String.format("%02x", b));
        Main.main(args);
        System.out.println(sb);
        System.out.flush();
    }
}
"""
# Fast start for short programs: class-data sharing, C1 only, one GC thread.
_JVM_FLAGS = ["-Xshare:auto", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData"]


def java_limits(limits: Limits) -> tuple[Limits, Limits]:
    """(javac's limits, the JVM's): no RLIMIT_AS (the JVM reserves far more than it uses), room for its
    threads and files, and at least a minute and 1 GiB for the compiler."""
    run = _limits(
        limits, address_space_mb=None, processes=max(limits.processes, 256), open_files=max(limits.open_files, 512)
    )
    compile_ = _limits(
        run, wall_s=max(limits.wall_s, 60.0), cpu_s=max(limits.cpu_s, 60.0), memory_mb=max(limits.memory_mb, 1024)
    )
    return compile_, run


def java_steps(
    tools: dict, limits: Limits, sources: list[str], main: str, stdin: bytes | None, **run_kw
) -> list[Step]:
    """Compile `sources` with javac, then run class `main` (heap: half the memory limit)."""
    compile_limits, run_limits = java_limits(limits)
    javac = [tools["javac"], *(f"-J{f}" for f in _JVM_FLAGS), "-J-Xmx512m", "-encoding", "UTF-8", "-nowarn"]
    javac += ["-d", ".", *sources]
    heap = max(64, limits.memory_mb // 2)
    java = [tools["java"], *_JVM_FLAGS, f"-Xmx{heap}m", "-ea", "-cp", ".", main]
    return [Step("compile", javac, compile_limits), Step("run", java, run_limits, stdin=stdin, **run_kw)]


def build_java(task: Task, completion: str, nonce: str, limits: Limits, tools: dict) -> Program:
    src = f"{task.prompt}{completion}\n\n{task.test}\n"
    return Program(
        {"Main.java": src, "CodetuneMain.java": _JAVA_RUNNER},
        java_steps(tools, limits, ["Main.java", "CodetuneMain.java"], "CodetuneMain", nonce.encode()),
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


def execute(program: Program) -> tuple[Step, SandboxResult, float]:
    """Run the program's steps in one working directory, stopping after a compile step that failed.

    Returns the last step run, its result, and the seconds spent in the sandbox over all steps.
    """
    total = 0.0
    with sandbox.shared_workdir() as work:
        files = program.files
        for step in program.steps:
            res = sandbox.run_sandboxed(
                step.argv,
                files=files,
                limits=step.limits,
                stdin=step.stdin,
                env=step.env,
                keep_files=step.keep_files,
                workdir=work,
                fork_server=step.fork_server,
            )
            files = {}  # written once; later steps see what earlier ones left (compiled classes)
            total += res.wall_s
            if step.kind == "compile" and (res.timed_out or res.returncode != 0):
                break
    return step, res, total


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
