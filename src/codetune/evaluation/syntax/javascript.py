"""JavaScript: compiled (never run) by V8 inside one long-lived `node` process.

Levels: JavaScript has no static names or types, so both levels are the same check: V8's full compile
of the source, which reports every *early error* the language defines (bad grammar, a `let` declared
twice, `break` outside a loop, an invalid regular expression, `await` where it is not allowed).
An undefined name or `1 - {}` is valid at both levels.

Units (`unit=`), tried in order until one compiles (helper: syntax_helper.js):
    whole   script (`vm.Script`), then module (`vm.SourceTextModule`: `import`/`export`, top-level await).
    body    a function body (`vm.compileFunction`: a bare `return` is fine), as CommonJS files are.
    member  a class member: `class Main { <snippet>\\n}` with the prefix on the snippet's first line.
    auto    script, module, body, member.
If no reading compiles, the error of the reading that got furthest (latest line) is reported; ties go
to the earlier reading in that order. Line numbers are always the snippet's own.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from typing import ClassVar

from codetune.evaluation.sandbox import Limits
from codetune.evaluation.syntax.base import Checker, SyntaxResult, clamp_line
from codetune.evaluation.syntax.helper_process import HelperFailure, HelperProcess

INSTALL_HINT = "install Node.js 18+ (`node` on PATH), e.g.: apt-get install nodejs"
# --expose-internals only to read the line of a module's SyntaxError (see syntax_helper.js).
NODE_FLAGS = ["--experimental-vm-modules", "--expose-internals", "--no-warnings", "--stack-size=4000"]
# The helper's sandbox (see `helper_process`): V8 reserves address space it never touches, so no RLIMIT_AS;
# the whole process within 2 GiB; a CPU limit it never reaches in a run.
HELPER_LIMITS = Limits(
    wall_s=86400,
    cpu_s=86400,
    memory_mb=4096,
    address_space_mb=None,
    open_files=256,
    total_memory_mb=2048,
    disk_mb=64,
)
_SCRIPT = ".codetune/syntax_helper.js"  # where the helper script is put in its sandbox


class JavaScriptChecker(Checker):
    language = "javascript"
    units = ("auto", "whole", "body", "member")
    timeout_s = 10.0
    canary: ClassVar[dict[str, tuple[str, str]]] = {
        "parse": ("function f(a) { return a + 1; }", "function f(a { return a; }"),
        "compile": ("function f(a) { return a + 1; }", "let a = 1;\nlet a = 2;"),
    }

    def __init__(self, level: str = "parse", unit: str = "auto") -> None:
        super().__init__(level, unit)
        self.helper: HelperProcess | None = None

    def _start(self) -> str | None:
        node = shutil.which("node")
        if node is None:
            return f"javascript: `node` not found on PATH; {INSTALL_HINT}"
        script = resources.files("codetune.evaluation.syntax").joinpath("syntax_helper.js")
        self.helper = HelperProcess(
            [node, *NODE_FLAGS, _SCRIPT],
            timeout_s=self.timeout_s,
            limits=HELPER_LIMITS,
            files={_SCRIPT: script.read_text()},
        )
        try:
            banner = json.loads(self.helper.start())
        except (HelperFailure, OSError, ValueError) as exc:
            return f"javascript: the node helper did not start ({exc}); {INSTALL_HINT}"
        if banner.get("status") != "ready":
            return f"javascript: {banner.get('message')}; {INSTALL_HINT}"
        return None

    def _stop(self) -> None:
        if self.helper is not None:
            self.helper.stop()

    def _check(self, code: str) -> SyntaxResult:
        try:
            reply = json.loads(self.helper.request(json.dumps({"code": code, "unit": self.unit})))
        except (HelperFailure, OSError) as exc:
            return SyntaxResult("unavailable", self.level, f"javascript: {exc}", None)
        except ValueError as exc:
            return SyntaxResult("unavailable", self.level, f"javascript: unreadable helper reply ({exc})", None)
        if reply["status"] == "valid":
            return SyntaxResult("valid", self.level, "", None)
        if reply["status"] == "invalid":
            return SyntaxResult("invalid", self.level, reply["message"], clamp_line(reply["line"], code))
        return SyntaxResult("unavailable", self.level, f"javascript: {reply['message']}", None)
