"""Where a generated function ends, per language. Pure functions on text; generation calls them.

`truncate(language, prompt, completion)` returns the completion cut at the end of the function that
`prompt` opened, or unchanged (up to the token cap) when the end was not reached.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from codetune import languages
from codetune.errors import ConfigError
from codetune.languages import StopRule


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


# --- Brace languages -------------------------------------------------------------------------------
# A small lexer finds the braces that are code: those in comments, string/char literals, Java text
# blocks, C++ raw strings, JavaScript template literals (but not their `${...}` code) and regex literals
# do not count; which of these literals a language has is its record's `StopRule` (codetune.languages).
# It is a heuristic tokenizer, not a parser: it must be fast, and right on code that compiles; on broken
# code it may stop early or late, which the syntax checker then reports.

BRACE_LANGUAGES = tuple(n for n in languages.names() if languages.get(n).stop.kind == "braces")
_CODE_SPECIAL = re.compile(r"[{}\"'/]")
_JS_CODE_SPECIAL = re.compile(r"[{}\"'/`]")  # backticks open template literals
_TEMPLATE_SPECIAL = re.compile(r"\\.|`|\$\{", re.DOTALL)
_RAW_PREFIX = re.compile(r"(?:u8|u|U|L)?R$")
_NUMBER_TAIL = re.compile(r"[0-9A-Za-z_.']*$")
# After these characters or keywords a `/` starts a regex literal; after a name, number, `)` or `]` it divides.
_REGEX_AFTER_CHARS = set("(,=:[!&|?{};+-*%<>~^")
_REGEX_AFTER_WORDS = {
    "return",
    "typeof",
    "instanceof",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "case",
    "do",
    "else",
    "yield",
    "await",
}
_WORD_TAIL = re.compile(r"[A-Za-z_$][\w$]*$")


def _skip_quoted(code: str, i: int, quote: str) -> int:
    """Index after the literal opened at `i`; a newline ends an unterminated one (as compilers do)."""
    j = i + 1
    n = len(code)
    while j < n:
        c = code[j]
        if c == "\\":
            j += 2
            continue
        if c == quote:
            return j + 1
        if c == "\n":
            return j
        j += 1
    return n


def _skip_past(code: str, i: int, end: str) -> int:
    j = code.find(end, i)
    return len(code) if j < 0 else j + len(end)


def _regex_allowed(code: str, i: int) -> bool:
    before = code[max(0, i - 200) : i].rstrip()
    if not before:
        return True
    if before[-1] in _REGEX_AFTER_CHARS:
        return True
    word = _WORD_TAIL.search(before[-12:])
    return word is not None and word.group() in _REGEX_AFTER_WORDS


def _skip_regex(code: str, i: int) -> int | None:
    """Index after the regex literal at `i`, or None when none closes on this line (then `/` divides)."""
    j, n, in_class = i + 1, len(code), False
    while j < n:
        c = code[j]
        if c == "\\":
            j += 2
            continue
        if c == "\n":
            return None
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif c == "/" and not in_class:
            return j + 1
        j += 1
    return None


def _brace_events(code: str, rule: StopRule) -> Iterator[tuple[int, int]]:
    """Yield `(index, +1 | -1)` for each `{` / `}` of `code` that is code (see the note above)."""
    special = _JS_CODE_SPECIAL if rule.template_literals else _CODE_SPECIAL
    n = len(code)
    templates: list[int] = []  # per open `${`: braces opened inside it and not yet closed
    i = 0
    while i < n:
        m = special.search(code, i)
        if m is None:
            return
        i = m.start()
        c = code[i]
        if c == "{":
            if templates:
                templates[-1] += 1
            yield i, 1
            i += 1
        elif c == "}":
            if templates and templates[-1] == 0:
                templates.pop()
                i = _skip_template(code, i + 1, templates)
                continue
            if templates:
                templates[-1] -= 1
            yield i, -1
            i += 1
        elif c == "/":
            nxt = code[i + 1 : i + 2]
            if nxt == "/":
                i = _skip_past(code, i + 2, "\n")
            elif nxt == "*":
                i = _skip_past(code, i + 2, "*/")
            elif rule.regex_literals and _regex_allowed(code, i):
                end = _skip_regex(code, i)
                i = i + 1 if end is None else end
            else:
                i += 1
        elif c == "`":
            i = _skip_template(code, i + 1, templates)
        elif c == '"':
            if rule.text_blocks and code.startswith('"""', i):
                i = _skip_text_block(code, i + 3)
            elif rule.raw_strings and _RAW_PREFIX.search(code, max(0, i - 3), i):
                i = _skip_raw_string(code, i)
            else:
                i = _skip_quoted(code, i, '"')
        else:  # "'"
            # C++14 digit separator (1'000'000): the quote sits inside a number literal.
            if rule.digit_separators and _NUMBER_TAIL.search(code, max(0, i - 40), i).group()[:1].isdigit():
                i += 1
            else:
                i = _skip_quoted(code, i, "'")


