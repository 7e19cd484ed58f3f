"""`codetune tests augment` end to end through `main([...])`, then the file it wrote read by `codetune
evaluate` like any other benchmark; bad input ends in one `error:` line."""

from __future__ import annotations

import json

import pytest

from codetune.cli import main
from codetune.evaluation import programs

pytestmark = pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")


@pytest.fixture
def tiny_file(tmp_path, tiny_benchmark):
    return tiny_benchmark  # add, clamp, double: HumanEval format, one assert each


def test_augment_then_evaluate_the_file(tmp_path, tiny_file, capsys):
    out = tmp_path / "gen" / "tests.jsonl.gz"
    args = ["tests", "augment", "--benchmark", str(tiny_file), "--per-task", "8", "--out", str(out)]
    assert main([*args, "--no-progress", "--workers", "2"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("3 of 3 tasks got generated tests (24 inputs, at most 8 per task, seed 0)")
    assert out.is_file()

    res = tmp_path / "eval"
    assert main(["evaluate", "--benchmark", str(out), "--canonical", "--out", str(res), "--no-progress"]) == 0
    summary = json.loads((res / "summary.json").read_text())
    assert summary["pass@k"]["pass@1"] == 1.0 and summary["pass@k_plus"]["pass@1_plus"] == 1.0
    samples = tmp_path / "samples.jsonl"
    wrong = "    return a + b if a < 10 and b < 10 else 0\n"  # right only on small numbers
    samples.write_text(json.dumps({"task_id": "HumanEval/0", "completion": wrong}) + "\n")
    res2 = tmp_path / "eval2"
    args = ["evaluate", "--benchmark", str(out), "--samples", str(samples), "--out", str(res2), "--limit", "1"]
    assert main([*args, "--no-progress"]) == 0
    row = json.loads((res2 / "results.jsonl").read_text().splitlines()[0])
    assert row["status"] == "passed" and row["plus_status"] == "failed"


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--per-task", "0"], "--per-task 0 must be at least 1"),
        (["--time-limit", "-1"], "--time-limit -1.0 must be a positive number"),
        (["--out", "tests.txt"], "must end in .jsonl or .jsonl.gz"),
        (["--benchmark", "no_such_benchmark"], "unknown benchmark 'no_such_benchmark'"),
        (["--benchmark", "humaneval", "--language", "java"], "HumanEval is Python only"),
        (["--out", "/proc/codetune/x.jsonl"], "--out's directory"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path, tiny_file, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    base = {"--benchmark": str(tiny_file), "--out": "out.jsonl"}
    for i in range(0, len(extra), 2):
        base[extra[i]] = extra[i + 1]
    argv = ["tests", "augment", "--no-progress"] + [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "out.jsonl").exists()


EXP = """
name: tiny
label: "Rank {{lora.r}}"
base:
  model: {{name: "{model}"}}
  data: {{language: python, source: "{source}", train_size: 12, test_size: 6, max_tokens: 200}}
  train: {{epochs: 1, lr: 1.0e-3, batch_size: 4}}
  generate: {{max_new_tokens: 16, batch_size: 4}}
  eval: {{benchmark: "{benchmark}", benchmark_max_new_tokens: 16, extra_tests: "{extra}"}}
grid:
  lora.r: [2]
"""


def _experiment(tmp_path, tiny_model_dir, source_tree, benchmark, extra):
    f = tmp_path / "tiny.yaml"
    f.write_text(EXP.format(model=tiny_model_dir, source=source_tree, benchmark=benchmark, extra=extra))
    return f


def _generated(tmp_path, tiny_file, n=5):
    out = tmp_path / "extra.jsonl"
    argv = ["tests", "augment", "--benchmark", str(tiny_file), "--per-task", str(n), "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    return out


def test_extra_tests_attach_before_anything_trains(tmp_path, tiny_model_dir, source_tree, tiny_file, capsys):
    from codetune.config import load_experiment
    from codetune.errors import BenchmarkError
    from codetune.experiments.runner import Runner

    extra = _generated(tmp_path, tiny_file)
    exp = load_experiment(str(_experiment(tmp_path, tiny_model_dir, source_tree, tiny_file, extra)))
    runner = Runner(exp, tmp_path / "runs", progress=False, log=lambda _: None)
    runner._resolve_benchmarks()
    bench = runner.benchmark_for(exp.base)
    assert bench.extra_tests == "generated tests (5 per task, seed 0)"
    assert [len(t.plus.plus_inputs) for t in bench.tasks] == [5, 5, 5]
    # A file made from other tasks stops the experiment with one error line, before any training.
    rows = [json.loads(line) for line in tiny_file.read_text().splitlines()]
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({**r, "prompt": r["prompt"] + "    # v2\n"}) + "\n" for r in rows))
    f = _experiment(tmp_path, tiny_model_dir, source_tree, other, extra)
    with pytest.raises(BenchmarkError, match="differs from the benchmark's"):
        Runner(load_experiment(str(f)), tmp_path / "runs2", progress=False, log=lambda _: None).run_all()
    capsys.readouterr()
    assert main(["run", str(f), "--out", str(tmp_path / "runs3"), "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith("error: `eval.extra_tests`: the prompt of 'HumanEval/0'")


@pytest.mark.slow
def test_a_run_with_extra_tests_reports_both_pass_rates(tmp_path, tiny_model_dir, source_tree, tiny_file, capsys):
    extra = _generated(tmp_path, tiny_file)
    f = _experiment(tmp_path, tiny_model_dir, source_tree, tiny_file, extra)
    out = tmp_path / "runs"
    assert main(["run", str(f), "--out", str(out), "--no-progress"]) == 0
    rows = [json.loads(p.read_text()) for p in sorted((out / "tiny").glob("*/metrics.json"))]
    assert len(rows) == 2  # the base model's row and the one cell
    for m in rows:
        assert m["benchmark_extra_tests"] == "generated tests (5 per task, seed 0)"
        assert m["pass@1_plus"] is not None and m["pass@1_plus"] <= m["pass@1"]
        assert m["pass@1_plus_ci_low"] <= m["pass@1_plus"] <= m["pass@1_plus_ci_high"]
    assert main(["report", str(out / "tiny")]) == 0
    report = (out / "tiny" / "report.md").read_text()
    assert "## Extra tests: generated tests (5 per task, seed 0)" in report
    assert "% of base passes rejected" in report
