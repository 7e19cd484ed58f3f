"""`--dry-run` costs: median per-unit stage times of finished runs, times each planned run's units."""

from __future__ import annotations

import pytest

from codetune.config import RunConfig, load_experiment
from codetune.experiments.estimate import describe_plan, measured_rates, stage_costs
from codetune.rundir import RunDir

MODEL = "smollm2-135m"


def _finished(root, name, *, generations=40, **metrics):
    rd = RunDir(root / "exp" / name).create()
    rd.write_generations([{"id": str(i), "n_new_tokens": 5} for i in range(generations)])
    rd.write_metrics({"model": MODEL, **metrics})


def _trained(root, name, scale, infill=True):
    m = dict(
        n_train=100,
        epochs=2.0,
        train_tokens=20_000,
        train_time_s=100.0 * scale,
        gen_time_s=20.0 * scale,
        benchmark_tasks=164,
        benchmark_samples_per_task=1,
        benchmark_gen_time_s=164.0 * scale,
        exec_seconds=16.4 * scale,
    )
    if infill:
        m.update(infill_n=100, infill_gen_time_s=50.0 * scale, infill_exec_seconds=10.0 * scale)
    _finished(root, name, **m)


def test_rates_are_medians_of_per_unit_stage_times(tmp_path):
    for name, scale in (("a", 1.0), ("b", 2.0), ("c", 9.0)):  # the median ignores the outlier
        _trained(tmp_path, name, scale)
    _finished(tmp_path, "other-model", train_tokens=1, train_time_s=1e6, n_train=1, epochs=1)
    (tmp_path / "exp" / "other-model" / "metrics.json").write_text('{"model": "gpt2", "train_time_s": 1e6}')
    r = measured_rates(tmp_path, MODEL)
    assert r.n_runs == 3
    assert r.train_s_per_token == pytest.approx(200.0 / 20_000)
    assert r.tokens_per_example == pytest.approx(100.0)  # 20k tokens over 100 examples x 2 epochs
    assert r.gen_s_per_item == pytest.approx(40.0 / 40)
    assert r.bench_s_per_sample == pytest.approx((164.0 + 16.4) * 2 / 164)
    assert r.infill_s_per_item == pytest.approx(60.0 * 2 / 100)


def test_stage_costs_scale_with_the_planned_run(tmp_path):
    _trained(tmp_path, "a", 1.0)
    r = measured_rates(tmp_path, MODEL)
    c = RunConfig.model_validate(
        {
            "data": {"train_size": 50, "test_size": 10},
            "train": {"epochs": 4},
            "eval": {"benchmark_limit": 20, "infilling": "single_line", "infilling_limit": 2},
        }
    )
    costs = stage_costs(c, r)
    assert costs["train"] == pytest.approx(50 * 4 * 100.0 * (100.0 / 20_000))
    assert costs["generate"] == pytest.approx(10 * 0.5)
    assert costs["benchmark"] == pytest.approx(20 * 180.4 / 164)
    # the single-line items of HumanEval/0 and /1, counted as the runner builds them
    from codetune.evaluation.benchmarks import load_tasks
    from codetune.experiments.infilling import infilling_items

    n_items = len(infilling_items(load_tasks("humaneval")[:2], "single_line"))
    assert costs["infilling"] == pytest.approx(n_items * 0.6)
    base = stage_costs(c.model_copy(update={"baseline": True}), r)
    assert base["train"] == 0.0 and base["benchmark"] == costs["benchmark"]


def test_a_stage_no_run_measured_is_named_not_guessed(tmp_path):
    _trained(tmp_path, "a", 1.0, infill=False)
    out = describe_plan(load_experiment("fim"), tmp_path)
    assert "+ unknown infilling" in out and "not counting infilling (no finished run measured it)" in out
    assert "131 single_line items" in out


def test_no_finished_run_gives_sizes_only(tmp_path):
    out = describe_plan(load_experiment("quick"), tmp_path)
    assert "estimated total: unknown: no finished run" in out and "min" not in out.split("estimated")[0]
