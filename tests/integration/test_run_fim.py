"""End to end: a `codetune run` grid with FIM training and the infilling benchmark, on a tiny random model.

Grid data.fim_rate [0.5, 0] (the FIM cell first, so the plain cell runs on a base model a FIM cell has
touched), the base-model baseline, single-line infilling of the tiny benchmark's first 2 tasks.
"""

import csv
import json
import os
import signal
import subprocess
import sys

import pytest

from codetune.cli import main

pytestmark = pytest.mark.slow

EXP = """
name: {name}
label: "FIM rate {{data.fim_rate}}"
baseline: {baseline}
base:
  model: {{name: "{model}"}}
  data: {{language: python, source: "{source}", train_size: 12, test_size: 4, max_tokens: 200}}
  train: {{epochs: 1, lr: 1.0e-3, batch_size: 4}}
  generate: {{max_new_tokens: 12, batch_size: 4}}
  eval: {{benchmark: "{benchmark}", benchmark_max_new_tokens: 12, infilling: single_line, infilling_limit: 2}}
grid:
  data.fim_rate: {rates}
"""
INFILL_COLUMNS = ["infill_pass@1", "infill_pass@1_ci_low", "infill_pass@1_ci_high", "infill_exact_match"]
INFILL_COLUMNS += ["infill_kind", "infill_n", "infill_tasks", "fim_tokens"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir, make_tree, tiny_benchmark):
    root = tmp_path_factory.mktemp("fim")
    source = make_tree(root / "pkg")

    def write(name, rates, baseline=True):
        f = root / f"{name}.yaml"
        f.write_text(
            EXP.format(
                name=name,
                model=tiny_model_dir,
                source=source,
                benchmark=tiny_benchmark,
                rates=rates,
                baseline=str(baseline).lower(),
            )
        )
        return f

    return root, write


@pytest.fixture(scope="module")
def grid(setup):
    """The grid, run once in this process: (experiment dir, results rows by Configuration, its output)."""
    root, write = setup
    out = root / "runs"
    mp = pytest.MonkeyPatch()
    mp.setenv("CODETUNE_CACHE", str(root / "cache"))
    try:
        assert main(["run", str(write("fim", "[0.5, 0]")), "--out", str(out), "--no-progress"]) == 0
        assert main(["report", str(out / "fim")]) == 0
    finally:
        mp.undo()
    with (out / "fim" / "results.csv").open() as f:
        rows = {r["Configuration"]: r for r in csv.DictReader(f)}
    return out / "fim", rows


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_run_has_the_infilling_columns_from_its_own_verdicts(grid):
    exp_dir, rows = grid
    assert set(rows) == {"Base model", "FIM rate 0.5", "FIM rate 0.0"}
    header = list(next(iter(rows.values())))
    assert all(c in header for c in INFILL_COLUMNS)
    assert {label: r["fim_tokens"] for label, r in rows.items()} == {
        "Base model": "added_untrained",
        "FIM rate 0.0": "added_untrained",
        "FIM rate 0.5": "trained",
    }
    for r in rows.values():
        assert r["infill_kind"] == "single_line" and r["infill_n"] == "2" and r["infill_tasks"] == "2"
        verdicts = _jsonl(exp_dir / r["run_dir"] / "infilling" / "results.jsonl")
        # the tiny benchmark's first 2 tasks have one body line each: items HumanEval/0 and /1, line 0
        assert [v["task_id"] for v in verdicts] == ["HumanEval/0/single_line/0", "HumanEval/1/single_line/0"]
        passed = sum(v["status"] == "passed" for v in verdicts)
        assert float(r["infill_pass@1"]) == pytest.approx(100.0 * passed / 2)
        low, high = float(r["infill_pass@1_ci_low"]), float(r["infill_pass@1_ci_high"])
        assert low <= float(r["infill_pass@1"]) <= high
        # left-to-right pass@1 is measured beside it, on the whole tiny benchmark (3 tasks)
        assert r["pass@1"] != "" and r["benchmark_tasks"] == "3"


def test_the_fim_adapter_keeps_its_tokenizer_and_the_plain_one_does_not(grid):
    exp_dir, rows = grid
    fim_adapter = exp_dir / rows["FIM rate 0.5"]["run_dir"] / "adapter"
    plain_adapter = exp_dir / rows["FIM rate 0.0"]["run_dir"] / "adapter"
    assert "<fim_middle>" in (fim_adapter / "tokenizer.json").read_text()
    assert not (plain_adapter / "tokenizer.json").exists()


