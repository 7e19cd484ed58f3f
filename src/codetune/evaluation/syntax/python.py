"""Python: checked in this process, by CPython's own parser and compiler.

Levels:
    parse    `ast.parse` — the grammar.
    compile  `compile(..., "exec")` — the grammar plus the checks CPython makes when it builds bytecode:
             `return`/`yield` outside a function, `break`/`continue` outside a loop, `await` outside an
             async function, `nonlocal` without a binding, a name both global and assigned before, ...
Python has no static name or type checking: an undefined name or `1 + "a"` is *valid* at both levels
(it fails only when run). codetune adds no name checker of its own, so the two levels mean exactly what
CPython means by them.

Units (`unit=`):
    whole   the snippet as given (a module: a `def`, a class, statements).
    member  the snippet dedented by its common indentation (a method cut out of a class body).
    body    the snippet indented under `def _():` (a bare function body with `return`); line numbers are
            mapped back to the snippet.
    auto    whole; if that fails with an indentation error and every line shares an indentation, member.
"""

from __future__ import annotations

import ast
import textwrap
import warnings
from typing import ClassVar

from codetune.evaluation.syntax.base import Checker, SyntaxResult, clamp_line


class PythonChecker(Checker):
    language = "python"
    units = ("auto", "whole", "member", "body")
    canary: ClassVar[dict[str, tuple[str, str]]] = {
        "parse": ("def f(a):\n    return a + 1\n", "def f(a:\n    return a\n"),
        # `nonlocal` without an enclosing binding passes ast.parse and fails compile(): proves the level.
        "compile": ("def f(a):\n    return a + 1\n", "def f():\n    nonlocal x\n    x = 1\n"),
    }

    def _compile_text(self, text: str) -> None:
        with warnings.catch_warnings():
            # SyntaxWarnings (an invalid escape, `is` with a literal) are not errors; with warnings turned
            # into errors (pytest -W error) compile() would raise them as SyntaxError, so silence them.
            warnings.simplefilter("ignore")
            if self.level == "parse":
                ast.parse(text)
            else:
                compile(text, "<snippet>", "exec", dont_inherit=True)

    def _try(self, text: str, line_offset: int, code: str) -> SyntaxResult:
        try:
            self._compile_text(text)
        except SyntaxError as exc:  # IndentationError and TabError are SyntaxErrors
            line = exc.lineno - line_offset if exc.lineno else None
            return SyntaxResult("invalid", self.level, f"{type(exc).__name__}: {exc.msg}", clamp_line(line, code))
        except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
            # null bytes (ValueError), nesting too deep for the compiler: CPython refuses the code too.
            return SyntaxResult("invalid", self.level, f"{type(exc).__name__}: {exc}", None)
        return SyntaxResult("valid", self.level, "", None)

    def _check(self, code: str) -> SyntaxResult:
        if self.unit == "body":
            return self._try("def _():\n" + textwrap.indent(code, "    ") + "\n    pass\n", 1, code)
        if self.unit == "member":
            return self._try(textwrap.dedent(code), 0, code)
        result = self._try(code, 0, code)
        if result.status == "invalid" and self.unit == "auto" and "IndentationError" in result.message:
            dedented = textwrap.dedent(code)
            if dedented != code:
                return self._try(dedented, 0, code)
        return result
