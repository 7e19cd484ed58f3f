"""C and C++: the compile level runs `gcc`/`g++ -fsyntax-only`; the parse level uses tree-sitter.

Levels:
    parse    tree-sitter's C / C++ grammar (in process, no compiler start-up per snippet). A grammar, not
             a preprocessor: it does not expand macros, so code that only parses after expansion
             (`FOREACH(x) { ... }`) can be flagged; use the compile level for the compiler's verdict.
    compile  the compiler's front end with `-fsyntax-only` (preprocessor, parser, name lookup, types),
             one process per snippet with up to `os.cpu_count()` at once: gcc has no long-lived mode.
             Each runs in the sandbox (`sandbox.run_sandboxed`, `COMPILE_LIMITS`): the snippet is untrusted
             input to the preprocessor, which would otherwise read any host file it names (`#include
             "/dev/zero"` grows without bound; `__has_include` probes paths) as root.
             Batching does not pay: snippets in one file would see each other, and one driver over a
             chunk of files (separate translation units) was slower, not faster, than one `gcc` per
             snippet on each core when measured (benchmarks/syntax_bench.py). C also gets
             `-Werror=` for the diagnostics gcc 14 already makes errors by default (implicit function
             declarations, implicit int, int/pointer conversions), so an undeclared function or
             `int x = "s";` is `invalid` whatever the gcc version.

Units: a C/C++ function is already a translation unit, so every `unit` checks the snippet as given
(headers it uses must be `#include`d in it, as the compiler would require).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from codetune.evaluation import sandbox
from codetune.evaluation.sandbox import Limits
from codetune.evaluation.syntax.base import Checker, SyntaxResult, clamp_line

C_FLAGS = [
    "-std=gnu17",
    "-Werror=implicit-function-declaration",
    "-Werror=implicit-int",
    "-Werror=int-conversion",
    "-Werror=incompatible-pointer-types",
]
CXX_FLAGS = ["-std=gnu++17"]
_ERROR = re.compile(r"^<stdin>:(\d+):(?:\d+:)? (?:fatal )?error: (.*)$", re.MULTILINE)
# One compiler run on one snippet: the preprocessor, parser and type checker of a HumanEval-sized function
# use tens of MB; the caps are the sandbox's, not gcc's (which has none).
COMPILE_LIMITS = Limits(
    wall_s=60.0, cpu_s=60.0, memory_mb=1024, total_memory_mb=1024, processes=16, output_bytes=64 * 1024, disk_mb=64
)


def compiler_command(language: str) -> list[str]:
    """The command the compile level runs, reading the snippet from stdin (also used by the benchmark)."""
    if language == "c":
        return ["gcc", "-fsyntax-only", *C_FLAGS, "-x", "c", "-"]
    return ["g++", "-fsyntax-only", *CXX_FLAGS, "-x", "c++", "-"]


class CFamilyChecker(Checker):
    language = "c"
    units = ("auto", "whole", "member", "body")
    timeout_s = 60.0
    canary: ClassVar[dict[str, tuple[str, str]]] = {
        "parse": ("int f(int a) { return a + 1; }\n", "int f(int a) { return a + 1 }\n"),
        "compile": ("int f(int a) { return a + 1; }\n", "int f(int a) { return b + 1; }\n"),
    }

    def __init__(self, level: str = "parse", unit: str = "auto") -> None:
        super().__init__(level, unit)
        self._parser = None
        self._tool: str | None = None

    def _start(self) -> str | None:
        if self.level == "parse":
            try:
                from tree_sitter import Language, Parser

                if self.language == "c":
                    import tree_sitter_c as grammar
                else:
                    import tree_sitter_cpp as grammar
            except ImportError as exc:
                pkg = "tree-sitter-c" if self.language == "c" else "tree-sitter-cpp"
                return f"{self.language}: tree-sitter grammar missing ({exc}); pip install tree-sitter {pkg}"
            self._parser = Parser(Language(grammar.language()))
            return None
        tool = "gcc" if self.language == "c" else "g++"
        self._tool = shutil.which(tool)
        if self._tool is None:
            return f"{self.language}: `{tool}` not found on PATH; install it, e.g.: apt-get install {tool}"
        return None

    def _check(self, code: str) -> SyntaxResult:
        if self.level == "parse":
            return self._parse(code)
        return self._compile(code)

    def _parse(self, code: str) -> SyntaxResult:
        tree = self._parser.parse(code.encode("utf-8", "replace"))
        if not tree.root_node.has_error:
            return SyntaxResult("valid", "parse", "", None)
        node = _first_error(tree.root_node)
        if node is None:
            return SyntaxResult("invalid", "parse", "syntax error", None)
        line = node.start_point[0] + 1
        if node.is_missing:
            message = f"syntax error: missing {node.type!r}"
        else:
            text = node.text.decode("utf-8", "replace").splitlines()
            message = f"syntax error near {text[0][:60]!r}" if text else "syntax error"
        return SyntaxResult("invalid", "parse", message, clamp_line(line, code))

    def _compile(self, code: str) -> SyntaxResult:
        argv = [self._tool, *compiler_command(self.language)[1:]]
        limits = dataclasses.replace(COMPILE_LIMITS, wall_s=self.timeout_s, cpu_s=self.timeout_s)
        try:
            # Plain ASCII messages whatever the user's locale.
            out = sandbox.run_sandboxed(
                argv,
                stdin=code.encode("utf-8", "replace"),
                limits=limits,
                env={"LC_ALL": "C", "LANG": "C"},
            )
        except sandbox.SandboxError as exc:
            return SyntaxResult("unavailable", "compile", f"{self.language}: compiler did not run ({exc})", None)
        if out.timed_out:
            return SyntaxResult(
                "unavailable",
                "compile",
                f"{self.language}: compiler timed out after {self.timeout_s:g} s",
                None,
            )
        if out.returncode == 0:
            return SyntaxResult("valid", "compile", "", None)
        if out.oom_kills or out.signal is not None:
            why = "its memory cap" if out.oom_kills else f"signal {out.signal}"
            return SyntaxResult(
                "unavailable",
                "compile",
                f"{self.language}: compiler stopped by {why} (limits: {_limits_text()})",
                None,
            )
        match = _ERROR.search(out.stderr)
        if match is None or "internal compiler error" in out.stderr:
            # A crash, a signal or running out of memory is not a verdict on the code.
            tail = out.stderr.strip().splitlines()[-1:] or [f"exit status {out.returncode}"]
            return SyntaxResult(
                "unavailable", "compile", f"{self.language}: compiler failed: {tail[0][:300]}", None
            )
        return SyntaxResult("invalid", "compile", match.group(2)[:600], clamp_line(int(match.group(1)), code))

    def check_many(self, snippets: list[str]) -> list[SyntaxResult]:
        self.open()
        if self.level == "parse" or self.unavailable_reason is not None or len(snippets) < 2:
            return [self.check(code) for code in snippets]
        # Each gcc is its own process: run one per core.
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            return list(pool.map(self._check, snippets))


class CppChecker(CFamilyChecker):
    language = "cpp"
    canary: ClassVar[dict[str, tuple[str, str]]] = {
        "parse": ("int f(int a) { return a + 1; }\n", "int f(int a) { return a + 1 }\n"),
        "compile": ("int f(int a) { return a + 1; }\n", 'int f(int a) { int* p = "s"; return a; }\n'),
    }


def _limits_text() -> str:
    return f"{COMPILE_LIMITS.total_memory_mb} MiB in all, {COMPILE_LIMITS.memory_mb} MiB per process"


def _first_error(node):
    """The first ERROR or MISSING node in document order."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n.is_error or n.is_missing:
            return n
        if n.has_error:
            stack.extend(reversed(n.children))
    return None
