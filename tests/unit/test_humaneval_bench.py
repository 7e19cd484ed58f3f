"""benchmarks/humaneval_bench.py runs its three pipelines on a tiny random model and reports every figure."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "humaneval_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("humaneval_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture()
def _threads_restored():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("_threads_restored")
def test_main_measures_seed_fixed_and_codetune_and_writes_its_section(bench, tiny_model_dir, tmp_path, capsys):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Measured figures\n\n## perf\n\nkept\n")
    argv = ["--model", str(tiny_model_dir), "--limit", "3", "--width", "2", "--max-new-tokens", "5"]
    argv += ["--threads", "1", "--fixed-batches", "--out", str(tmp_path / "out"), "--results-md", str(md)]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    for text in ("seed style", "fixed batches", "codetune generate()", "bandwidth bound", "pass@1 unchanged"):
        assert text in printed
    res = json.loads((tmp_path / "out" / "figures.json").read_text())
    ct, seed = res["codetune"], res["seed"]
    assert ct["new_tokens"] == seed["new_tokens"] and ct["pass@1"] == seed["pass@1"]
    assert ct["wasted_row_steps"] == 0 and ct["row_steps"] == ct["new_tokens"] - 3
    assert seed["steps"] == seed["row_steps"] == seed["new_tokens"] - 3  # one row at a time
    assert ct["prefills"] == seed["prefills"] == 3 and ct["prefill_tokens"] == seed["prefill_tokens"]
    assert res["bounds"]["ideal_steps"] == ct["new_tokens"] / 2
    lines = (tmp_path / "out" / "samples_codetune.jsonl").read_text().splitlines()
    assert [json.loads(x)["task_id"] for x in lines] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    text = md.read_text()
    assert "## perf\n\nkept" in text and "## humaneval_bench" in text and "--fixed-batches" in text


@pytest.mark.usefixtures("_threads_restored")
def test_halves_run_each_half_through_every_pipeline_in_alternating_order(bench, tiny_model_dir, tmp_path, capsys):
    argv = ["--model", str(tiny_model_dir), "--limit", "3", "--width", "2", "--max-new-tokens", "5", "--halves"]
    argv += ["--threads", "1", "--out", str(tmp_path / "out"), "--no-results-md"]
    assert bench.main(argv) == 0
    assert "order codetune seed | seed codetune" in capsys.readouterr().out
    res = json.loads((tmp_path / "out" / "figures.json").read_text())
    ct, seed = res["codetune"], res["seed"]
    # 1 task, then 2: the merged figures count all three once
    assert ct["prefills"] == seed["prefills"] == 3 and ct["new_tokens"] == seed["new_tokens"]
    assert seed["steps"] == seed["new_tokens"] - 3 and ct["wasted_row_steps"] == 0
    assert sorted(ct["passed"]) == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert ct["tok_per_s"] == pytest.approx(ct["new_tokens"] / ct["gen_s"])
    lines = (tmp_path / "out" / "samples_seed.jsonl").read_text().splitlines()
    assert [json.loads(x)["task_id"] for x in lines] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]


def test_bounds_are_steps_times_weights_over_bandwidth_and_flops_over_rate(bench):
    probe = {"weight_bytes": 1e9, "bandwidth_bytes_per_s": 1e10, "matmul_params": 5e8, "flops": 1e11}
    ct = {"new_tokens": 640, "prefill_tokens": 1000, "row_steps": 600}
    b = bench.bounds(probe, ct, width=32)
    assert b["step_bandwidth_s"] == pytest.approx(0.1) and b["ideal_steps"] == 20
    assert b["bandwidth_bound_s"] == pytest.approx(2.0)
    assert b["step_compute_s"] == pytest.approx(32 * 1e9 / 1e11)
    assert b["compute_bound_s"] == pytest.approx(1600 * 1e9 / 1e11)
