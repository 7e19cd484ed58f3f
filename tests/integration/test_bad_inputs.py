"""Every bad input ends in one `error:` line that names the file (or key) and the fix: no traceback, exit 2.

Each case builds its bad file under tmp_path and runs `codetune.cli.main([...])` (a subprocess where the
finding is about the process's own stdout). The report cases damage one file of a fabricated experiment.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codetune.cli import main

BINARY = b"\xff\xfe\x00\x01binary\x89PNG\r\n"


def one_error(capsys, status: int) -> str:
    """The single stderr line of a failed command (exit 2, no traceback)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ---------------------------------------------------------------------------------- experiment files


def test_binary_experiment_yaml(tmp_path, capsys):
    f = tmp_path / "exp.yaml"
    f.write_bytes(b"name: x\n" + BINARY)
    line = one_error(capsys, main(["run", str(f), "--dry-run"]))
    assert f"{f}:2:1: not UTF-8 text (byte 0xff" in line and "saved as UTF-8" in line


def test_malformed_yaml_is_one_line_with_its_position(tmp_path, capsys):
    f = tmp_path / "exp.yaml"
    f.write_text("name: x\nbase:\n  lora: {r: [1\n")
    line = one_error(capsys, main(["run", str(f), "--dry-run"]))
    assert f"{f}:4:1: not valid YAML: expected ',' or ']'" in line and line.endswith("fix the YAML syntax there")


@pytest.mark.parametrize("override", ["train.epochs=inf", "train.epochs=.inf", "eval.benchmark_timeout_s=inf"])
def test_infinite_values_are_config_errors(override, capsys):
    line = one_error(capsys, main(["run", "quick", override, "--dry-run"]))
    assert f"`base.{override.split('=')[0]}`: Input should be a finite number" in line


@pytest.mark.parametrize("value", ["nan", "-1"])
def test_nan_and_negative_epochs_are_config_errors(value, capsys):
    line = one_error(capsys, main(["run", "quick", f"train.epochs={value}", "--dry-run"]))
    assert "`base.train.epochs`: Input should be" in line


@pytest.mark.parametrize("override", ["lora.r=true", "data.train_size=true", "seed=false", "lora.alpha=true"])
def test_a_boolean_for_a_number_is_rejected(override, capsys):
    # lora.r=true used to train rank 1.
    line = one_error(capsys, main(["run", "quick", override, "--dry-run"]))
    assert f"`base.{override.split('=')[0]}`:" in line and "not true/false" in line


def test_grid_errors_leave_out_the_whole_config(tmp_path, capsys):
    f = tmp_path / "g.yaml"
    f.write_text("name: g\nbase: {train: {epochs: 1}}\ngrid:\n  lora.r: [0, 4]\n")
    line = one_error(capsys, main(["run", str(f), "--dry-run"]))
    assert "grid axis `lora.r`: Input should be greater than or equal to 1 (got 0)" in line
    assert "{" not in line and "Value error" not in line  # not pydantic's "(got {'name': 'g', ...})"


def test_a_section_given_a_value_names_its_keys(capsys):
    line = one_error(capsys, main(["run", "quick", "lora=8", "--dry-run"]))
    assert "`lora` is a section, not a value" in line and "lora.r=" in line


# ------------------------------------------------------------------------------- accepted, not errors


def test_overrides_may_follow_options(capsys):
    assert main(["run", "quick", "--no-progress", "--dry-run", "lora.r=8", "seed=[1,2]"]) == 0
    out = capsys.readouterr().out
    assert out.count("Rank 8") == 2  # lora.r=8 replaced the axis, seed=[1,2] made one


def test_model_path_is_short_for_model_name(tmp_path, capsys):
    assert main(["run", "quick", "--dry-run", f"model={tmp_path / 'my-model'}"]) == 0
    assert f"no finished run of {tmp_path / 'my-model'}" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- codetune syntax


def test_syntax_on_a_binary_file(tmp_path, capsys):
    f = tmp_path / "s.jsonl"
    f.write_bytes(b'{"id": 1, "code": "x = 1"}\n' + BINARY)
    line = one_error(capsys, main(["syntax", "--lang", "python", str(f)]))
    assert f"{f}:2:1: not UTF-8 text" in line and '{"id": ..., "code": "..."}' in line


def test_syntax_on_an_empty_file_has_nothing_to_check(tmp_path, capsys):
    f = tmp_path / "empty.jsonl"
    f.write_text("\n\n")
    line = one_error(capsys, main(["syntax", "--lang", "python", str(f)]))
    assert "holds no snippets, so there is nothing to check" in line


def _codetune(args: list[str], stdout) -> subprocess.CompletedProcess:
    code = "import sys; from codetune.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120
    )


@pytest.fixture()
def snippets(tmp_path) -> Path:
    f = tmp_path / "s.jsonl"
    f.write_text("".join(json.dumps({"id": i, "code": f"x = {i}"}) + "\n" for i in range(3)))
    return f


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_syntax_into_a_full_device(snippets):
    with open("/dev/full", "w") as full:
        p = _codetune(["syntax", "--lang", "python", str(snippets)], full)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(lines) == 1, p.stderr
    assert lines[0] == (
        "error: no space left on device writing standard output; free space there, or send the output "
        "elsewhere, and rerun"
    )


def test_syntax_into_a_closed_pipe_is_quiet(snippets):
    # Guards what the CLI already did (141, nothing on stderr) now that stdout is flushed inside main.
    read, write = os.pipe()
    os.close(read)
    try:
        p = _codetune(["syntax", "--lang", "python", str(snippets)], write)
    finally:
        os.close(write)
    assert p.returncode == 141 and p.stderr == ""


