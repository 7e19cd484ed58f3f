"""Complexity fields measured with lizard, checked against hand counts."""

from __future__ import annotations

import pytest

from codetune.data.complexity import measure_complexity
from codetune.errors import ConfigError


def test_straight_line_function_scores_one():
    m = measure_complexity("int f(int a) {\n    return a;\n}\n", "c")
    assert m == {"cyclomatic": 1, "nloc": 3, "token_count": 11}


@pytest.mark.parametrize(
    ("language", "code", "cyclomatic"),
    [
        ("python", "def f(x):\n    if x and x > 1:\n        return 1\n    return 0\n", 3),
        (
            "java",
            (
                "/** d */\nint f(int x) {\n    for (int i = 0; i < x; i++) { if (i > 2) return i; }\n"
                "    return x > 0 ? 1 : 0;\n}\n"
            ),
            4,
        ),
        ("javascript", "function f(x) {\n  while (x) { x--; }\n  return x || 1;\n}\n", 3),
        (
            "cpp",
            (
                "template <class T> T f(T x) {\n    switch (x) { case 1: return 1; case 2: return 2; }\n"
                "    return 0;\n}\n"
            ),
            3,
        ),
    ],
)
def test_decision_points_are_counted(language, code, cyclomatic):
    assert measure_complexity(code, language)["cyclomatic"] == cyclomatic


def test_nested_functions_add_their_decision_points():
    # The lambda's `if` and the outer `if` both count: 1 + 2.
    code = "void f(int a) {\n    if (a > 0) { a--; }\n    Runnable r = () -> { if (a == 1) { go(); } };\n}\n"
    assert measure_complexity(code, "java")["cyclomatic"] == 3
    code = "function f(a) {\n  const g = function (b) { return b ? 1 : 2; };\n  if (a) { return g(a); }\n}\n"
    assert measure_complexity(code, "javascript")["cyclomatic"] == 3


def test_comments_are_not_lines_of_code():
    code = "/**\n * Doc.\n */\nint f() {\n    // note\n    return 1;\n}\n"
    assert measure_complexity(code, "java")["nloc"] == 3


def test_unknown_language_raises():
    with pytest.raises(ConfigError, match="no complexity measure for language 'cobol'"):
        measure_complexity("", "cobol")
