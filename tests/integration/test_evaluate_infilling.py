"""`codetune evaluate --infilling` end to end through `main([...])`: canonical middles, given middles, a tiny
model (bare, with a FIM adapter, with a plain adapter), and the bad combinations as one `error:` line."""

from __future__ import annotations

import json

import pytest

from codetune.cli import main
from codetune.evaluation import programs
from codetune.io import read_json, read_jsonl

pytestmark = pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matrices: one thread is faster, and much faster on a machine busy with other work."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _evaluate(bench, out, *extra):
    return main(
        ["evaluate", "--benchmark", str(bench), "--out", str(out), "--no-progress", "--workers", "2", *extra]
    )


def test_canonical_middles_pass_every_item(tiny_benchmark, tmp_path, capsys):
    out = tmp_path / "canon"
    assert _evaluate(tiny_benchmark, out, "--infilling", "single_line", "--canonical") == 0
    line = capsys.readouterr().out.strip()
    assert (
        line.startswith("3 single_line items of 3 tasks: pass@1=1.0000 (100.0%") and "exact match 100.0%" in line
    )
    rows = read_jsonl(out / "results.jsonl")
    assert [r["task_id"] for r in rows] == [f"HumanEval/{i}/single_line/0" for i in range(3)]
    assert all(r["status"] == "passed" for r in rows)
    summary = read_json(out / "summary.json", "summary", "")
    assert summary["infill_kind"] == "single_line" and summary["pass_ci"]["pass@1"] == [100.0, 100.0]


def test_given_middles_are_judged_each_and_matched_exactly(tiny_benchmark, tmp_path, capsys):
    samples = tmp_path / "middles.jsonl"
    rows = [
        {"task_id": "HumanEval/0/single_line/0", "completion": "    return b + a  \n"},  # passes, not exact
        {"task_id": "HumanEval/1/single_line/0", "completion": ""},  # empty: the function returns None
        {"task_id": "HumanEval/2/single_line/0", "completion": "    return 2 * x\n"},  # canonical
    ]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "given"
    assert _evaluate(tiny_benchmark, out, "--infilling", "single_line", "--samples", str(samples)) == 0
    assert "pass@1=0.6667" in capsys.readouterr().out
    statuses = [r["status"] for r in read_jsonl(out / "results.jsonl")]
    assert statuses[0] == "passed" and statuses[1] != "passed" and statuses[2] == "passed"
    summary = read_json(out / "summary.json", "summary", "")
    assert summary["exact_match"] == pytest.approx(1 / 3, abs=1e-6)
    assert summary["exact_match_per_item"] == {
        "HumanEval/0/single_line/0": False,
        "HumanEval/1/single_line/0": False,
        "HumanEval/2/single_line/0": True,
    }


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_bad_combinations_are_one_error_line(tiny_benchmark, tmp_path, capsys):
    args = ("--infilling", "single_line")
    assert _evaluate(tiny_benchmark, tmp_path / "a", *args, "--canonical", "--k", "2") == 2
    assert "--k 2" in _one_error(capsys)
    # the tiny tasks' bodies are one line each: no block of two lines to mask
    assert _evaluate(tiny_benchmark, tmp_path / "b", "--infilling", "multi_line", "--canonical") == 2
    assert "no multi_line infilling items" in _one_error(capsys)
    no_canon = tmp_path / "humaneval_python.jsonl"
    no_canon.write_text(
        json.dumps(
            {"task_id": "Python/0", "prompt": "def f(x):\n", "test": "assert f(1) == 1\n", "entry_point": "f"}
        )
        + "\n"
    )
    assert _evaluate(no_canon, tmp_path / "c", *args, "--canonical") == 2
    assert "canonical solution" in _one_error(capsys)
    stray = tmp_path / "stray.jsonl"
    stray.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "    return a + b\n"}) + "\n")
    assert _evaluate(tiny_benchmark, tmp_path / "d", *args, "--samples", str(stray)) == 2
    assert "not an item of this infilling set" in _one_error(capsys)
    assert _evaluate(tiny_benchmark, tmp_path / "e", *args, "--model", "x", "--n", "2") == 2
    assert "--n 2" in _one_error(capsys)


@pytest.fixture(scope="module")
def fim_adapter(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter trained (by hand) with FIM on the tiny model: its sentinel rows set, its tokenizer saved."""
    import torch

    from codetune.config import LoraConfig, ModelConfig
    from codetune.models import apply_lora, load_base

    loaded = load_base(ModelConfig(name=str(tiny_model_dir)))
    model = apply_lora(loaded.model, LoraConfig(r=4, alpha=8, dropout=0.0), tokenizer=loaded.tokenizer, fim=True)
    torch.manual_seed(3)
    with torch.no_grad():
        for module in model.modules():
            for p in getattr(module, "trainable_tokens_delta", {}).values():
                p.normal_()
    out = tmp_path_factory.mktemp("fim_adapter")
    model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    return out


def test_a_tiny_model_writes_middles_that_are_executed_and_a_rerun_keeps_them(
    tiny_model_dir, tiny_benchmark, tmp_path
):
    out = tmp_path / "model"
    args = ("--infilling", "single_line", "--model", str(tiny_model_dir), "--limit", "2", "--max-new-tokens", "8")
    assert _evaluate(tiny_benchmark, out, *args, "--device", "cpu") == 0
    samples = read_jsonl(out / "samples.jsonl")
    assert [s["task_id"] for s in samples] == ["HumanEval/0/single_line/0", "HumanEval/1/single_line/0"]
    assert all(s["fim_tokens"] == "added_untrained" and s["n_new_tokens"] <= 8 for s in samples)
    summary = read_json(out / "summary.json", "summary", "")
    assert summary["fim_tokens"] == "added_untrained" and summary["n_samples"] == 2
    assert len(read_jsonl(out / "results.jsonl")) == 2
    before = (out / "samples.jsonl").stat().st_mtime_ns
    assert _evaluate(tiny_benchmark, out, *args, "--device", "cpu") == 0
    assert (out / "samples.jsonl").stat().st_mtime_ns == before


def test_adapters_say_whether_their_sentinel_rows_were_trained(
    tiny_model_dir, tiny_benchmark, tiny_adapter_dirs, fim_adapter, tmp_path
):
    common = (
        "--infilling",
        "single_line",
        "--model",
        str(tiny_model_dir),
        "--limit",
        "1",
        "--max-new-tokens",
        "4",
    )
    for name, adapter, status in (
        ("fim", fim_adapter, "trained"),
        ("plain", tiny_adapter_dirs["a"], "added_untrained"),
    ):
        out = tmp_path / name
        assert _evaluate(tiny_benchmark, out, *common, "--adapter", str(adapter), "--device", "cpu") == 0
        assert read_json(out / "summary.json", "summary", "")["fim_tokens"] == status
        assert read_jsonl(out / "samples.jsonl")[0]["fim_tokens"] == status