# ----------------------------------------------------------------------------------- codetune evaluate


def test_binary_benchmark_file(tmp_path, capsys):
    f = tmp_path / "bench.jsonl"
    f.write_bytes(BINARY)
    line = one_error(
        capsys, main(["evaluate", "--benchmark", str(f), "--canonical", "--out", str(tmp_path / "o")])
    )
    assert f"benchmark file {f}:1:1: not UTF-8 text" in line and "HumanEval-format" in line


def test_benchmark_file_holding_a_json_array(tmp_path, capsys, tiny_benchmark):
    f = tmp_path / "bench.jsonl"
    f.write_text(json.dumps([json.loads(x) for x in tiny_benchmark.read_text().splitlines()]) + "\n")
    line = one_error(
        capsys, main(["evaluate", "--benchmark", str(f), "--canonical", "--out", str(tmp_path / "o")])
    )
    assert f"benchmark file {f}:1: an array, not a JSON object (JSON Lines: one object per line)" in line


def test_binary_samples_file(tmp_path, capsys, tiny_benchmark):
    f = tmp_path / "samples.jsonl"
    f.write_bytes(b'{"task_id": "HumanEval/0", "completion": "    return a + b\\n"}\n' + BINARY)
    args = ["evaluate", "--benchmark", str(tiny_benchmark), "--samples", str(f), "--out", str(tmp_path / "o")]
    line = one_error(capsys, main(args))
    assert f"samples file {f}:2:1: not UTF-8 text" in line and "--samples" in line


# ------------------------------------------------------------------------------------- codetune report


def _fabricate():
    path = Path(__file__).parents[1] / "unit" / "reporting" / "_fabricate.py"
    spec = importlib.util.spec_from_file_location("_codetune_fabricate_bad_inputs", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    runs = [("Rank 4", ["good", "stub"], {"lora": {"r": 4}}), ("Rank 16", ["good", "good"], {"lora": {"r": 16}})]
    return _fabricate().make_experiment(
        tmp_path_factory.mktemp("bad") / "exp", runs, grid={"lora.r": [4, 16]}, n_boot=20
    )


@pytest.fixture()
def experiment(finished, tmp_path) -> Path:
    exp = tmp_path / "exp"
    shutil.copytree(finished, exp)
    return exp


def _run_dir(exp: Path) -> Path:
    return next(exp.glob("rank-4-*"))


REPORT_CASES = {
    # name: (file to damage, its new bytes (or bytes to append, for "+"), what the line says)
    "binary metrics.json": ("metrics.json", BINARY, "metrics.json:1:1: not UTF-8 text"),
    "metrics.json a JSON list": ("metrics.json", b"[1, 2]\n", "metrics.json holds an array, not a JSON object"),
    "junk line in generations.jsonl": ("+generations.jsonl", b"junk\n", "generations.jsonl:3: not valid JSON"),
    "binary generations.jsonl": ("+generations.jsonl", BINARY, "generations.jsonl:3:1: not UTF-8 text"),
    "binary config.yaml": ("config.yaml", BINARY, "config.yaml:1:1: not UTF-8 text"),
}


@pytest.mark.parametrize("case", list(REPORT_CASES))
def test_report_on_a_damaged_run_file(experiment, case, capsys):
    name, data, says = REPORT_CASES[case]
    path = _run_dir(experiment) / name.lstrip("+")
    with path.open("ab" if name.startswith("+") else "wb") as f:
        f.write(data)
    line = one_error(capsys, main(["report", str(experiment)]))
    assert says in line and str(path) in line
    # The fix: which file to delete and what then happens (not "rerun", which would skip a finished run).
    assert "; delete " in line and ("is redone from its adapter" in line or "reads the run's settings" in line)


def test_report_on_a_malformed_experiment_yaml(experiment, capsys):
    (experiment / "experiment.yaml").write_text("grid: {lora.r: [4, 16\n")
    line = one_error(capsys, main(["report", str(experiment)]))
    assert "experiment.yaml:2:1: not valid YAML" in line and line.endswith("rerun the experiment to rewrite it")


# ------------------------------------------------------------------------------ disk full in training

EXP = """
name: full
base:
  model: {{name: "{model}"}}
  data: {{language: python, source: "{source}", train_size: 16, test_size: 4, max_tokens: 200}}
  train: {{epochs: 1, batch_size: 4, checkpoint_every: 1}}
  eval: {{benchmark: none}}
baseline: false
"""


def test_disk_full_while_checkpointing_keeps_the_last_checkpoint(
    tmp_path, tiny_model_dir, make_tree, monkeypatch, capsys
):
    import torch

    exp = tmp_path / "full.yaml"
    exp.write_text(EXP.format(model=tiny_model_dir, source=make_tree(tmp_path / "pkg")))
    real_save, saves = torch.save, []

    def save_until_full(obj, f, *args, **kwargs):
        saves.append(obj["step"])
        if len(saves) == 1:
            return real_save(obj, f, *args, **kwargs)
        (open(f, "wb") if isinstance(f, (str, os.PathLike)) else f).write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save_until_full)
    status = main(["run", str(exp), "--out", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err  # the runner's progress lines, then the error
    assert status == 2 and "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    state = next((tmp_path / "runs" / "full").glob("*/checkpoint")) / "state.pt"
    assert errors == [f"error: no space left on device writing {state}; free space and rerun to resume"]
    assert saves == [1, 2]
    assert torch.load(state, weights_only=False)["step"] == 1  # the previous checkpoint, whole
    assert sorted(p.name for p in state.parent.iterdir()) == ["state.pt"]  # no half-written file left
