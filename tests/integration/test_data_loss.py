"""Nothing lost: outputs that cannot be written stop a command before any work; `evaluate` resumes after a
kill; results.csv keeps finished runs a narrower grid no longer lists; one process per experiment cell.

Tests run as root here, whom permission bits do not stop: unwritable paths are under /proc (a
pseudo-filesystem nobody can create files in), a path through a file, or a directory bind-mounted read-only
by bubblewrap around the command.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from codetune.cli import main
from codetune.evaluation import programs

PY_TASKS = [
    {
        "task_id": f"Python/{i}",
        "prompt": f"def f{i}(x):\n",
        "canonical_solution": f"    return x + {i}\n",
        "test": f"\n\ndef check(f):\n    assert f(1) == {1 + i}\n\ncheck(f{i})\n",
    }
    for i in range(6)
]
needs_python = pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")


def _bench(tmp_path: Path) -> Path:
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in PY_TASKS))
    return path


def _one_error_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for needle in needles:
        assert needle in err[0], err
    return err[0]


def _bad_outs(tmp_path: Path) -> dict[str, Path]:
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory\n")
    return {"proc": Path("/proc/codetune-out"), "file": a_file, "under_file": a_file / "out"}


@pytest.fixture()
def no_work(monkeypatch):
    """Any sample executed or model loaded fails the test: the check must come first."""
    import codetune.commands._benchmark_options as options
    from codetune.evaluation import harness

    def forbidden(*a, **kw):
        raise AssertionError("work started before the output directory was checked")

    monkeypatch.setattr(harness, "evaluate_samples", forbidden)
    monkeypatch.setattr(options, "load_model", forbidden)


# --------------------------------------------------------------------------------- unwritable outputs


@pytest.mark.parametrize("kind", ["proc", "file", "under_file"])
def test_evaluate_unwritable_out_fails_before_any_sample_runs(tmp_path, capsys, no_work, kind):
    out = _bad_outs(tmp_path)[kind]
    argv = ["evaluate", "--benchmark", str(_bench(tmp_path)), "--canonical", "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    _one_error_line(capsys, str(out), "choose a writable --out")


@pytest.mark.parametrize("kind", ["proc", "file", "under_file"])
def test_generate_unwritable_out_fails_before_the_model_loads(tmp_path, capsys, no_work, kind):
    out = _bad_outs(tmp_path)[kind]
    argv = [
        "generate",
        "--benchmark",
        str(_bench(tmp_path)),
        "--model",
        "gpt2",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 2
    _one_error_line(capsys, str(out), "choose a writable --out")


@pytest.mark.parametrize("kind", ["proc", "file"])
def test_run_unwritable_out_is_one_error_line(tmp_path, capsys, monkeypatch, kind):
    from codetune import models

    def forbidden(*a, **kw):
        raise AssertionError("the model loaded before the output directory was checked")

    monkeypatch.setattr(models, "load_base", forbidden)
    out = _bad_outs(tmp_path)[kind]
    assert main(["run", "quick", "--out", str(out), "--no-progress"]) == 2
    _one_error_line(capsys, str(out / "quick"), "choose a writable --out")


bwrap = shutil.which("bwrap")


def _read_only(path: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """`codetune argv` in a child that sees `path` bind-mounted read-only (even root cannot write there)."""
    code = f"import sys; from codetune.cli import main; sys.exit(main({argv!r}))"
    cmd = [bwrap, "--dev-bind", "/", "/", "--ro-bind", str(path), str(path), sys.executable, "-c", code]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def _bwrap_works(tmp_path: Path) -> bool:
    if bwrap is None:
        return False
    probe = subprocess.run([bwrap, "--dev-bind", "/", "/", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def _load_fabricate():
    path = Path(__file__).parents[1] / "unit" / "reporting" / "_fabricate.py"
    spec = importlib.util.spec_from_file_location("_codetune_fabricate_dl", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_report_on_a_read_only_experiment_dir_is_one_error_line(tmp_path):
    if not _bwrap_works(tmp_path):
        pytest.skip("bubblewrap cannot make a read-only mount here")
    fab = _load_fabricate()
    exp = fab.rank_experiment(tmp_path / "rank", n=6)
    before = sorted(p.name for p in exp.iterdir())
    p = _read_only(exp, ["report", str(exp)])
    assert p.returncode == 2, p.stderr
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: experiment directory ") and "make it writable" in err[0], (
        err
    )
    assert sorted(p.name for p in exp.iterdir()) == before


@needs_python
def test_evaluate_into_a_read_only_dir_is_one_error_line(tmp_path):
    if not _bwrap_works(tmp_path):
        pytest.skip("bubblewrap cannot make a read-only mount here")
    out = tmp_path / "ro"
    out.mkdir()
    p = _read_only(out, ["evaluate", "--benchmark", str(_bench(tmp_path)), "--canonical", "--out", str(out)])
    assert p.returncode == 2, p.stderr
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "choose a writable --out" in err[0] and "Read-only" in err[0], err


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
def test_evaluate_timeout_must_be_a_positive_finite_number(tmp_path, capsys, no_work, value):
    argv = ["evaluate", "--benchmark", str(_bench(tmp_path)), "--canonical", "--out", str(tmp_path / "o")]
    assert main([*argv, f"--timeout={value}", "--no-progress"]) == 2
    _one_error_line(capsys, "--timeout", "e.g. --timeout 10")


# ------------------------------------------------------------------------------ evaluate resumes


def _evaluate_cmd(bench: Path, out: Path) -> list[str]:
    argv = ["evaluate", "--benchmark", str(bench), "--canonical", "--out", str(out), "--workers", "1"]
    code = f"import sys; from codetune.cli import main; sys.exit(main({[*argv, '--no-progress']!r}))"
    return [sys.executable, "-c", code]


@needs_python
def test_evaluate_killed_mid_run_resumes_judging_only_what_is_missing(tmp_path, capsys, monkeypatch):
    bench, out = _bench(tmp_path), tmp_path / "eval"
    env = {**os.environ, "CODETUNE_KILL_AT": "exec_sample:3"}
    p = subprocess.run(
        _evaluate_cmd(bench, out), env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert p.returncode == -signal.SIGKILL, p.stderr
    partial = [json.loads(x) for x in (out / "results.partial.jsonl").read_text().splitlines()]
    assert len(partial) == 3 and not (out / "results.jsonl").exists()

    from codetune.evaluation import harness

    judged = []
    real = harness.evaluate_one

    def counting(task, completion, **kw):
        judged.append(task.task_id)
        return real(task, completion, **kw)

    monkeypatch.setattr(harness, "evaluate_one", counting)
    argv = ["evaluate", "--benchmark", str(bench), "--canonical", "--out", str(out), "--workers", "1"]
    assert main([*argv, "--no-progress"]) == 0
    assert len(judged) == 3 and set(judged).isdisjoint(r["task_id"] for r in partial)
    assert "3 of 6 samples already judged" in capsys.readouterr().err
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in rows] == [t["task_id"] for t in PY_TASKS]  # sample order, as before
    assert all(r["status"] == "passed" and "_key" not in r for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 6 and summary["exec_resumed"] == 3 and summary["pass@k"]["pass@1"] == 1.0
    assert not (out / "results.partial.jsonl").exists()


@needs_python
def test_resume_does_not_reuse_verdicts_made_under_other_settings(tmp_path, monkeypatch):
    bench, out = _bench(tmp_path), tmp_path / "eval"
    env = {**os.environ, "CODETUNE_KILL_AT": "exec_sample:2"}
    p = subprocess.run(
        _evaluate_cmd(bench, out), env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert p.returncode == -signal.SIGKILL, p.stderr
    from codetune.evaluation import harness

    judged = []
    real = harness.evaluate_one
    monkeypatch.setattr(harness, "evaluate_one", lambda t, c, **kw: judged.append(t) or real(t, c, **kw))
    argv = ["evaluate", "--benchmark", str(bench), "--canonical", "--out", str(out), "--timeout", "5"]
    assert main([*argv, "--no-progress"]) == 0
    assert len(judged) == 6  # another --timeout: every sample judged again


@needs_python
def test_evaluate_out_held_by_a_live_process_is_one_error_line(tmp_path, capsys, no_work):
    out = tmp_path / "eval"
    out.mkdir()
    with _held_by_other_process(out / ".codetune.lock"):
        argv = ["evaluate", "--benchmark", str(_bench(tmp_path)), "--canonical", "--out", str(out)]
        assert main([*argv, "--no-progress"]) == 2
    _one_error_line(capsys, "in use by another codetune process", "choose another --out")


class _held_by_other_process:
    """A child process that holds the lock file `path` until the block ends (then it is SIGKILLed)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __enter__(self) -> subprocess.Popen:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        code = (
            "import sys, time; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); "
            "print('held', flush=True); time.sleep(600)"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(self.path)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline().strip() == "held"
        return self.proc

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGKILL)  # its lock goes with it: the kernel drops a dead process's flock
        self.proc.wait()