def test_the_report_has_the_infilling_section_with_paired_tests(grid):
    exp_dir, _ = grid
    md = (exp_dir / "report.md").read_text(encoding="utf-8")
    section = md.split("## Infilling")[1].split("\n## ")[0]
    for label in ("Base model", "FIM rate 0.5", "FIM rate 0.0"):
        assert f"| {label} |" in section
    assert "What FIM training costs left to right, and what it buys in infilling" in section
    for metric in ("left-to-right pass@1 %", "infilling pass@1 %"):
        assert f"| FIM rate 0.5 | FIM rate 0.0 | {metric} |" in section
        assert f"| FIM rate 0.5 | Base model | {metric} |" in section
    assert "infilling pass@1 %" in md.split("## Headline")[1].split("\n## ")[0]


def test_a_plain_cell_after_a_fim_cell_equals_the_same_cell_run_alone(grid, setup, tmp_path):
    """The FIM cell and the baseline add the sentinels to the cached base model: the runner puts the
    vocabulary back, so the plain cell trains and generates as it does on a freshly loaded model."""
    exp_dir, rows = grid
    root, write = setup
    out = tmp_path / "alone"
    exp = write("alone", "[0]", baseline=False)
    assert main(["run", str(exp), "--out", str(out), "--no-progress"]) == 0
    with (out / "alone" / "results.csv").open() as f:
        (alone,) = list(csv.DictReader(f))
    grid_row = rows["FIM rate 0.0"]
    assert alone["run_id"] == grid_row["run_id"]
    for name in ("metrics.json",):
        a = json.loads((out / "alone" / alone["run_dir"] / name).read_text())
        g = json.loads((exp_dir / grid_row["run_dir"] / name).read_text())
        assert a["loss_curve"] == g["loss_curve"]
    for rel in ("generations.jsonl", "benchmark/samples.jsonl", "infilling/samples.jsonl"):
        a = [r["completion"] for r in _jsonl(out / "alone" / alone["run_dir"] / rel)]
        g = [r["completion"] for r in _jsonl(exp_dir / grid_row["run_dir"] / rel)]
        assert a == g, rel


def test_rerun_skips_every_finished_run(grid, setup, capsys):
    exp_dir, _ = grid
    root, write = setup
    capsys.readouterr()
    assert main(["run", str(write("fim", "[0.5, 0]")), "--out", str(exp_dir.parent), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("already finished, skipped") == 3


def _subprocess_run(exp, out, env_extra):
    code = f"import sys; from codetune.cli import main; sys.exit(main({['run', str(exp), '--out', str(out), '--no-progress']!r}))"
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)


def test_killed_between_generation_and_execution_the_rerun_keeps_the_middles(grid, setup, tmp_path):
    """SIGKILL after the FIM cell's model stage (middles on disk, nothing executed): the rerun generates
    no middle again, executes them and ends with the grid's results for that cell (run alone here, on a
    freshly loaded base model: the same run id, the same outcome)."""
    exp_dir, rows = grid
    root, write = setup
    out = tmp_path / "killed"
    exp = write("killed", "[0.5]", baseline=False)
    env = {"CODETUNE_CACHE": str(root / "cache")}
    p = _subprocess_run(exp, out, {**env, "CODETUNE_KILL_AT": "model_stage_done:1"})
    assert p.returncode == -signal.SIGKILL, p.stderr
    reference = rows["FIM rate 0.5"]
    run_dir = out / "killed" / reference["run_dir"]
    samples = run_dir / "infilling" / "samples.jsonl"
    assert samples.is_file() and not (run_dir / "infilling" / "summary.json").exists()
    assert not (run_dir / "metrics.json").exists()
    before = (samples.read_bytes(), samples.stat().st_mtime_ns)
    p = _subprocess_run(exp, out, env)
    assert p.returncode == 0, p.stderr
    assert (samples.read_bytes(), samples.stat().st_mtime_ns) == before
    with (out / "killed" / "results.csv").open() as f:
        (again,) = list(csv.DictReader(f))
    for col in ("run_id", "pass@1", "BLEU", *INFILL_COLUMNS):
        assert again[col] == reference[col], col
    killed = _jsonl(run_dir / "infilling" / "results.jsonl")
    ref = _jsonl(exp_dir / reference["run_dir"] / "infilling" / "results.jsonl")
    assert [(v["task_id"], v["status"]) for v in killed] == [(v["task_id"], v["status"]) for v in ref]
    assert _jsonl(samples) == _jsonl(exp_dir / reference["run_dir"] / "infilling" / "samples.jsonl")
