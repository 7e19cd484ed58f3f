"""`codetune generate` and `codetune evaluate --model` end to end on a tiny model and tiny task files."""

from __future__ import annotations

import json

import pytest

from codetune.cli import main
from codetune.evaluation import programs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user"),
]

JAVA_TASK = {
    "task_id": "Java/0",
    "prompt": "import java.util.*;\n\nclass Solution {\n    public int inc(int x) {\n",
    "declaration": "class Solution {\n    public int inc(int x) {\n",
    "canonical_solution": "        return x + 1;\n    }\n}\n",
    "test": "public class Main {\n    public static void main(String[] args) {\n        Solution s = new Solution();\n"
    "        if (s.inc(1) != 2) throw new AssertionError();\n    }\n}\n",
}
JS_TASK = {
    "task_id": "JavaScript/0",
    "prompt": "/* x plus 1 */\nconst inc = (x) => {\n",
    "declaration": "\nconst inc = (x) => {\n",
    "canonical_solution": "  return x + 1\n}\n",
    "test": "const testInc = () => {\n  console.assert(inc(1) === 2)\n}\ntestInc()\n",
}


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def _gen(model, bench, out, *extra):
    return main(["generate", "--model", str(model), "--benchmark", str(bench), "--out", str(out),
                 "--max-new-tokens", "12", "--batch-size", "2", "--no-progress", *extra])  # fmt: skip


def test_generate_writes_human_eval_samples_and_resumes(tmp_path, tiny_model_dir, tiny_benchmark, capsys):
    out = tmp_path / "gen"
    assert _gen(tiny_model_dir, tiny_benchmark, out) == 0
    samples = _lines(out / "samples.jsonl")
    assert [s["task_id"] for s in samples] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert all({"task_id", "completion", "raw", "stop", "n_new_tokens"} <= set(s) for s in samples)
    assert all(s["stop"] in ("function_end", "eos", "max_new_tokens") and s["n_new_tokens"] <= 12 for s in samples)
    assert "3 samples for 3 tasks" in capsys.readouterr().out
    # Rerun: nothing to do.
    assert _gen(tiny_model_dir, tiny_benchmark, out) == 0
    assert "already generated" in capsys.readouterr().out
    # Killed after its first batch: the partial file is kept and the rest is generated, to the same result.
    (out / "samples.jsonl").unlink()
    first = {**samples[0], "index": 0, "sample": 0, "_elapsed_s": 1.0}
    first["completion"] = first["completion"].rstrip("\n}")  # the stored cut, before the closing braces
    (out / "samples.partial.jsonl").write_text(json.dumps(first) + "\n")
    assert _gen(tiny_model_dir, tiny_benchmark, out) == 0
    assert _lines(out / "samples.jsonl") == samples
    assert not (out / "samples.partial.jsonl").exists()
    # Other settings into the same directory would mix samples: refused, in one line.
    assert _gen(tiny_model_dir, tiny_benchmark, out, "--n", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "other settings" in err[-1] and "generate" in err[-1]


def test_evaluate_model_with_adapter_prints_pass_at_1_with_ci(tmp_path, tiny_model_dir, tiny_benchmark, capsys):
    from transformers import AutoModelForCausalLM

    from codetune.config import LoraConfig
    from codetune.models import apply_lora

    adapter = tmp_path / "adapter"
    apply_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=2)).save_pretrained(adapter)
    out = tmp_path / "ev"
    argv = ["evaluate", "--model", str(tiny_model_dir), "--adapter", str(adapter), "--benchmark",
            str(tiny_benchmark), "--out", str(out), "--max-new-tokens", "12", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("3 tasks, 3 samples: pass@1=") and "95% CI" in line
    summary = json.loads((out / "summary.json").read_text())
    assert summary["adapter"] == str(adapter) and summary["n_tasks"] == 3
    verdicts = _lines(out / "results.jsonl")
    assert summary["pass@k"]["pass@1"] == sum(v["status"] == "passed" for v in verdicts) / 3
    assert json.loads((out / "generation.json").read_text())["adapter"] == str(adapter.resolve())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--adapter", "nowhere"], "--adapter nowhere: no adapter_config.json there"),
        (["--k", "1,2"], "--k 1,2: k=2 exceeds --n 1"),
        (["--n", "0"], "--n 0 must be at least 1"),
        (["--top-p", "1.5"], "--top-p"),
    ],
)
def test_bad_model_options_are_one_error_line(tmp_path, tiny_model_dir, tiny_benchmark, capsys, extra, message):
    argv = ["evaluate", "--model", str(tiny_model_dir), "--benchmark", str(tiny_benchmark), "--out", str(tmp_path)]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: " + message) if message.startswith("--adapter") else message in err[-1]
    assert "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("task", [JAVA_TASK, JS_TASK], ids=["java", "javascript"])
def test_humaneval_x_file_generates_and_executes(tmp_path, tiny_model_dir, task, capsys):
    tool = "javac" if task is JAVA_TASK else "node"
    if programs.toolchain(programs.languages.lookup(tool.replace("javac", "java")).name) is None:
        pytest.skip(f"no {tool}")
    bench = tmp_path / "x.jsonl"
    bench.write_text(json.dumps(task) + "\n")
    out = tmp_path / "ev"
    argv = ["evaluate", "--model", str(tiny_model_dir), "--benchmark", str(bench), "--out", str(out),
            "--max-new-tokens", "8", "--no-progress", "--timeout", "30"]  # fmt: skip
    assert main(argv) == 0
    (sample,) = _lines(out / "samples.jsonl")
    (verdict,) = _lines(out / "results.jsonl")
    # A completion cut at the method's end gets the braces the prompt left open (Java's class).
    code = task["prompt"] + sample["completion"]
    if sample["stop"] == "function_end":
        from codetune.stopping import closing_suffix

        assert closing_suffix(verdict["language"], code, "") == ""
    assert verdict["status"] in programs.STATUSES and verdict["language"] in ("java", "javascript")
    # The canonical solution through the same files passes: the harness, not the model, is under test here.
    assert main(["evaluate", "--canonical", "--benchmark", str(bench), "--out", str(tmp_path / "c")]) == 0
    assert "passed=1" in capsys.readouterr().out
