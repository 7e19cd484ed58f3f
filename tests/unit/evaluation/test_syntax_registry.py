"""Registry behaviour: errors for what cannot be checked, `unavailable` for missing toolchains, canaries,
helper restarts after a crash or a hang, clean shutdown, the CLI and the pass rate."""

from __future__ import annotations

import json
import os
import signal

import pytest

from codetune.cli import main
from codetune.errors import ConfigError
from codetune.evaluation.syntax import (
    LEVELS,
    SUPPORTED_LANGUAGES,
    SyntaxResult,
    check_snippets,
    open_checker,
    syntax_pass_rate,
)
from codetune.evaluation.syntax.python import PythonChecker


def test_public_constants():
    assert SUPPORTED_LANGUAGES == ("python", "java", "javascript", "c", "cpp")
    assert LEVELS == ("parse", "compile")
    r = SyntaxResult("invalid", "parse", "boom", 3)
    assert r.to_dict() == {"status": "invalid", "level": "parse", "message": "boom", "line": 3}


@pytest.mark.parametrize(
    ("lang", "level", "unit", "needle"),
    [("rust", "parse", "auto", "rust"), ("python", "run", "auto", "run"), ("java", "parse", "body", "body")],
)
def test_unknown_language_level_or_unit_is_an_error_never_a_pass(lang, level, unit, needle):
    with pytest.raises(ConfigError) as info:
        check_snippets(lang, ["x"], level, unit=unit)
    assert needle in info.value.message and info.value.hint


@pytest.mark.parametrize("lang", ["java", "javascript", "c", "cpp"])
def test_missing_toolchain_is_unavailable_with_install_hint(lang, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no javac, node, gcc, g++
    results = check_snippets(lang, ["int x;", "garbage ((("], "compile")
    assert [r.status for r in results] == ["unavailable", "unavailable"]
    assert all("install" in r.message for r in results)
    assert syntax_pass_rate(results) is None


def test_failed_canary_makes_the_language_unavailable(monkeypatch):
    # A checker that accepts everything (the seed study's bug) must not survive its own canary.
    monkeypatch.setattr(PythonChecker, "_check", lambda self, code: SyntaxResult("valid", self.level))
    with open_checker("python", "compile") as checker:
        result = checker.check("def f(:")
    assert result.status == "unavailable"
    assert "canary" in result.message


def test_python_pathological_snippets_do_not_raise():
    results = check_snippets(
        "python", ["x = (" * 300 + ")" * 300, "a = 1\0", "'\\d'\n", "x = " + "-" * 200000 + "1"], "compile"
    )
    assert [r.status for r in results][:3] == ["invalid", "invalid", "valid"]
    assert results[3].status in ("valid", "invalid")


def test_python_units_map_lines_back():
    assert check_snippets("python", ["x = 1\nreturn x\n"], "compile", unit="body")[0].status == "valid"
    bad = check_snippets("python", ["x = 1\nreturn x +\n"], "compile", unit="body")[0]
    assert (bad.status, bad.line) == ("invalid", 2)


def test_pass_rate_never_counts_unavailable_as_valid():
    v, i, u = (SyntaxResult(s, "parse") for s in ("valid", "invalid", "unavailable"))
    assert syntax_pass_rate([v, v, i, u]) == 0.5
    assert syntax_pass_rate([u, u]) is None
    assert syntax_pass_rate([]) is None


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["java", "javascript"])
def test_helper_crash_is_restarted(lang):
    good = {"java": "int f() { return 1; }", "javascript": "function f() { return 1; }"}[lang]
    with open_checker(lang, "compile") as checker:
        assert checker.check(good).status == "valid"
        first = checker.helper.pid
        os.kill(first, signal.SIGKILL)  # the helper dies between two snippets
        checker.helper.proc.wait()
        assert checker.check(good).status == "valid"
        assert checker.helper.pid != first and checker.helper.restarts == 1


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["java", "javascript"])
def test_helper_hang_costs_one_snippet_then_restarts(lang):
    good = {"java": "int f() { return 1; }", "javascript": "function f() { return 1; }"}[lang]
    bad = {"java": "int f() { return 1 }", "javascript": "function f( {"}[lang]
    with open_checker(lang, "compile") as checker:
        hung = checker.helper.pid
        os.kill(hung, signal.SIGSTOP)  # the helper stops answering, as a pathological snippet would make it
        patience = checker.helper.timeout_s
        checker.helper.timeout_s = 1.0  # the hung snippet's cost, kept short here
        (first,) = checker.check_many([good])
        assert first.status == "unavailable" and "no answer" in first.message
        checker.helper.timeout_s = patience  # a fresh JVM's first check may take a while on a busy machine
        results = checker.check_many([good, bad])
        assert [r.status for r in results] == ["valid", "invalid"]
        assert checker.helper.pid != hung
        with pytest.raises(ProcessLookupError):
            os.kill(hung, 0)  # the hung helper was killed and reaped, not left behind


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["java", "javascript"])
def test_helper_is_closed_cleanly(lang):
    checker = open_checker(lang, "parse")
    proc = checker.helper.proc
    checker.close()
    assert proc.returncode == 0  # it saw EOF and exited by itself


