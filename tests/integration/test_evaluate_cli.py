"""`codetune evaluate` end to end through `main([...])`, on task files built here."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from codetune.cli import main
from codetune.evaluation import programs

pytestmark = pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user")

PY_RECORDS = [
    {
        "task_id": f"Python/{i}",
        "prompt": f'def f{i}(x):\n    """x plus {i}."""\n',
        "declaration": f"def f{i}(x):\n",
        "canonical_solution": f"    return x + {i}\n",
        "test": f"\n\ndef check(f{i}):\n    assert f{i}(1) == {1 + i}\n    assert f{i}(-{i}) == 0\n"
        f"\ncheck(f{i})\n",
    }
    for i in range(3)
]
JS_RECORDS = [
    {
        "task_id": "JavaScript/0",
        "prompt": "/* x plus 1 */\nconst inc = (x) => {\n",
        "declaration": "\nconst inc = (x) => {\n",
        "canonical_solution": "  return x + 1\n}\n",
        "test": "const testInc = () => {\n  console.assert(inc(1) === 2)\n}\ntestInc()\n",
    }
]


def _write_gz(path, rows):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_evaluate_writes_results_in_input_order_and_summary(tmp_path, capsys):
    bench = _write_gz(tmp_path / "humaneval_python.jsonl.gz", PY_RECORDS)
    samples = _write(
        tmp_path / "samples.jsonl",
        [
            {"task_id": "Python/2", "completion": "    return x + 2\n"},
            {"task_id": "Python/0", "completion": "    return x + 7\n"},
            {"task_id": "Python/1", "completion": "    import sys; sys.exit(0)\n"},
            {"task_id": "Python/0", "completion": "    return x + 0\n"},
            {"task_id": "Python/1", "completion": "    return x + 1\n"},
            {"task_id": "Python/2", "completion": "    return (\n"},
        ],
    )
    out = tmp_path / "out"
    rc = main(
        [
            "evaluate",
            "--benchmark",
            str(bench),
            "--samples",
            str(samples),
            "--out",
            str(out),
            "--k",
            "1,2",
            "--no-progress",
        ]
    )
    assert rc == 0
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["task_id"], r["status"]) for r in rows] == [
        ("Python/2", "passed"),
        ("Python/0", "failed"),
        ("Python/1", "failed"),
        ("Python/0", "passed"),
        ("Python/1", "passed"),
        ("Python/2", "compile_error"),
    ]
    assert all(r["language"] == "python" for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pass@k"] == {"pass@1": 0.5, "pass@2": 1.0}
    assert summary["status_counts"] == {
        "passed": 3,
        "failed": 2,
        "runtime_error": 0,
        "timeout": 0,
        "compile_error": 1,
        "unavailable": 0,
    }
    assert {"user", "network", "filesystem"} <= set(summary["isolation"])
    assert summary["language"] == "python" and summary["n_tasks"] == 3
    assert "pass@1=0.5000" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_language_comes_from_task_ids_and_canonical_flag(tmp_path):
    bench = _write(tmp_path / "tasks.jsonl", JS_RECORDS)
    out = tmp_path / "out"
    assert main(["evaluate", "--benchmark", str(bench), "--canonical", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["language"] == "javascript" and summary["pass@k"]["pass@1"] == 1.0


@pytest.mark.parametrize(
    "argv_tail, message",
    [
        (["--benchmark", "nope/missing.jsonl"], "benchmark file not found"),
        (["--benchmark", "BENCH", "--lang", "java"], "but --lang is java"),
        (["--benchmark", "BENCH", "--k", "1,5"], "k=5 exceeds"),
        (["--benchmark", "BENCH", "--k", "zero"], "--k"),
        (["--benchmark", "humaneval", "--lang", "js"], "Python only"),
        (["--benchmark", "BENCH", "--samples", "MISSING"], "cannot read samples file"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path, capsys, argv_tail, message):
    bench = _write(tmp_path / "b.jsonl", PY_RECORDS)
    samples = _write(tmp_path / "s.jsonl", [{"task_id": "Python/0", "completion": "    return x\n"}])
    argv = ["evaluate", "--out", str(tmp_path / "o"), "--no-progress"]
    tail = [
        str(bench) if a == "BENCH" else str(tmp_path / "nothing.jsonl") if a == "MISSING" else a for a in argv_tail
    ]
    if "--samples" not in tail:
        tail += ["--samples", str(samples)]
    assert main(argv + tail) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_hub_download_failure_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import huggingface_hub

    def offline(**kw):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    rc = main(
        [
            "evaluate",
            "--benchmark",
            "THUDM/humaneval-x",
            "--lang",
            "java",
            "--canonical",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "cannot download THUDM/humaneval-x (java)" in err and "--benchmark path/to" in err


@pytest.mark.slow
def test_humaneval_canonical_all_pass_and_stubs_none(tmp_path):
    out = tmp_path / "canon"
    assert main(["evaluate", "--benchmark", "humaneval", "--canonical", "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["pass@k"]["pass@1"] == 1.0 and s["status_counts"]["passed"] == 164

    from codetune.evaluation.benchmarks import load_tasks

    stubs = _write(
        tmp_path / "stubs.jsonl",
        [{"task_id": t.task_id, "completion": "    pass\n"} for t in load_tasks("humaneval")],
    )
    out = tmp_path / "stubs"
    assert (
        main(["evaluate", "--benchmark", "humaneval", "--samples", str(stubs), "--out", str(out), "--no-progress"])
        == 0
    )
    s = json.loads((out / "summary.json").read_text())
    assert s["status_counts"]["passed"] == 0 and s["pass@k"]["pass@1"] == 0.0


@pytest.mark.parametrize("mode", ["data", "assert"])
def test_verdict_mode_reaches_the_harness_and_every_result(tmp_path, tiny_benchmark, capsys, mode):
    out = tmp_path / mode
    argv = ["evaluate", "--benchmark", str(tiny_benchmark), "--canonical", "--out", str(out), "--no-progress"]
    assert main([*argv, "--verdict-mode", mode]) == 0
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["status"], r["verdict_mode"]) for r in rows] == [("passed", mode)] * 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict_mode_counts"][mode] == 3
