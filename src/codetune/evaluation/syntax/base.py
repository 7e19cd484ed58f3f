"""The result record, the checker interface and the canary every checker runs before it is trusted."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

STATUSES = ("valid", "invalid", "unavailable")
LEVELS = ("parse", "compile")
UNITS = ("auto", "whole", "member", "body")


@dataclass(frozen=True)
class SyntaxResult:
    """The verdict on one snippet.

    Attributes:
        status: `valid`, `invalid` (the toolchain rejected it) or `unavailable` (it could not be checked:
            toolchain missing or broken, helper crashed or timed out). Never counted as valid.
        level: `parse` (grammar only) or `compile` (the compiler's front end: names and types too, where
            the language has them).
        message: the compiler's first error for `invalid`; what to install or what went wrong for
            `unavailable`; empty for `valid`.
        line: 1-based line of the first error in the snippet as given (wrapping never shifts it), or None.
    """

    status: str
    level: str
    message: str = ""
    line: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class Checker:
    """One language at one level. Use as a context manager; `close()` ends any helper process.

    Subclasses set `language`, implement `_start()` (find the toolchain, start helpers; return None or the
    reason the language is unavailable) and `_check(code)`. `open()` runs the canary: one known-good and
    one known-bad snippet must come back right, or every result is `unavailable` with the reason.
    """

    language = ""
    # (known-good, known-bad) per level; the bad one must fail *at that level* (a type error for compile
    # where the language has types), so a checker that silently degrades to parse-only is caught.
    canary: ClassVar[dict[str, tuple[str, str]]] = {}

    def __init__(self, level: str = "parse", unit: str = "auto") -> None:
        self.level = level
        self.unit = unit
        self.unavailable_reason: str | None = None
        self._opened = False

    # -- lifecycle -------------------------------------------------------------------------------------
    def open(self) -> Checker:
        if self._opened:
            return self
        self._opened = True
        self.unavailable_reason = self._start()
        if self.unavailable_reason is None:
            self.unavailable_reason = self._run_canary()
        if self.unavailable_reason is not None:
            self._stop()
        return self

    def close(self) -> None:
        """End helper processes. A later `check` opens the checker again (and runs the canary again)."""
        self._stop()
        self._opened = False

    def __enter__(self) -> Checker:  # noqa: PYI034 (Self needs Python 3.11)
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> str | None:
        return None

    def _stop(self) -> None:
        pass

    def _run_canary(self) -> str | None:
        good, bad = self.canary[self.level]
        got_good, got_bad = self._check(good), self._check(bad)
        if got_good.status == "valid" and got_bad.status == "invalid":
            return None
        return (
            f"{self.language} checker failed its start-up canary at level `{self.level}` "
            f"(known-good -> {got_good.status} {got_good.message!r}; known-bad -> {got_bad.status} "
            f"{got_bad.message!r})"
        )

    # -- checking --------------------------------------------------------------------------------------
    def check(self, code: str) -> SyntaxResult:
        """Check one snippet; never raises for bad code."""
        self.open()
        if self.unavailable_reason is not None:
            return SyntaxResult("unavailable", self.level, self.unavailable_reason, None)
        return self._check(code)

    def check_many(self, snippets: list[str]) -> list[SyntaxResult]:
        """Check snippets in order; one result per snippet."""
        return [self.check(code) for code in snippets]

    def _check(self, code: str) -> SyntaxResult:
        raise NotImplementedError


def clamp_line(line: int | None, code: str) -> int | None:
    """Errors found in a wrapper's closing lines (an unclosed brace) are reported on the snippet's last line."""
    if line is None or line <= 0:
        return None
    return min(line, code.count("\n") + 1)