def test_cli_writes_one_line_per_input_in_order(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    rows = [
        {"id": "a", "code": "def f(:\n  pass\n"},
        {"id": 7, "code": "x = 1\n"},
        {"id": "c", "code": "return 1\n"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["syntax", "--lang", "python", "--level", "compile", str(src)]) == 0
    out, err = capsys.readouterr()
    got = [json.loads(line) for line in out.splitlines()]
    assert [g["id"] for g in got] == ["a", 7, "c"]
    assert [g["status"] for g in got] == ["invalid", "valid", "invalid"]
    assert set(got[0]) == {"id", "status", "level", "message", "line"} and got[0]["line"] == 1
    assert "3 snippets, 1 valid, 2 invalid, 0 unavailable" in err


def test_cli_rejects_bad_input(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1, "code": "x"}\n')
    assert main(["syntax", "--lang", "cobol", str(src)]) == 2
    assert "error: syntax checking does not support language 'cobol'" in capsys.readouterr().err
    src.write_text('{"id": 1}\n')
    assert main(["syntax", "--lang", "python", str(src)]) == 2
    assert "no string field `code`" in capsys.readouterr().err
    assert main(["syntax", "--lang", "python", str(tmp_path / "missing.jsonl")]) == 2


def test_cli_missing_toolchain_exits_1(tmp_path, capsys, monkeypatch):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1, "code": "int x;"}\n')
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["syntax", "--lang", "c", "--level", "compile", str(src)]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == "unavailable" and "gcc" in err


@pytest.mark.slow
def test_java_snippets_do_not_see_each_other():
    # The JVM reuses javac contexts between snippets; a class declared by one must not exist for the next.
    codes = [
        "class Foo { static int x = 1; }",
        "class Bar { int f() { return Foo.x; } }",
        "package a.b;\npublic class Baz { }\n",
        "class Qux { a.b.Baz z; }",
        "public class Foo { }",
    ]
    results = check_snippets("java", codes, "compile")
    assert [r.status for r in results] == ["valid", "invalid", "valid", "invalid", "valid"]
    assert "Foo" in results[1].message or "symbol" in results[1].message


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["c", "cpp"])
def test_c_batches_match_one_process_per_snippet(lang):
    # check_many gives one compiler driver several files; each must get the verdict it gets alone,
    # whatever its neighbours do (a missing header, a duplicate name, an error on the same line).
    codes = [
        "int f(void) { return 1; }\n",
        "#include <no_such_header.h>\nint g(void) { return 2; }\n",
        "int f(void) { return 1; }\n",
        "int h(void) {\n  return missing;\n}\n",
        "int k(void) { return 3 }\n",
    ] * 3
    with open_checker(lang, "compile") as checker:
        batch = checker.check_many(codes)
        alone = [checker.check(code) for code in codes]
    assert batch == alone
    assert [r.status for r in batch[:5]] == ["valid", "invalid", "valid", "invalid", "invalid"]
    assert [r.line for r in batch[:5]] == [None, 1, None, 2, 1]
