"""`codetune run --executor ray` on a Ray cluster this test starts on loopback: a head and one more node.

A worker process is SIGKILLed in the middle of a cell's training; Ray reruns the cell's task, the task
resumes from the cell's checkpoint, and results.csv has one row per cell with the run ids and metrics of
a `local` run of the same grid (bit-identical on the tiny fp32 model).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

if os.environ.get("CI"):
    import ray  # noqa: F401  (CI installs it: the test must run there, not skip)
else:
    pytest.importorskip("ray", reason="the Ray executor's tests need ray (pip install 'ray>=2.40')")

# Loopback only: with this, every Ray process (this test's nodes and the driver) takes 127.0.0.1 as the
# node's address instead of the machine's outward one. No usage statistics, no token file in $HOME.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}

# 16 samples in batches of 2 for 4 epochs: 32 steps, a checkpoint every 2, so a kill at the first
# checkpoint lands with most of the training still to do.
EXP = """
name: grid
label: "Rank {{lora.r}}"
baseline: false
base:
  model: {{name: "{model}"}}
  threads: 1
  data: {{language: python, source: "{source}", train_size: 16, test_size: 4, max_tokens: 200}}
  train: {{epochs: 4, lr: 1.0e-3, batch_size: 2, checkpoint_every: 2, workers: 1}}
  generate: {{max_new_tokens: 12, batch_size: 2}}
  eval: {{benchmark: "{benchmark}", benchmark_max_new_tokens: 12, n_boot: 200}}
grid:
  lora.r: [2, 4, 8, 16]
"""
# Columns that measure time or say how the run executed: the only ones a Ray run may change.
TIMING = ("train_time_s", "train_tokens_per_s", "gen_time_s", "benchmark_gen_time_s", "exec_seconds")


@pytest.fixture(scope="module")
def cluster():
    """A Ray head and a second node, one CPU each, on 127.0.0.1; yields the head's address."""
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    c = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        c.add_node(**node)
        yield c.address
    finally:
        c.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def exp_file(tmp_path_factory, tiny_model_dir, make_tree, tiny_benchmark):
    root = tmp_path_factory.mktemp("raygrid")
    f = root / "grid.yaml"
    f.write_text(EXP.format(model=tiny_model_dir, source=make_tree(root / "pkg"), benchmark=tiny_benchmark))
    return f


def _cmd(exp: Path, out: Path, *extra: str) -> list[str]:
    """`codetune run` in a fresh process; it prints, last, which of ray and the trackers it imported."""
    argv = ["run", str(exp), "--out", str(out), "--no-progress", *extra]
    code = (
        "import sys; from codetune.cli import main\n"
        f"code = main({argv!r})\n"
        "print('imported:', sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'mlflow', 'tensorboard'}))\n"
        "sys.exit(code)\n"
    )
    return [sys.executable, "-c", code]


def _env(out: Path) -> dict[str, str]:
    return {**os.environ, **RAY_ENV, "CODETUNE_CACHE": f"{out}-cache"}