# --------------------------------------------------------------------------------- experiments

EXP = """
name: tiny
label: "Rank {{lora.r}}"
baseline: false
base:
  model: {{name: "{model}"}}
  data: {{language: python, source: "{source}", train_size: 12, test_size: 4, max_tokens: 200}}
  train: {{epochs: 1, lr: 1.0e-3, batch_size: 4}}
  generate: {{max_new_tokens: 12, batch_size: 4}}
  eval: {{benchmark: none}}
grid:
  lora.r: [2, 4]
"""


@pytest.fixture()
def exp_file(tmp_path, tiny_model_dir, source_tree) -> Path:
    f = tmp_path / "tiny.yaml"
    f.write_text(EXP.format(model=tiny_model_dir, source=source_tree))
    return f


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_narrower_grid_keeps_the_finished_runs_it_no_longer_lists(exp_file, tmp_path, capsys, monkeypatch):
    out = tmp_path / "runs"
    assert main(["run", str(exp_file), "--out", str(out), "--no-progress"]) == 0
    exp_dir = out / "tiny"
    assert [r["Configuration"] for r in _rows(exp_dir / "results.csv")] == ["Rank 2", "Rank 4"]
    capsys.readouterr()

    from codetune.reporting import plots

    plotted = []
    real = plots.plot_results
    monkeypatch.setattr(plots, "plot_results", lambda rows, *a, **kw: plotted.append(rows) or real(rows, *a, **kw))
    assert main(["run", str(exp_file), "lora.r=[2]", "--out", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("already finished, skipped") == 1
    rows = _rows(exp_dir / "results.csv")
    assert [(r["Configuration"], r["in_grid"]) for r in rows] == [("Rank 2", "True"), ("Rank 4", "False")]
    assert all((exp_dir / r["run_dir"] / "metrics.json").is_file() for r in rows)
    assert "1 of them finished earlier outside this grid" in captured.out
    long = _rows(exp_dir / "results_long.csv")
    assert {r["Configuration"] for r in long if r["in_grid"] == "False"} == {"Rank 4"}
    assert [r["Configuration"] for r in plotted[-1]] == ["Rank 2", "Rank 4 (not in grid)"]


@pytest.mark.slow
def test_a_cell_held_by_a_live_process_is_skipped_and_its_death_frees_it(exp_file, tmp_path, capsys):
    from codetune.config import expand_grid, load_experiment

    out = tmp_path / "runs"
    r2, r4 = expand_grid(load_experiment(str(exp_file)))
    # The cell's lock file (`rundir.run_lock`), spelled out so that this test runs against older code too.
    with _held_by_other_process(out / "tiny" / ".locks" / f"{r4.dirname}.lock"):
        assert main(["run", str(exp_file), "--out", str(out), "--no-progress"]) == 0
        err = capsys.readouterr().err
    held = [line for line in err.splitlines() if "another codetune process" in line]
    assert len(held) == 1 and "Rank 4" in held[0] and "skipped" in held[0], err
    assert not (out / "tiny" / r4.dirname).exists()  # not trained, not even started
    assert [r["Configuration"] for r in _rows(out / "tiny" / "results.csv")] == ["Rank 2"]
    # The holder was SIGKILLed: its lock does not outlive it.
    assert main(["run", str(exp_file), "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "another codetune process" not in err and err.count("already finished, skipped") == 1
    assert [r["Configuration"] for r in _rows(out / "tiny" / "results.csv")] == ["Rank 2", "Rank 4"]


def _run_cmd(exp: Path, out: Path) -> list[str]:
    argv = ["run", str(exp), "--out", str(out), "--no-progress"]
    return [sys.executable, "-c", f"import sys; from codetune.cli import main; sys.exit(main({argv!r}))"]


@pytest.mark.slow
def test_two_concurrent_runs_train_each_cell_once(exp_file, tmp_path):
    out = tmp_path / "runs"
    env = {**os.environ, "CODETUNE_CACHE": str(tmp_path / "cache")}
    procs = [
        subprocess.Popen(
            _run_cmd(exp_file, out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        errs.append(err)
    both = "\n".join(errs)
    for label in ("Rank 2", "Rank 4"):
        ran = [line for line in both.splitlines() if f"] {label} (" in line and ": running in " in line]
        assert len(ran) == 1, both  # one process trained it; the other skipped it (held or finished)
    assert "Traceback" not in both
    rows = _rows(out / "tiny" / "results.csv")
    assert sorted(r["Configuration"] for r in rows) == ["Rank 2", "Rank 4"]
