"""benchmarks/verdict_modes.py on a tiny input: the first HumanEval tasks (and JS ones when the HumanEval-X files
are here), every figure printed and its RESULTS.md section written beside the others."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from codetune.evaluation import programs

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "verdict_modes.py"
HUMANEVAL_X = Path("/work/shared/data/humaneval-x")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("verdict_modes", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")
def test_main_prints_coverage_and_both_modes_and_writes_its_section(bench, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CODETUNE_CACHE", str(tmp_path / "user-cache"))
    md = tmp_path / "RESULTS.md"
    md.write_text("# Measured figures\n\n## perf\n\nkept\n")
    langs = "python,javascript" if HUMANEVAL_X.is_dir() and shutil.which("node") else "python"
    argv = ["--langs", langs, "--limit", "3", "--workers", "2", "--humaneval-x", str(HUMANEVAL_X)]
    assert bench.main([*argv, "--results-md", str(md)]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    python = lines[lines.index(next(x for x in lines if x.startswith("python"))) :][:3]
    assert python[0].split()[:4] == ["python", "3", "3", "3"]  # tasks, parsed, covered
    for line, mode in zip(python, ("data", "assert", "auto")):
        assert f" {mode} " in line and line.count("3/3") == 2, line  # canonical passed, wrong failed
    text = md.read_text()
    assert "## perf\n\nkept" in text and "## verdict_modes" in text and "--limit 3" in text
    assert not list((tmp_path / "user-cache").glob("data_tests/*"))  # its fresh cache, not the user's


def test_unknown_language_is_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--langs", "cobol", "--no-results-md"])
    assert "unknown cobol" in capsys.readouterr().err