def _skip_template(code: str, i: int, templates: list[int]) -> int:
    """Scan template-literal text from `i`; return where code resumes (after the closing backtick or a `${`)."""
    while True:
        m = _TEMPLATE_SPECIAL.search(code, i)
        if m is None:
            return len(code)
        if m.group() == "`":
            return m.end()
        if m.group() == "${":
            templates.append(0)
            return m.end()
        i = m.end()  # an escape


def _skip_text_block(code: str, i: int) -> int:
    """Index after a Java text block whose opening `\"\"\"` ends before `i`."""
    while True:
        j = code.find('"""', i)
        if j < 0:
            return len(code)
        k = j
        while k > i and code[k - 1] == "\\":
            k -= 1
        if (j - k) % 2 == 0:
            return j + 3
        i = j + 1


def _skip_raw_string(code: str, i: int) -> int:
    """Index after a C++ raw string `R"delim( ... )delim"` whose quote is at `i`."""
    paren = code.find("(", i + 1, i + 18)
    if paren < 0:
        return _skip_quoted(code, i, '"')
    return _skip_past(code, paren + 1, ")" + code[i + 1 : paren] + '"')


def _stop_rule(language: str) -> StopRule:
    lang = languages.lookup(language)
    if lang is None:
        hint = f"use one of: {', '.join(sorted(languages.names()))}"
        raise ConfigError(f"no stop rule for language '{language}'", hint)
    return lang.stop


def find_brace_end(language: str, prompt: str, completion: str) -> int | None:
    """Index in `completion` just after the `}` that closes the body the prompt opened, or None.

    The body is the innermost brace still open at the end of the prompt (e.g. the method inside a class
    in a HumanEval-X Java prompt). A prompt with no open brace (a bare signature) takes the completion's
    first `{` as the body.
    """
    rule = _stop_rule(language)
    code = prompt + completion
    start = len(prompt)
    depth = 0
    outer = None  # the depth at which the function body is closed
    for i, delta in _brace_events(code, rule):
        if outer is None and i >= start:
            outer = max(depth - 1, 0)
        if delta > 0:
            depth += 1
        elif depth > 0:
            depth -= 1
            if outer is not None and depth == outer:
                return i - start + 1
    return None


def truncate_braces(language: str, prompt: str, completion: str) -> str:
    """Cut right after the `}` that closes the function body the prompt opened (unchanged if not reached)."""
    end = find_brace_end(language, prompt, completion)
    return completion if end is None else completion[:end]


def truncate(language: str, prompt: str, completion: str) -> str:
    """Cut `completion` at the end of the function `prompt` opened, by the language's rule."""
    if _stop_rule(language).kind == "indent":
        return truncate_python(prompt, completion)
    return truncate_braces(language, prompt, completion)


def is_complete(language: str, prompt: str, completion: str) -> bool:
    """True when the completion already contains the end of the function (generation may stop)."""
    if _stop_rule(language).kind == "braces":
        # A completion that ends exactly on the closing brace is complete though truncation keeps it whole.
        return find_brace_end(language, prompt, completion) is not None
    return truncate(language, prompt, completion) != completion


def closing_suffix(language: str, prompt: str, completion: str) -> str:
    """The braces that `prompt + completion` leaves open, as lines to append (`"\\n}"` per brace).

    A completion cut at the end of its function closes only the function: a HumanEval-X Java prompt
    also opened `class Solution {`, which its canonical solution closes after the method. Indentation
    languages need nothing (returns "").
    """
    rule = _stop_rule(language)
    if rule.kind != "braces":
        return ""
    depth = 0
    for _, delta in _brace_events(prompt + completion, rule):
        depth = max(depth + delta, 0)
    return "\n}" * depth
