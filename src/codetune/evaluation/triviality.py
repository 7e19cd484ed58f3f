"""Detect stub bodies: completions that parse (and may even score BLEU) but do no work.

A body is *trivial* when, after removing comments (and Python docstrings), every statement in it is
one of the following, for every top-level function in the code (a function that does work anywhere
makes the code non-trivial; nested functions are statements and are never trivial):

* nothing at all (empty body, only comments, only a docstring);
* a no-op: Python ``pass``, ``...``, a bare string; ``;`` in the brace languages;
* ``return`` with no value, or with an *empty value*:
    - Python: ``None 0 0.0 "" '' [] {} () False list() dict() set() tuple() str()``
    - Java: ``null 0 0L 0.0 0.0f 0.0d "" false``, ``new T[0]``, ``new T[]{}``, a no-argument ``new`` of
      a JDK collection or builder (``new ArrayList<>()``, ``new HashMap<>()``, ``new StringBuilder()``...),
      ``Collections.emptyList()``/``emptyMap()``/``emptySet()``, ``List.of()``/``Set.of()``/``Map.of()``,
      ``Optional.empty()``
    - JavaScript: ``null undefined 0 "" '' `` ``[] {} false``, ``new Array()``/``Map()``/``Set()``
    - C/C++: ``0 0.0 0.0f NULL nullptr false "" '\\0' {}``, ``std::T()`` / ``std::T{}`` (e.g. an empty vector)
* a "not implemented" exception: Python ``raise NotImplementedError`` (with or without a message)
  or ``raise NotImplemented``; Java ``throw new UnsupportedOperationException(...)``; and in Java,
  JavaScript and C++ any ``throw`` whose message says "not implemented", "unimplemented" or "todo".

``return true``/``return 1`` are *not* trivial: for some tasks they are the right answer, and this
check must not call a correct solution a stub. Code that does not parse is not trivial (it is
broken, which the syntax check reports).
"""

from __future__ import annotations

import functools
import re
import textwrap

from codetune import languages
from codetune.errors import ConfigError
from codetune.evaluation.codebleu import parse, remove_comments
from codetune.languages import TrivialityRules

SUPPORTED_LANGUAGES = languages.names(triviality=True, codebleu=True)  # the check parses with CodeBLEU's trees
_NOT_IMPLEMENTED_MESSAGE = re.compile(r"not\s*(yet\s*)?implemented|unimplemented|\btodo\b", re.IGNORECASE)


def _rules(language: str) -> tuple[str, TrivialityRules]:
    record = languages.lookup(language)
    if record is None or record.name not in SUPPORTED_LANGUAGES:
        raise ConfigError(
            f"triviality check does not support language {language!r}",
            hint="use one of: " + ", ".join(SUPPORTED_LANGUAGES),
        )
    return record.name, record.triviality


