"""Experiment tracking (`tracking: none|mlflow|tensorboard`): each run in a tracker's own format.

What a tracked run records: params = its resolved config (dotted keys), per-step `train/loss`, `train/lr`
and `train/tokens_per_s`, its final metrics with their confidence intervals (`pass_at_1`,
`pass_at_1_ci_low`, ...: trackers allow no `@` in a name), and with MLflow its files as artifacts (the
adapter, config.yaml, metrics.json, and the grid's results table and report in a run of their own).

    mlflow       MLFLOW_TRACKING_URI when set, else the file store ./mlruns (made absolute where the
                 grid starts, so Ray workers write to the same place: on a cluster, a shared path or a
                 tracking server). One MLflow experiment per codetune experiment, one MLflow run per
                 cell (tag `codetune_run_id`): a resumed cell continues its MLflow run.
    tensorboard  event files in the run's directory (`tensorboard/`); a resumed run purges the steps
                 logged after its checkpoint, so the curve has each step once.

Both libraries are imported only when a run is tracked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from codetune.errors import CodetuneError

TB_DIR = "tensorboard"  # inside a run's directory
MLRUNS = "mlruns"
RUN_TAG = "codetune_run_id"
REPORT_TAG = "codetune_report"
# Values in metrics.json that echo the config (already params) or are no measurement.
_NOT_METRICS = {"seed", "lora_r", "lora_alpha", "lora_dropout", "train_size", "epochs", "lr", "batch_size"}


def tracking_uri(kind: str) -> str | None:
    """Where MLflow writes, resolved once where the grid starts: MLFLOW_TRACKING_URI, else ./mlruns as
    an absolute file URI; None for the other trackers."""
    if kind != "mlflow":
        return None
    return os.environ.get("MLFLOW_TRACKING_URI") or Path(MLRUNS).resolve().as_uri()


class Tracker:
    """A run's tracker; this base records nothing (`tracking: none`)."""

    def log_step(self, step: int, values: dict[str, float]) -> None:
        """Values after optimizer step `step` (1-based)."""

    def log_final(self, metrics: dict[str, Any], step: int) -> None:
        """The run's final metrics (every number in metrics.json but the config's echoes)."""

    def log_files(self, paths: Iterable[Path]) -> None:
        """Files and directories of the run, as artifacts where the tracker keeps them."""

    def log_json(self, name: str, obj: Any) -> None:
        """A record as a JSON artifact `name`, where the tracker keeps artifacts."""

    def close(self, finished: bool = False) -> None:
        """Flush; `finished`: the run is done (its last stage ran)."""


def open_tracker(kind: str, uri: str | None, experiment: str, spec: Any, run_dir: Path) -> Tracker:
    """The tracker of one run (`spec`) of `experiment`; the config is logged when the run is new."""
    if kind == "mlflow":
        return MlflowTracker(uri or tracking_uri("mlflow") or "", experiment, spec)
    if kind == "tensorboard":
        return TensorBoardTracker(Path(run_dir) / TB_DIR, spec)
    return Tracker()


def flat_params(cfg: Any) -> dict[str, str]:
    """The resolved config as dotted keys -> text (`train.lr` -> "0.0003")."""
    out: dict[str, str] = {}

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = str(v)

    walk(cfg.model_dump(mode="json"), "")
    return out


def final_values(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers of metrics.json a tracker logs, named as trackers allow (`pass@1` -> `pass_at_1`)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or k in _NOT_METRICS or k.startswith("setting_"):
            continue
        out[k.replace("@", "_at_")] = float(v)
    return out


class MlflowTracker(Tracker):
    """One MLflow run per cell, found again by its tag when a later stage or a resumed attempt opens it."""

    def __init__(self, uri: str, experiment: str, spec: Any) -> None:
        client_cls = _mlflow_client(uri)
        self.client = client_cls(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(experiment)
        found = self.client.search_runs(
            [exp_id],
            filter_string=f"tags.{RUN_TAG} = '{spec.run_id}'",
            max_results=1,
            order_by=["start_time DESC"],
        )
        if found:
            self.run_id = found[0].info.run_id
            if found[0].info.status != "RUNNING":
                self.client.update_run(self.run_id, status="RUNNING")
        else:
            run = self.client.create_run(exp_id, run_name=spec.label, tags={RUN_TAG: spec.run_id})
            self.run_id = run.info.run_id
            self._log_params(flat_params(spec.config))

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_step(self, step: int, values: dict[str, float]) -> None:
        self._log(values, step, prefix="train/")

    def log_final(self, metrics: dict[str, Any], step: int) -> None:
        self._log(final_values(metrics), step)

    def _log(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(f"{prefix}{k}", float(v), now, step) for k, v in values.items()]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def log_files(self, paths: Iterable[Path]) -> None:
        for path in paths:
            path = Path(path)
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
            elif path.is_file():
                self.client.log_artifact(self.run_id, str(path))

    def log_json(self, name: str, obj: Any) -> None:
        self.client.log_dict(self.run_id, obj, name)

    def close(self, finished: bool = False) -> None:
        if finished:
            self.client.set_terminated(self.run_id, "FINISHED")


def log_report(uri: str | None, experiment: str, paths: Iterable[Path]) -> None:
    """The grid's results table, plot and report as artifacts of one MLflow run of its own ("report")."""
    client = _mlflow_client(uri or "")(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    run = client.create_run(exp_id, run_name=f"{experiment} report", tags={REPORT_TAG: "1"})
    for path in paths:
        if Path(path).is_file():
            client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id, "FINISHED")


def _mlflow_client(uri: str) -> Any:
    """MLflow's client class; its file store is opted into where the URI is one (MLflow 3 asks for that)."""
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise CodetuneError(
            "tracking=mlflow needs the package mlflow",
            "install it with: pip install mlflow-skinny (or set tracking=none)",
        ) from None
    return MlflowClient


class TensorBoardTracker(Tracker):
    """Event files under the run's directory; the writer opens at the first value, purging any steps a
    killed attempt logged past the checkpoint this one resumed from."""

    def __init__(self, log_dir: Path, spec: Any) -> None:
        try:
            import tensorboard  # noqa: F401  (torch's writer needs it)
        except ImportError:
            raise CodetuneError(
                "tracking=tensorboard needs the package tensorboard",
                "install it with: pip install tensorboard (or set tracking=none)",
            ) from None
        self.log_dir = Path(log_dir)
        self.spec = spec
        self._writer: Any = None

    def _open(self, first_step: int | None) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            new = not self.log_dir.is_dir()
            self._writer = SummaryWriter(str(self.log_dir), purge_step=first_step if not new else None)
            if new:
                import yaml

                text = yaml.safe_dump(self.spec.config.model_dump(mode="json"), sort_keys=False)
                self._writer.add_text("config", f"```\n{text}```", 0)
                self._writer.add_text("run_id", self.spec.run_id, 0)
        return self._writer

    def log_step(self, step: int, values: dict[str, float]) -> None:
        w = self._open(step)
        for k, v in values.items():
            w.add_scalar(f"train/{k}", v, step)

    def log_final(self, metrics: dict[str, Any], step: int) -> None:
        w = self._open(None)
        for k, v in final_values(metrics).items():
            w.add_scalar(f"final/{k}", v, step)

    def close(self, finished: bool = False) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
