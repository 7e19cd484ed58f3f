"""The trackers' records, read back with MLflow's own client (no model, no training)."""

from __future__ import annotations

import sys

import pytest

from codetune.config import RunConfig, RunSpec
from codetune.errors import CodetuneError
from codetune.experiments.tracking import Tracker, final_values, flat_params, open_tracker


def _spec(**overrides) -> RunSpec:
    cfg = RunConfig(**overrides)
    return RunSpec(run_id=cfg.run_id(), label="Rank 4", axes={}, config=cfg)


def test_params_are_the_resolved_config_as_dotted_keys():
    params = flat_params(RunConfig(lora={"r": 4}, train={"lr": 3e-4}))
    assert params["lora.r"] == "4" and params["train.lr"] == "0.0003" and params["ray.max_retries"] == "3"
    assert params["lora.target_modules"] == "None" and params["model.name"] == "smollm2-135m"
    assert "lora" not in params  # only leaves


def test_final_values_are_the_measurements_under_names_trackers_allow():
    metrics = {
        "BLEU": 1.5,
        "pass@1": 20.0,
        "pass@1_ci_low": 5.0,
        "exec_passed": 3,
        "baseline": False,
        "Configuration": "Rank 4",
        "seed": 0,
        "lr": 1e-3,
        "setting_threads": 2,
        "benchmark_note": None,
    }
    assert final_values(metrics) == {"BLEU": 1.5, "pass_at_1": 20.0, "pass_at_1_ci_low": 5.0, "exec_passed": 3.0}


def test_no_tracking_records_nothing(tmp_path):
    t = open_tracker("none", None, "exp", _spec(), tmp_path)
    assert type(t) is Tracker
    t.log_step(1, {"loss": 1.0})
    t.log_final({"BLEU": 1.0}, 1)
    t.close(finished=True)
    assert list(tmp_path.iterdir()) == []


def test_mlflow_run_is_found_again_by_its_tag_and_continues(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="tracking=mlflow needs mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    first = open_tracker("mlflow", uri, "exp", _spec(), tmp_path)
    for step in range(1, 6):
        first.log_step(step, {"loss": 10.0 - step, "lr": 1e-3, "tokens_per_s": 100.0})
    first.close()  # killed before the run finished: no terminal status
    # The rerun (say with another thread count: an execution setting, the same run id) continues it.
    again = open_tracker("mlflow", uri, "exp", _spec(threads=1), tmp_path)
    assert again.run_id == first.run_id
    for step in range(5, 9):
        again.log_step(step, {"loss": 10.0 - step, "lr": 1e-3, "tokens_per_s": 100.0})
    again.log_final({"BLEU": 2.5, "pass@1": 50.0}, 8)
    again.log_json("metrics.json", {"BLEU": 2.5})
    again.close(finished=True)

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "Rank 4"
    assert run.data.params["threads"] == "None"  # the params of the run as it started, logged once
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert sorted(set(steps)) == list(range(1, 9)) and steps.count(5) == 2
    assert run.data.metrics["pass_at_1"] == 50.0
    assert "metrics.json" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_a_missing_tracker_package_is_one_error_naming_the_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(CodetuneError, match="tracking=mlflow needs the package mlflow") as info:
        open_tracker("mlflow", (tmp_path / "m").as_uri(), "exp", _spec(), tmp_path)
    assert "pip install mlflow-skinny" in str(info.value)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(CodetuneError, match="tracking=tensorboard needs the package tensorboard"):
        open_tracker("tensorboard", None, "exp", _spec(), tmp_path)