def _outcome(exp_dir: Path) -> tuple[list[dict], dict]:
    with (exp_dir / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    per_run = {}
    for r in rows:
        d = exp_dir / r["run_dir"]
        metrics = json.loads((d / "metrics.json").read_text())
        gens = (d / "generations.jsonl").read_text()
        samples = [
            json.loads(x)["completion"] for x in (d / "benchmark" / "samples.jsonl").read_text().splitlines()
        ]
        per_run[r["run_id"]] = (metrics, gens, samples)
    return rows, per_run


def _results_part(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMING and not k.startswith("setting_")}


def _worker_pids(task_name: str) -> list[int]:
    """Ray names a worker process after the task it runs (`ray::<name>`)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if cmdline.startswith(f"ray::{task_name}"):
            pids.append(int(proc.name))
    return pids


def _kill_first_in_training(exp_dir: Path, deadline: float) -> str | None:
    """SIGKILL the worker of the first cell found with a checkpoint and no adapter yet; its run dir name."""
    while time.time() < deadline:
        for state in exp_dir.glob("*/checkpoint/state.pt"):
            run_dir = state.parent.parent
            if (run_dir / "adapter").exists():
                continue
            pids = _worker_pids(f"model:{run_dir.name}")
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                return run_dir.name
        time.sleep(0.01)
    return None


def test_a_killed_worker_is_retried_and_resumes_to_the_local_result(cluster, exp_file, tmp_path):
    ref_out = tmp_path / "local"
    p = subprocess.run(
        _cmd(exp_file, ref_out), env=_env(ref_out), capture_output=True, text=True, timeout=600, check=False
    )
    assert p.returncode == 0, p.stderr
    # The local executor without tracking imports neither Ray nor a tracker.
    assert p.stdout.strip().splitlines()[-1] == "imported: []"
    ref_rows, ref_runs = _outcome(ref_out / "grid")

    out = tmp_path / "ray"
    log = tmp_path / "ray.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            _cmd(exp_file, out, "--ray-address", cluster), env=_env(out), stdout=err, stderr=subprocess.STDOUT
        )
        try:
            killed = _kill_first_in_training(out / "grid", time.time() + 300)
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert proc.returncode == 0, text
    assert killed, f"no cell was caught in training:\n{text}"
    # Ray saw the worker die and reran the task; the rerun resumed from the cell's checkpoint.
    assert "will be retried" in text, text
    assert f"model:{killed}" in text and "model stage resuming from its checkpoint" in text, text
    assert "resumed training from the checkpoint at step" in text, text

    rows, runs = _outcome(out / "grid")
    assert [r["run_id"] for r in rows] == [r["run_id"] for r in ref_rows]  # one row per cell, none twice
    assert len(rows) == 4
    for row, ref in zip(rows, ref_rows):
        assert _results_part(row) == _results_part(ref)
        assert row["setting_executor"] == "ray" and ref["setting_executor"] == "local"
    for run_id, (metrics, gens, samples) in runs.items():
        ref_metrics, ref_gens, ref_samples = ref_runs[run_id]
        assert metrics["loss_curve"] == ref_metrics["loss_curve"]  # bit for bit, the killed cell's too
        assert gens == ref_gens and samples == ref_samples
        assert _results_part(metrics) == _results_part(ref_metrics)
    # The rerun of a finished grid on the cluster skips every cell.
    p = subprocess.run(
        _cmd(exp_file, out, "--ray-address", cluster), env=_env(out), capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("already finished, skipped") == 4


NODE_IN_OWN_MOUNTS = """
import signal, subprocess, sys
subprocess.run(["mount", "-t", "tmpfs", "none", sys.argv[2]], check=True)  # this node sees an empty dir there
import ray._private.node
from ray._private.parameter import RayParams
params = RayParams(
    gcs_address=sys.argv[1], node_ip_address="127.0.0.1", num_cpus=1, num_gpus=0, object_store_memory=80 * 2**20,
    min_worker_port=0, max_worker_port=0, include_log_monitor=False, node_manager_port=0,
)
params.dashboard_agent_listen_port = None
node = ray._private.node.Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("ready", flush=True)
sys.stdin.read()  # until the test closes it; the node's processes go with this one
"""


def test_a_node_that_does_not_share_the_output_dir_stops_the_run_in_one_line(cluster, exp_file, tmp_path):
    """A third node whose file system has another directory at OUT (a tmpfs over it, in a mount
    namespace of its own): the run stops before anything trains, with one error line naming it."""
    if subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False).returncode:
        pytest.skip("needs unshare --mount (root) to give a node a file system of its own")
    out = tmp_path / "out"
    out.mkdir()
    node = subprocess.Popen(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            sys.executable,
            "-c",
            NODE_IN_OWN_MOUNTS,
            cluster,
            str(out),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **RAY_ENV},
    )
    try:
        assert node.stdout.readline().strip() == "ready"
        p = subprocess.run(
            _cmd(exp_file, out, "--ray-address", cluster),
            env=_env(out),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        node.stdin.close()
        node.wait(timeout=60)
    assert p.returncode == 2, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: output directory {out / 'grid'} is not shared by every Ray node (node 127.0.0.1"
    )
    assert "cannot read" in last and "put --out on a file system every Ray node mounts" in last
    assert last.count("node 127.0.0.1") == 1  # the two nodes that share it are not named
    assert "Traceback" not in p.stderr
    assert not list(out.rglob("metrics.json")) and not list(out.rglob("train.jsonl"))
    assert not list((out / "grid").glob(".codetune-shared-probe-*"))  # the probe files are gone


def test_a_cell_that_fails_in_its_task_is_one_error_line(cluster, exp_file, tmp_path):
    """An expected failure inside a task (too little data) comes back as the task's own error line, named by
    its cell; no cell is finished and nothing is retried (only lost workers are)."""
    out = tmp_path / "out"
    argv = ["data.train_size=500", "lora.r=[2, 4]", "--ray-address", cluster]
    p = subprocess.run(_cmd(exp_file, out, *argv), env=_env(out), capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: run Rank 2: asked for 500 training + 4 test samples"), p.stderr
    assert "lower data.train_size" in last and "Traceback" not in p.stderr
    assert "will be retried" not in p.stderr
    assert not list(out.rglob("metrics.json"))
