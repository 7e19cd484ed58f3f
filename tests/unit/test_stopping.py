"""Stop rules for brace languages: the cut lands right after the `}` closing the prompt's function body."""

from __future__ import annotations

import pytest

from codetune.errors import ConfigError
from codetune.stopping import BRACE_LANGUAGES, find_brace_end, is_complete, truncate

JAVA_PROMPT = "/**\n * Returns {@code {x}} or '}'.\n */\npublic int f(int x) {\n"
JS_PROMPT = "/** Returns `{a}`. */\nconst f = (a) => {\n"


@pytest.mark.parametrize("language", BRACE_LANGUAGES)
def test_cut_after_closing_brace_drops_what_follows(language):
    body = "  if (x) {\n    return 1;\n  }\n  return 0;\n}"
    assert truncate(language, "int f(int x) {\n", body + "\n\nint g() {\n  return 2;\n}\n") == body


@pytest.mark.parametrize("language", BRACE_LANGUAGES)
def test_unfinished_body_is_left_alone(language):
    completion = "  while (1) {\n    x++;\n  }\n"
    assert truncate(language, "void f() {\n", completion) == completion
    assert not is_complete(language, "void f() {\n", completion)


def test_completion_ending_exactly_on_the_brace_is_complete():
    completion = "  return 1;\n}"
    assert truncate("java", JAVA_PROMPT, completion) == completion
    assert is_complete("java", JAVA_PROMPT, completion)
    assert is_complete("java", JAVA_PROMPT, completion + "\n")


def test_java_braces_in_strings_chars_and_comments_do_not_count():
    body = (
        '  String s = "}}\\"}";\n'
        "  char c = '}';\n"
        "  char d = '\\'';\n"
        "  // closing } here is a comment\n"
        "  /* and } here { too */\n"
        "  return s.length() + c;\n"
        "}"
    )
    assert truncate("java", JAVA_PROMPT, body + "\n}\n") == body


def test_java_text_block_with_braces_and_escaped_quotes():
    body = '  String t = """\n      } \\""" {\n      """;\n  return t;\n}'
    assert truncate("java", JAVA_PROMPT, body + "\nstatic int g() {}") == body


def test_java_nested_lambdas_anonymous_and_local_classes():
    body = (
        '  Runnable r = () -> { System.out.println("{"); };\n'
        "  class Local { int g() { return 1; } }\n"
        "  return new Object() { int h() { return new Local().g(); } }.hashCode();\n"
        "}"
    )
    assert truncate("java", JAVA_PROMPT, body + "\n\n/** next */\nint k() {\n}") == body


def test_java_method_inside_class_stops_at_method_not_class():
    # HumanEval-X style: the prompt opens a class and then the method.
    prompt = "import java.util.*;\n\nclass Solution {\n    public int f(int x) {\n"
    completion = "        return x;\n    }\n}\n"
    assert truncate("java", prompt, completion) == "        return x;\n    }"


def test_javascript_template_literals_with_substitutions():
    body = "  const s = `} ${a} { ${ {k: `}`}.k } \\` }`;\n  return s;\n}"
    assert truncate("javascript", JS_PROMPT, body + ";\nconst g = 1;\n") == body


def test_javascript_regex_literals_and_division():
    body = "  const r = /[}]\\/}/g;\n  const half = a / 2 / 4;\n  return r.test(a) ? { half } : {};\n}"
    assert truncate("javascript", JS_PROMPT, body + ";\n") == body


def test_javascript_nested_functions_and_object_literals():
    body = (
        "  const o = { g() { return 1; }, h: () => { return {}; } };\n"
        "  return [1].map(function (v) { return v; });\n"
        "}"
    )
    assert truncate("javascript", JS_PROMPT, body + "\nmodule.exports = f;\n") == body


def test_cpp_raw_strings_digit_separators_and_char_literals():
    body = (
        "  auto s = R\"x(a\"})\")x\";\n  int n = 1'000'000 + '{';\n  char c = '}';\n  return n + s.size() + c;\n}"
    )
    assert truncate("cpp", "int f() {\n", body + "\n}\n") == body


def test_c_prompt_comment_with_braces_is_ignored():
    # HumanEval-X C++ prompts carry `{1.0, 2.0}` inside their doc comment.
    prompt = "/*\n>>> f({1, 2})\n*/\n#include<stdio.h>\nint f(int *a){\n"
    assert truncate("c", prompt, "    return a[0];\n}\n\nint main(){}") == "    return a[0];\n}"


def test_prompt_without_open_brace_takes_first_body():
    assert find_brace_end("java", "int f()", " {\n  return 1;\n}\nx") == len(" {\n  return 1;\n}")
    assert find_brace_end("java", "", "}") is None


def test_unterminated_string_ends_at_newline():
    # A stray quote in broken code must not swallow the rest of the completion.
    body = '  x = "oops;\n  return 1;\n}'
    assert truncate("java", JAVA_PROMPT, body + "\nrest") == body


def test_python_rule_still_applies_and_unknown_language_raises():
    assert truncate("python", "def f():\n", "    return 1\nprint(2)\n") == "    return 1\n"
    with pytest.raises(ConfigError, match="no stop rule for language 'cobol'"):
        truncate("cobol", "", "")


def test_aliases_take_their_languages_rule():
    prompt = "int f() {\n"
    body = '  auto s = R"x(})x";\n  return 1\'000;\n}'
    assert truncate("c++", prompt, body + "\nrest") == truncate("cpp", prompt, body + "\nrest") == body
    assert truncate("js", "function f() {\n", "  return /}/.test(x);\n}\nrest") == "  return /}/.test(x);\n}"
