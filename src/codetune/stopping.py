"""Where a generated function ends, per language. Pure functions on text; generation calls them.

`truncate(language, prompt, completion)` returns the completion cut at the end of the function that
`prompt` opened, or unchanged (up to the token cap) when the end was not reached.
"""

from __future__ import annotations

from codetune.errors import ConfigError


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _python_def_indent(prompt: str) -> int:
    """Indentation of the last `def` line in the prompt (the function being completed)."""
    for line in reversed(prompt.splitlines()):
        s = line.lstrip()
        if s.startswith(("def ", "async def ")):
            return _indent_of(line)
    return 0


def truncate_python(prompt: str, completion: str) -> str:
    """Cut at the first non-blank line indented at or left of the prompt's `def`.

    The completion continues the prompt's last line, so its first line may be a partial line
    (when the prompt does not end in a newline); that fragment is never a stop.
    """
    def_indent = _python_def_indent(prompt)
    lines = completion.split("\n")
    start = 0 if prompt.endswith("\n") or prompt == "" else 1
    offset = sum(len(x) + 1 for x in lines[:start])
    for line in lines[start:]:
        if line.strip() and _indent_of(line) <= def_indent:
            return completion[:offset].rstrip() + "\n"
        offset += len(line) + 1
    return completion


_RULES = {"python": truncate_python}


def register(language: str, rule) -> None:
    """Add a stop rule for a language (used by modules that define brace-language rules)."""
    _RULES[language] = rule


def truncate(language: str, prompt: str, completion: str) -> str:
    """Cut `completion` at the end of the function `prompt` opened, by the language's rule."""
    try:
        rule = _RULES[language]
    except KeyError:
        raise ConfigError(
            f"no stop rule for language '{language}'", f"use one of: {', '.join(sorted(_RULES))}"
        ) from None
    return rule(prompt, completion)


def is_complete(language: str, prompt: str, completion: str) -> bool:
    """True when the completion already contains the end of the function (generation may stop)."""
    return truncate(language, prompt, completion) != completion
