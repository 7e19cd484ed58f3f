"""Loading HumanEval and HumanEval-X task files: languages, entry points, and errors with hints."""

from __future__ import annotations

import json

import pytest

from codetune.errors import BenchmarkError
from codetune.evaluation.benchmarks import Task, load_tasks


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS = {
    "python": {
        "task_id": "Python/3",
        "prompt": "def below_zero(ops):\n",
        "declaration": "def below_zero(ops):\n",
        "canonical_solution": "    return False\n",
        "test": "def check(below_zero):\n    pass\n\ncheck(below_zero)\n",
    },
    "java": {
        "task_id": "Java/3",
        "prompt": (
            "import java.util.*;\nclass Solution {\n    /** doc */\n"
            "    public boolean belowZero(List<Integer> operations) {\n"
        ),
        "declaration": (
            "import java.util.*;\nclass Solution {\n    public boolean belowZero(List<Integer> operations) {\n"
        ),
        "canonical_solution": "        return false;\n    }\n}\n",
        "test": "public class Main {}\n",
    },
    "javascript": {
        "task_id": "JavaScript/3",
        "prompt": "/* doc */\nconst belowZero = (operations) => {\n",
        "declaration": "\nconst belowZero = (operations) => {\n",
        "canonical_solution": "  return false\n}\n",
        "test": "console.assert(belowZero([]) === false)\n",
    },
    "cpp": {
        "task_id": "CPP/3",
        "prompt": "#include<vector>\nusing namespace std;\nbool below_zero(vector<int> operations){\n",
        "declaration": "#include<vector>\nusing namespace std;\nbool below_zero(vector<int> operations){\n",
        "canonical_solution": "    return false;\n}\n",
        "test": "int main(){}\n",
    },
}
ENTRY = {"python": "below_zero", "java": "belowZero", "javascript": "belowZero", "cpp": "below_zero"}


@pytest.mark.parametrize("lang", sorted(ROWS))
def test_language_and_entry_point_from_a_humaneval_x_file(tmp_path, lang):
    path = _write(tmp_path / "t.jsonl", [ROWS[lang]])
    (task,) = load_tasks(str(path))
    assert task.language == lang and task.entry_point == ENTRY[lang]
    assert task.canonical_solution == ROWS[lang]["canonical_solution"]
    assert load_tasks(str(path), lang)[0] == task


def test_directory_needs_lang_and_finds_the_file(tmp_path):
    _write(tmp_path / "humaneval_js.jsonl", [ROWS["javascript"]])
    with pytest.raises(BenchmarkError, match="--lang"):
        load_tasks(str(tmp_path))
    assert load_tasks(str(tmp_path), "javascript")[0].task_id == "JavaScript/3"
    (task,) = load_tasks(str(tmp_path), "js")  # the alias on input; the canonical name on the task
    assert task.language == "javascript"
    with pytest.raises(BenchmarkError, match="holds no"):
        load_tasks(str(tmp_path), "java")


def test_ids_without_language_need_lang(tmp_path):
    row = dict(ROWS["python"], task_id="mine/1")
    path = _write(tmp_path / "t.jsonl", [row])
    with pytest.raises(BenchmarkError, match="pass --lang"):
        load_tasks(str(path))
    assert load_tasks(str(path), "py")[0].language == "python"


@pytest.mark.parametrize(
    "bad, match",
    [
        ("{not json\n", "not valid JSON"),
        (json.dumps({"task_id": "Python/1", "prompt": "def f():\n"}) + "\n", "lacks `test`"),
        ("", "no tasks"),
    ],
)
def test_bad_files(tmp_path, bad, match):
    p = tmp_path / "t.jsonl"
    p.write_text(bad)
    with pytest.raises(BenchmarkError, match=match):
        load_tasks(str(p))


def test_unknown_benchmark_and_language():
    with pytest.raises(BenchmarkError, match="unknown benchmark"):
        load_tasks("mbpp")
    with pytest.raises(BenchmarkError, match="unknown language"):
        load_tasks("humaneval", "cobol")


def test_humaneval_from_the_package():
    tasks = load_tasks("humaneval")
    assert len(tasks) == 164 and tasks[0].task_id == "HumanEval/0"
    assert tasks[0].entry_point == "has_close_elements" and tasks[0].language == "python"


def test_a_language_without_execution_is_unavailable(tmp_path):
    from codetune.evaluation.harness import evaluate_samples

    (task,) = load_tasks(str(_write(tmp_path / "t.jsonl", [ROWS["cpp"]])))
    task = Task(**{**task.__dict__, "task_id": "C/3", "language": "c"})  # C has a checker, no runner
    (r,) = evaluate_samples([task], [{"task_id": "C/3", "completion": task.canonical_solution}])
    assert r.status == "unavailable" and "executing c is not supported (python, java, javascript, cpp" in r.detail
