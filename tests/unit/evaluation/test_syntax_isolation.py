"""The syntax checkers' compiler calls run in the sandbox (issue 18, "Host harm"): a snippet is untrusted input
to the preprocessor and to the helpers. Each test failed when gcc and the helpers ran as root with no limits
(the /dev/zero one is not run against that code: it peaked at 22.8 GB resident there)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import codetune
from codetune.evaluation import _process, sandbox
from codetune.evaluation.syntax import check_snippets, open_checker

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
README = Path(codetune.__file__).resolve().parents[2] / "README.md"


@needs_gcc
def test_host_paths_are_invisible_to_the_preprocessor():
    assert README.is_file()  # it is there for us: not for the snippet
    snippet = f'#if __has_include("{README}")\nint f(void) {{ return undeclared; }}\n#else\nint f(void) {{ return 0; }}\n#endif\n'
    leak = '#include "/etc/passwd"\nint x;\n'
    valid, passwd = check_snippets("c", [snippet, leak], "compile")
    assert valid.status == "valid", valid  # __has_include of the host file is false
    assert passwd.status == "invalid" and "No such file" in passwd.message


@needs_gcc
def test_an_include_of_dev_zero_ends_within_the_cap():
    (r,) = check_snippets("c", ['#include "/dev/zero"\nint main(void) { return 0; }\n'], "compile")
    assert r.status == "unavailable" and "memory" in r.message, r


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["java", "javascript"])
def test_helpers_run_sandboxed_not_as_root(lang):
    with open_checker(lang, "parse") as checker:
        if checker.unavailable_reason is not None:
            pytest.skip(checker.unavailable_reason)
        pid = checker.helper.pid
        with open(f"/proc/{pid}/status") as f:
            uid = int(next(line for line in f if line.startswith("Uid:")).split()[1])
        with open(f"/proc/{pid}/cgroup") as f:
            groups = f.read()
        iso = sandbox.isolation()
        if "per run" in iso.user or "own uid" in iso.user:
            assert uid >= _process._UID_BASE, uid  # one of the sandbox's uids, never root
        if not iso.cgroup.startswith("none"):
            assert "/codetune-" in groups, groups  # in a cgroup of its own (memory + pids caps)
        assert checker.check({"java": "class A {}", "javascript": "let a = 1;"}[lang]).status == "valid"
