"""The benchmark stage a run and the generate/evaluate commands share: which benchmark, its columns."""

import json

import pytest

from codetune.errors import BenchmarkError
from codetune.experiments.benchmark import (
    Benchmark,
    benchmark_metrics,
    default_benchmark,
    execute_samples,
    resolve_benchmark,
)
from codetune.rundir import BenchmarkDir
from codetune.stopping import closing_suffix


def test_defaults_per_language():
    assert default_benchmark("python") == "humaneval"
    assert default_benchmark("java") == default_benchmark("javascript") == "THUDM/humaneval-x"
    assert default_benchmark("c") is None  # no benchmark covers C


def test_auto_humaneval_is_offline_and_limit_takes_the_first_tasks():
    bench = resolve_benchmark("auto", "python", limit=5)
    assert bench.name == "humaneval" and bench.available and bench.note is None
    assert [t.task_id for t in bench.tasks] == [f"HumanEval/{i}" for i in range(5)]


def test_auto_default_unavailable_offline_is_a_note_not_an_error(monkeypatch):
    import codetune.evaluation.benchmarks as b

    def offline(language):
        raise BenchmarkError("cannot download THUDM/humaneval-x (java): OSError", "pass a local file")

    monkeypatch.setattr(b, "_from_hub", offline)
    bench = resolve_benchmark("auto", "java")
    assert not bench.available and bench.note.startswith("unavailable: cannot download")
    assert resolve_benchmark("auto", "c").note == "no benchmark covers c (eval.benchmark=auto)"
    assert resolve_benchmark("none", "python").note == "not run (eval.benchmark=none)"
    # An explicit benchmark that cannot load stops the experiment: a typo is not "unavailable".
    with pytest.raises(BenchmarkError, match="not found"):
        resolve_benchmark("no/such/file.jsonl", "python")


def test_unmeasured_pass_at_1_is_none_never_zero():
    m = benchmark_metrics(Benchmark("x", None, "unavailable: offline"), None, 1)
    assert m["pass@1"] is None and m["pass@1_ci_low"] is None
    assert m["benchmark_note"] == "unavailable: offline" and m["benchmark_tasks"] == 0


def test_execute_writes_verdicts_and_percent_pass_at_1_with_ci(tmp_path, tiny_benchmark):
    from codetune.evaluation.benchmarks import load_tasks

    tasks = load_tasks(str(tiny_benchmark))
    samples = [
        {"task_id": tasks[0].task_id, "completion": tasks[0].canonical_solution, "sample": 0, "n_new_tokens": 5},
        {"task_id": tasks[1].task_id, "completion": "    return x\n", "sample": 0, "n_new_tokens": 4},
        {"task_id": tasks[2].task_id, "completion": "    return (\n", "sample": 0, "n_new_tokens": 3},
    ]
    bdir = BenchmarkDir(tmp_path / "b")
    summary = execute_samples(tasks, samples, bdir, progress=False, extra={"benchmark": "tiny"})
    rows = [json.loads(x) for x in bdir.results.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["passed", "failed", "compile_error"]
    assert rows[0]["bleu_stats"][0] > 0 and rows[0]["n_new_tokens"] == 5
    m = benchmark_metrics(Benchmark("tiny", tasks), summary, 1)
    assert m["pass@1"] == pytest.approx(100 / 3, abs=1e-3)
    assert 0.0 <= m["pass@1_ci_low"] <= m["pass@1"] <= m["pass@1_ci_high"] <= 100.0
    assert (m["exec_passed"], m["exec_failed"], m["exec_compile_error"], m["benchmark_tasks"]) == (1, 1, 1, 3)
    # Done is done: a second call reads the summary rather than executing again.
    bdir.results.write_text("")
    assert execute_samples(tasks, samples, bdir, progress=False)["pass@k"] == summary["pass@k"]


def test_an_interrupted_execution_keeps_its_verdicts_and_redoes_only_changed_or_missing_ones(
    tmp_path, tiny_benchmark, monkeypatch
):
    from codetune import faults
    from codetune.evaluation import harness
    from codetune.evaluation.benchmarks import load_tasks

    tasks = load_tasks(str(tiny_benchmark))
    samples = [{"task_id": t.task_id, "completion": t.canonical_solution} for t in tasks]
    bdir = BenchmarkDir(tmp_path / "b")
    calls = []

    def interrupt_at_second(point):
        calls.append(point)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as Ctrl-C would, after the second verdict was appended

    monkeypatch.setattr(faults, "checkpoint", interrupt_at_second)
    with pytest.raises(KeyboardInterrupt):
        execute_samples(tasks, samples, bdir, workers=1, progress=False)
    kept = bdir.read_partial_results()
    assert len(kept) == 2 and not bdir.results.exists() and not bdir.is_executed()
    monkeypatch.setattr(faults, "checkpoint", lambda point: None)

    judged = []
    real = harness.evaluate_one
    monkeypatch.setattr(harness, "evaluate_one", lambda t, c, **kw: judged.append(t.task_id) or real(t, c, **kw))
    changed = kept[0]["index"]
    samples[changed] = {**samples[changed], "completion": "    return None\n"}  # its verdict no longer holds
    lines = []
    summary = execute_samples(tasks, samples, bdir, workers=1, progress=False, log=lines.append)
    missing = ({0, 1, 2} - {r["index"] for r in kept}).pop()
    assert sorted(judged) == sorted([tasks[changed].task_id, tasks[missing].task_id])
    assert summary["exec_resumed"] == 1 and lines == [
        "  execution resumes: 1 of 3 samples already judged, 2 to run"
    ]
    rows = bdir.read_results()
    assert [r["index"] for r in rows] == [0, 1, 2] and rows[changed]["status"] == "failed"
    assert not bdir.results_partial.exists()


def test_closing_suffix_closes_what_the_prompt_left_open():
    prompt = "class Solution {\n    public int f(int x) {\n"
    assert closing_suffix("java", prompt, "        return x;\n    }") == "\n}"
    assert closing_suffix("java", prompt, "        return x;\n    }\n}") == ""
    assert closing_suffix("javascript", "const f = (x) => {\n", "  return '}';\n}") == ""
    assert closing_suffix("python", "def f(x):\n", "    return x\n") == ""