@functools.cache
def _empty_values(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _drop_unmatched_closing_braces(code: str) -> str:
    """A body cut from a larger file often ends with the braces closing its method and class."""
    code = code.rstrip()
    while code.count("}") > code.count("{") and code.endswith("}"):
        code = code[:-1].rstrip()
    return code


def _outermost_functions(node, kinds: set[str]) -> list:
    if node.type in kinds:
        return [node]
    found = []
    for child in node.children:
        found += _outermost_functions(child, kinds)
    return found


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _is_trivial_statement(node, rules: TrivialityRules) -> bool:
    kind = node.type
    text = node.text.decode("utf8", errors="replace")
    if kind in ("comment", "pass_statement", "empty_statement", "line_comment", "block_comment"):
        return True
    if kind == "expression_statement":
        named = [c for c in node.named_children if c.type != "comment"]
        if not named:  # `;`
            return True
        return rules.bare_value_noops and len(named) == 1 and named[0].type in ("ellipsis", "string")
    if kind == "return_statement":
        values = [c for c in node.named_children if c.type != "comment"]
        if not values:
            return True
        value = _squash(values[0].text.decode("utf8", errors="replace"))
        return _empty_values(rules.empty_values).fullmatch(value) is not None
    if kind == "raise_statement":  # python
        return re.match(r"raise\s+NotImplemented(Error)?\b", text) is not None
    if kind == "throw_statement":
        if rules.unsupported_operation and re.match(
            r"throw\s+new\s+(java\.lang\.)?UnsupportedOperationException\b", text
        ):
            return True
        return _NOT_IMPLEMENTED_MESSAGE.search(text) is not None
    return False


def _statements(body, rules: TrivialityRules) -> list:
    if rules.expression_bodies and body.type not in ("statement_block",):
        return [body]  # arrow function with an expression body: handled by the caller
    return [c for c in body.named_children if c.type != "comment"]


def _function_is_trivial(fn, rules: TrivialityRules) -> bool:
    body = fn.child_by_field_name("body")
    if body is None:  # a declaration without a body (abstract method, prototype)
        return True
    if rules.expression_bodies and body.type != "statement_block":
        value = _squash(body.text.decode("utf8", errors="replace"))
        return _empty_values(rules.empty_values).fullmatch(value) is not None
    return all(_is_trivial_statement(s, rules) for s in _statements(body, rules))


# Top-level nodes that may sit beside the functions of a whole file (so the input is not a bare body).
_DECLARATIONS = {
    "class_definition",
    "decorated_definition",
    "import_statement",
    "import_from_statement",
    "future_import_statement",
    "class_declaration",
    "interface_declaration",
    "import_declaration",
    "package_declaration",
    "preproc_include",
    "preproc_def",
    "preproc_function_def",
    "using_declaration",
    "namespace_definition",
    "template_declaration",
    "export_statement",
    "lexical_declaration",
    "variable_declaration",
    "declaration",
}


def _is_whole_file(root, kinds: frozenset[str]) -> bool:
    """True if the top level holds functions (and declarations), not the statements of a body."""
    top = [c for c in root.named_children if c.type != "comment"]
    if root.has_error or not top:
        return False
    for node in top:
        if node.type in kinds:
            continue
        # `const f = (x) => {...}` (HumanEval-X JavaScript) or a class: fine if it holds a function.
        if node.type in _DECLARATIONS and (
            node.type
            in (
                "import_statement",
                "import_from_statement",
                "import_declaration",
                "package_declaration",
                "preproc_include",
                "future_import_statement",
            )
            or _outermost_functions(node, kinds)
        ):
            continue
        return False
    return bool(_outermost_functions(root, kinds))


def is_trivial_body(code_or_body: str, language: str) -> bool:
    """True if the code is a stub (see the module docstring for the exact list).

    The input may be a whole file or function (every top-level function is checked) or a bare body
    as generated after a prompt (possibly indented, possibly ending with the braces that close the
    method and class).

    Args:
        code_or_body: generated code.
        language: one of ``python``, ``java``, ``javascript``, ``c``, ``cpp``.

    Returns:
        True for a stub, False for code that does something or does not parse.

    Raises:
        ConfigError: unsupported language.
    """
    language, rules = _rules(language)
    if rules.dedent:
        code = remove_comments(textwrap.dedent(code_or_body).strip("\n"), language)
    else:
        code = _drop_unmatched_closing_braces(remove_comments(code_or_body, language))
    if not code.strip():
        return True
    tree = parse(code, language)
    if _is_whole_file(tree.root_node, rules.functions):
        functions = _outermost_functions(tree.root_node, rules.functions)
        return all(_function_is_trivial(fn, rules) for fn in functions)
    if rules.stub_wrapper is None:  # a bare body parses as top-level statements
        statements = [s for s in tree.root_node.named_children if s.type != "comment"]
        return not tree.root_node.has_error and all(_is_trivial_statement(s, rules) for s in statements)
    prefix, suffix = rules.stub_wrapper
    tree = parse(prefix + code + suffix, language)
    if tree.root_node.has_error:
        return False
    wrapper = _outermost_functions(tree.root_node, rules.functions)[0]
    return _function_is_trivial(wrapper, rules)
