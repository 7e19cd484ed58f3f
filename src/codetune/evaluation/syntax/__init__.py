"""Syntax validity that cannot lie: one checker per language, each using that language's real toolchain.

Every result names its level and has one of three statuses:

* `valid` — the toolchain accepted the snippet at that level;
* `invalid` — it rejected it (`message` is the first error, `line` its line in the snippet);
* `unavailable` — it could not be checked (toolchain missing: the message says what to install; helper
  crashed or hung; start-up canary failed). Never counted as valid.

Levels: `parse` (the grammar only) and `compile` (the compiler's front end, so undefined symbols and type
errors count where the language has them). Python and JavaScript have no static names or types; their
`compile` level adds only what CPython's compiler / V8's early errors check (see their modules).

| language   | parse                        | compile                                   |
|------------|------------------------------|-------------------------------------------|
| python     | `ast.parse` (in process)     | `compile()` (in process)                  |
| java       | `JavacTask.parse()` (1 JVM)  | `JavacTask.analyze()` (same JVM)          |
| javascript | V8 via one `node` (both levels are V8's full compile)                    |
| c / cpp    | tree-sitter (in process)     | `gcc` / `g++ -fsyntax-only` per snippet   |

Wrapping of snippets that are not whole units (`unit="auto"`) is documented per language module;
line numbers always refer to the snippet as given.

Example:
    >>> with open_checker("Java", "compile") as checker:
    ...     checker.check("int f() { return x; }").status
    'invalid'
"""

from __future__ import annotations

from codetune import languages
from codetune.errors import ConfigError
from codetune.evaluation.syntax.base import LEVELS, STATUSES, UNITS, Checker, SyntaxResult

__all__ = [
    "LEVELS",
    "STATUSES",
    "SUPPORTED_LANGUAGES",
    "UNITS",
    "Checker",
    "SyntaxResult",
    "check_snippets",
    "open_checker",
    "syntax_pass_rate",
]

SUPPORTED_LANGUAGES = languages.names()  # every language has a checker


def _checker_class(language: str) -> type[Checker]:
    return languages.load(languages.get(language).checker)


def open_checker(language: str, level: str = "parse", *, unit: str = "auto") -> Checker:
    """Open a checker for `language` at `level` (starts its helper and runs its canary).

    Use it as a context manager so the helper process is closed. A missing toolchain does not raise:
    every result is then `unavailable` with what to install.

    Raises:
        ConfigError: unknown language, level or unit. An unsupported language is an error, never a pass.
    """
    record = languages.lookup(language)
    if record is None:
        raise ConfigError(
            f"syntax checking does not support language {language!r}",
            f"use one of: {', '.join(SUPPORTED_LANGUAGES)}",
        )
    if level not in LEVELS:
        raise ConfigError(f"unknown syntax level {level!r}", f"use one of: {', '.join(LEVELS)}")
    lang = record.name
    cls = _checker_class(lang)
    if unit not in cls.units:
        raise ConfigError(f"unit {unit!r} is not supported for {lang}", f"use one of: {', '.join(cls.units)}")
    return cls(level, unit).open()


def check_snippets(
    language: str, snippets: list[str], level: str = "parse", *, unit: str = "auto"
) -> list[SyntaxResult]:
    """Check every snippet with one checker (opened, used, closed); results are in input order."""
    with open_checker(language, level, unit=unit) as checker:
        return checker.check_many(list(snippets))


def syntax_pass_rate(results: list[SyntaxResult]) -> float | None:
    """Share of snippets that are `valid`; None when none could be checked (toolchain missing).

    An `unavailable` result is never a pass: a language with no toolchain gets None (report it as
    unknown, not 100%), and a snippet that hung its checker counts against the rate, as a failure would.
    """
    if not results or all(r.status == "unavailable" for r in results):
        return None
    return sum(r.status == "valid" for r in results) / len(results)
