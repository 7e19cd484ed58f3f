"""`eval.efficiency` in an experiment: the runner's execution stage times the run's passing benchmark samples
(no model: the samples are written into the run directory as the model stage leaves them) and puts the
`eff_*` figures into metrics.json; off, nothing is measured."""

from __future__ import annotations

import json

import pytest

from codetune.config import load_experiment
from codetune.evaluation import efficiency, programs
from codetune.experiments.runner import Runner

EXP = """
name: eff
baseline: false
base:
  data: {{language: python, train_size: 8, test_size: 3}}
  eval: {{benchmark: "{benchmark}", efficiency: {on}}}
"""


def _runner(tmp_path, benchmark, on: bool):
    f = tmp_path / "eff.yaml"
    f.write_text(EXP.format(benchmark=benchmark, on=str(on).lower()))
    runner = Runner(load_experiment(str(f)), tmp_path / "runs", progress=False, log=lambda _: None)
    runner._resolve_benchmarks()
    return runner


def _samples(tasks):
    """The canonical solution of every task, and a wrong one for the first (never timed)."""
    good = [{"task_id": t.task_id, "completion": t.canonical_solution, "sample": 0} for t in tasks]
    return good + [{"task_id": tasks[0].task_id, "completion": "    return None\n", "sample": 1}]


@pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")
def test_the_execution_stage_times_passing_samples_into_metrics(tmp_path, tiny_benchmark):
    runner = _runner(tmp_path, tiny_benchmark, on=True)
    (spec,) = runner.specs
    rd = runner.run_dir(spec)
    tasks = runner.benchmark_for(spec.config).tasks
    rd.benchmark.write_samples(_samples(tasks))
    handoff = {"metrics": {}, "benchmark_gen_s": 0.0, "infilling": None, "tail": {}}
    metrics = runner.execute_stage(spec, handoff)
    assert metrics["exec_passed"] == len(tasks)
    assert metrics["eff_samples"] == len(tasks) and metrics["eff_timed"] == len(tasks)
    assert metrics["eff_tasks"] == len(tasks) and metrics["eff_self_ratio"] is not None
    assert 0.2 < metrics["eff_ratio"] < 5  # canonical solutions timed against themselves
    assert json.loads(rd.metrics.read_text())["eff_ratio"] == metrics["eff_ratio"]
    records = [json.loads(x) for x in (rd.benchmark.path / efficiency.RECORDS).read_text().splitlines()]
    assert len(records) == 2 * len(tasks) and all(r["index"] != len(tasks) for r in records)


def test_off_nothing_is_measured(tmp_path, tiny_benchmark, monkeypatch):
    monkeypatch.setattr(efficiency, "run_stage", lambda *a, **k: pytest.fail("measured with eval.efficiency off"))
    runner = _runner(tmp_path, tiny_benchmark, on=False)
    (spec,) = runner.specs
    runner.run_dir(spec).benchmark.write_samples(_samples(runner.benchmark_for(spec.config).tasks))
    metrics = runner.execute_stage(spec, {"metrics": {}, "benchmark_gen_s": 0.0, "infilling": None, "tail": {}})
    assert not any(k.startswith("eff_") for k in metrics)


@pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")
def test_evaluate_efficiency_times_the_passing_samples(tmp_path, tiny_benchmark, capsys):
    from codetune.cli import main

    samples = tmp_path / "samples.jsonl"
    rows = [
        {"task_id": "HumanEval/0", "completion": "    return a + b\n"},
        {"task_id": "HumanEval/1", "completion": "    return 0\n"},
    ]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    argv = ["evaluate", "--benchmark", str(tiny_benchmark), "--samples", str(samples), "--out", str(out)]
    assert main([*argv, "--efficiency", "--no-progress"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("efficiency: 1 of 1 passing samples timed on 1 task(s): CPU-time ratio ")
    summary = json.loads((out / efficiency.SUMMARY).read_text())
    assert summary["metrics"]["eff_timed"] == 1 and summary["settings"]["top_k"] == 3


def test_evaluate_efficiency_with_infilling_is_one_error_line(tmp_path, tiny_benchmark, capsys):
    from codetune.cli import main

    argv = ["evaluate", "--benchmark", str(tiny_benchmark), "--canonical", "--out", str(tmp_path / "o")]
    assert main([*argv, "--infilling", "single_line", "--efficiency"]) != 0
    err = capsys.readouterr().err
    assert "error: --efficiency times benchmark samples, not infilling middles" in err
