"""Kill `codetune run` with SIGKILL at several points, rerun it, and get what an uninterrupted run gets."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

EXP = """
name: resume
label: "Rank {{lora.r}}"
base:
  model: {{name: "{model}"}}
  data: {{language: python, source: "{source}", train_size: 16, test_size: 6, max_tokens: 200}}
  train: {{epochs: 2, lr: 1.0e-3, batch_size: 4, checkpoint_every: 2}}
  generate: {{max_new_tokens: 16, batch_size: 2}}
  eval: {{benchmark: "{benchmark}", benchmark_max_new_tokens: 16}}
grid:
  lora.r: [2, 4]
"""


def _cmd(exp, out):
    code = f"import sys; from codetune.cli import main; sys.exit(main({['run', str(exp), '--out', str(out), '--no-progress']!r}))"
    return [sys.executable, "-c", code]


def _run(exp, out, env_extra=None):
    env = {**os.environ, "CODETUNE_CACHE": str(out) + "-cache", **(env_extra or {})}
    return subprocess.run(_cmd(exp, out), env=env, capture_output=True, text=True, timeout=600, check=False)


def _outcome(exp_dir):
    with (exp_dir / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    per_run = {}
    for r in rows:
        d = exp_dir / r["run_dir"]
        gens = [json.loads(x)["completion"] for x in (d / "generations.jsonl").read_text().splitlines()]
        loss = json.loads((d / "metrics.json").read_text())["loss_curve"]
        bench = [json.loads(x)["completion"] for x in (d / "benchmark" / "samples.jsonl").read_text().splitlines()]
        per_run[r["Configuration"]] = (gens + bench, loss, r["BLEU"], r["Syntax_Pass_Rate"], r["pass@1"])
    return rows, per_run


@pytest.fixture(scope="module")
def exp_file(tmp_path_factory, tiny_model_dir, make_tree, tiny_benchmark):
    root = tmp_path_factory.mktemp("resume")
    f = root / "resume.yaml"
    f.write_text(EXP.format(model=tiny_model_dir, source=make_tree(root / "pkg"), benchmark=tiny_benchmark))
    return f


@pytest.fixture(scope="module")
def reference(exp_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    p = _run(exp_file, out, {"CODETUNE_CACHE": str(out / "cache")})
    assert p.returncode == 0, p.stderr
    return _outcome(out / "resume")


@pytest.mark.parametrize(
    "kill_at", ["train_step:3", "gen_batch:2", "bench_batch:2", "exec_sample:2", "run_done:1", "train_step:9"]
)
def test_sigkill_then_rerun_gives_the_uninterrupted_result(exp_file, tmp_path, reference, kill_at):
    out = tmp_path / "killed"
    p = _run(exp_file, out, {"CODETUNE_KILL_AT": kill_at})
    assert p.returncode == -signal.SIGKILL, p.stderr
    exp_dir = out / "resume"
    if (exp_dir / "results.csv").exists():  # a killed run never leaves a half-written table
        with (exp_dir / "results.csv").open() as f:
            assert len(list(csv.DictReader(f))) <= len(list(exp_dir.glob("*/metrics.json")))
    p = _run(exp_file, out)
    assert p.returncode == 0, p.stderr
    rows, per_run = _outcome(exp_dir)
    _, ref_runs = reference
    assert [r["Configuration"] for r in rows] == ["Base model", "Rank 2", "Rank 4"]  # no duplicates, none missing
    for label, (gens, loss, bleu, syn, pass1) in per_run.items():
        ref_gens, ref_loss, ref_bleu, ref_syn, ref_pass1 = ref_runs[label]
        assert gens == ref_gens
        assert loss == pytest.approx(ref_loss, rel=1e-4)
        assert (bleu, syn, pass1) == (ref_bleu, ref_syn, ref_pass1)
    if kill_at.startswith("train_step"):
        assert "resumed" in p.stderr or "skipped" in p.stderr
    if kill_at.startswith("exec_sample"):  # the benchmark's execution kept the verdicts made before the kill
        assert "execution resumes: 2 of 3 samples already judged, 1 to run" in p.stderr, p.stderr


def test_external_sigkill_during_training(exp_file, tmp_path, reference):
    """The test itself kills the process as soon as a training checkpoint exists."""
    out = tmp_path / "ext"
    proc = subprocess.Popen(_cmd(exp_file, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    killed = False
    while time.time() < deadline and proc.poll() is None:
        if list((out / "resume").glob("*/checkpoint/state.pt")):
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.005)
    proc.wait()
    p = _run(exp_file, out)
    assert p.returncode == 0, p.stderr
    rows, per_run = _outcome(out / "resume")
    assert [r["Configuration"] for r in rows] == ["Base model", "Rank 2", "Rank 4"]
    for label, (gens, loss, *_rest) in per_run.items():
        assert gens == reference[1][label][0]
        assert loss == pytest.approx(reference[1][label][1], rel=1e-4)
    assert killed or proc.returncode == 0
