"""`tracking: mlflow|tensorboard`: what a run logs, read back with each library's own reader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codetune.cli import main

pytestmark = pytest.mark.slow

EXP = """
name: tracked
label: "Rank {{lora.r}}"
baseline: false
base:
  model: {{name: "{model}"}}
  threads: 1
  data: {{language: python, source: "{source}", train_size: 12, test_size: 4, max_tokens: 200}}
  train: {{epochs: 2, lr: 1.0e-3, batch_size: 2, checkpoint_every: 2, workers: 1}}
  generate: {{max_new_tokens: 12, batch_size: 2}}
  eval: {{benchmark: "{benchmark}", benchmark_max_new_tokens: 12, n_boot: 200}}
grid:
  lora.r: [2]
"""


@pytest.fixture()
def exp_file(tmp_path, tiny_model_dir, source_tree, tiny_benchmark):
    f = tmp_path / "tracked.yaml"
    f.write_text(EXP.format(model=tiny_model_dir, source=source_tree, benchmark=tiny_benchmark))
    return f


def _run_dir(out: Path) -> Path:
    (metrics,) = (out / "tracked").glob("*/metrics.json")
    return metrics.parent


def _subprocess(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    code = f"import sys; from codetune.cli import main; sys.exit(main({argv!r}))"
    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )


def test_mlflow_run_has_config_step_curve_final_metrics_and_artifacts(exp_file, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="tracking=mlflow needs mlflow (pip install mlflow-skinny)")
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # the default store is ./mlruns
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "runs"
    assert main(["run", str(exp_file), "tracking=mlflow", "--out", str(out), "--no-progress"]) == 0
    rd = _run_dir(out)
    metrics = json.loads((rd / "metrics.json").read_text())
    steps = metrics["train_steps"]

    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    exp = client.get_experiment_by_name("tracked")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"Rank 2", "tracked report"}
    run = runs["Rank 2"]
    assert run.info.status == "FINISHED" and run.data.tags["codetune_run_id"] == metrics["run_id"]
    # params: the resolved config
    assert run.data.params["lora.r"] == "2" and run.data.params["train.lr"] == "0.001"
    assert run.data.params["data.train_size"] == "12" and run.data.params["tracking"] == "mlflow"
    # per step: loss, lr, tokens/s
    loss = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in loss] == list(range(1, steps + 1))
    assert [round(m.value, 5) for m in loss] == metrics["loss_curve"]
    lr = client.get_metric_history(run.info.run_id, "train/lr")
    assert lr[0].value == pytest.approx(1e-3) and lr[-1].value < lr[0].value  # linear decay
    assert all(m.value > 0 for m in client.get_metric_history(run.info.run_id, "train/tokens_per_s"))
    # final metrics with their intervals
    final = run.data.metrics
    assert final["BLEU"] == pytest.approx(metrics["BLEU"]) and final["BLEU_ci_high"] == metrics["BLEU_ci_high"]
    assert final["pass_at_1"] == metrics["pass@1"] and final["pass_at_1_ci_low"] == metrics["pass@1_ci_low"]
    assert "setting_tracking" not in final and "seed" not in final
    # artifacts: the adapter, config, metrics; the grid's table and report in a run of their own
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"adapter", "config.yaml", "metrics.json"} <= names
    assert "adapter/adapter_config.json" in {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}
    local = Path(client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path / "dl")))
    assert json.loads(local.read_text())["run_id"] == metrics["run_id"]
    report = {a.path for a in client.list_artifacts(runs["tracked report"].info.run_id)}
    assert {"results.csv", "results.png", "report.md", "report.html"} <= report

    # A rerun of the finished grid trains nothing and logs nothing new.
    assert main(["run", str(exp_file), "tracking=mlflow", "--out", str(out), "--no-progress"]) == 0
    assert len(client.search_runs([exp.experiment_id])) == 2


def test_a_killed_tensorboard_run_resumes_with_each_step_once(exp_file, tmp_path):
    """Killed at step 5 (checkpoint at 4) and rerun: the curve has steps 1..N once each (the rerun purged
    the step the killed attempt had logged past its checkpoint), then the final metrics."""
    pytest.importorskip("tensorboard", reason="tracking=tensorboard needs tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "runs"
    argv = ["run", str(exp_file), "tracking=tensorboard", "--out", str(out), "--no-progress"]
    env = {"CODETUNE_CACHE": str(tmp_path / "c")}
    assert _subprocess(argv, {**env, "CODETUNE_KILL_AT": "train_step:5"}).returncode == -9
    p = _subprocess(argv, env)
    assert p.returncode == 0, p.stderr
    assert "resumed training from the checkpoint at step 4" in p.stderr
    rd = _run_dir(out)
    metrics = json.loads((rd / "metrics.json").read_text())

    acc = EventAccumulator(str(rd / "tensorboard"))
    acc.Reload()
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(1, metrics["train_steps"] + 1))
    assert [round(e.value, 5) for e in loss] == pytest.approx(metrics["loss_curve"], abs=1e-5)
    assert {"train/lr", "train/tokens_per_s", "final/BLEU", "final/pass_at_1_ci_high"} <= set(
        acc.Tags()["scalars"]
    )
    assert acc.Scalars("final/BLEU")[0].value == pytest.approx(metrics["BLEU"])
    assert acc.Scalars("final/pass_at_1")[0].value == pytest.approx(metrics["pass@1"])
    assert "config/text_summary" in acc.Tags()["tensors"]
