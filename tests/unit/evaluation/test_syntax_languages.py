"""Per language: valid, syntax-error, undefined-symbol and type-error snippets get the right status at each level.

Each case is (snippet, status at parse, status at compile, error line at the level where it first fails).
Languages without static names or types (Python, JavaScript) are valid at both levels for those cases:
that is what their toolchains say, and the tests pin it so nobody quietly adds a guess.
"""

from __future__ import annotations

import pytest

from codetune.evaluation.syntax import open_checker

V, X = "valid", "invalid"

CASES = {
    "python": {
        "valid": ('def add(a, b):\n    """Sum."""\n    return a + b\n', V, V, None),
        "syntax": ("def add(a, b):\n    return a +\n", X, X, 2),
        "undefined": ("def f():\n    return undefined_name\n", V, V, None),
        "type": ('def f():\n    return 1 + "a"\n', V, V, None),
        "compile_only": ("def f():\n    x = 1\n    def g():\n        nonlocal y\n", V, X, 4),
        "method": ("    def m(self):\n        return self.x\n", V, V, None),
    },
    "java": {
        "valid": ("/** Adds. */\npublic static int add(int a, int b) {\n    return a + b;\n}", V, V, None),
        "syntax": ("int add(int a, int b) {\n    return a + b\n}", X, X, 2),
        # A bare constructor is wrapped in a class of its own name (else: "return type required").
        "constructor": ("/** Makes one. */\n@Deprecated\npublic Point(int x) {\n    this.x = x;\n}", V, X, 4),
        "constructor_ok": ("/** Makes one. */\nPoint() {\n    this(0);\n}\nPoint(int x) {\n}", V, V, None),
        "undefined": ("int f() {\n    return missing;\n}", V, X, 2),
        "type": ("int f() {\n    int x = 1;\n    String s = x;\n    return 0;\n}", V, X, 3),
        "missing_return": ("int f(int a) {\n    if (a > 0) return 1;\n}", V, X, 3),
        "unit": ("import java.util.List;\n\npublic class Foo {\n    List<String> names;\n}\n", V, V, None),
        "unit_bad": ("import java.util.List;\npublic class Foo {\n    Lisst<String> names;\n}\n", V, X, 3),
        # javac 17's analyze() hits an internal assertion here; command-line javac reports the missing type.
        "api_crash": (
            (
                "static Intrinsic intrinsic(ArrayAccess a) {\n    return switch (a) {\n        case GET -> Intrinsic.LOAD;\n"
                "        default -> throw new InternalError();\n    };\n}\n"
            ),
            V,
            X,
            1,
        ),
    },
    "javascript": {
        "valid": ("/** Adds. */\nfunction add(a, b) {\n  return a + b;\n}", V, V, None),
        "syntax": ("function add(a, b) {\n  return a + ;\n}", X, X, 2),
        "undefined": ("function f() {\n  return missing;\n}", V, V, None),
        "type": ("function f() {\n  return 1 - {};\n}", V, V, None),
        "early_error": ("function f() {\n  let a = 1;\n  let a = 2;\n}", X, X, 3),
        "module": ("import fs from 'fs';\nexport const x = 1;\n", V, V, None),
        "module_bad": ("import fs from 'fs';\n\nexport const x = (;\n", X, X, 3),
        "body": ("const y = 2;\nreturn y;\n", V, V, None),
        "method": ("area() {\n  return this.w * this.h;\n}", V, V, None),
    },
    "c": {
        "valid": ("/* Adds. */\nint add(int a, int b) {\n    return a + b;\n}\n", V, V, None),
        "syntax": ("int add(int a, int b) {\n    return a + b\n}\n", X, X, 2),
        "undefined": ("int f(void) {\n    return missing;\n}\n", V, X, 2),
        "type": ('int f(void) {\n    int x = "s";\n    return x;\n}\n', V, X, 2),
        "undeclared_function": ("int f(void) {\n    return g(1);\n}\n", V, X, 2),
    },
    "cpp": {
        "valid": ("#include <vector>\nint f(const std::vector<int>& v) {\n    return v.size();\n}\n", V, V, None),
        "syntax": ("int add(int a, int b) {\n    return a + b\n}\n", X, X, 2),
        "undefined": ("int f() {\n    return missing;\n}\n", V, X, 2),
        "type": ('int f() {\n    int* p = "s";\n    return 0;\n}\n', V, X, 2),
    },
}

PARAMS = [(lang, name) for lang, cases in CASES.items() for name in cases]


@pytest.fixture(scope="module")
def checkers():
    opened = {}
    yield lambda lang, level: opened.setdefault((lang, level), open_checker(lang, level))
    for checker in opened.values():
        checker.close()


@pytest.mark.slow
@pytest.mark.parametrize("level", ["parse", "compile"])
@pytest.mark.parametrize(("lang", "name"), PARAMS, ids=[f"{lang}-{name}" for lang, name in PARAMS])
def test_status_per_level(checkers, lang, name, level):
    code, at_parse, at_compile, line = CASES[lang][name]
    checker = checkers(lang, level)
    assert checker.unavailable_reason is None, checker.unavailable_reason
    result = checker.check(code)
    expected = at_parse if level == "parse" else at_compile
    assert result.level == level
    assert result.status == expected, result
    if expected == "invalid":
        assert result.message
        assert result.line == line, result
    else:
        assert result.line is None and result.message == ""
