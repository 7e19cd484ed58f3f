"""Generated tests for Java and JavaScript: call arguments parsed and printed back, seeded mutation, the
canonical solution's guarded runs, and the extra verdict of samples read back from a generated file."""

from __future__ import annotations

import json
import shutil

import pytest

from codetune.errors import BenchmarkError
from codetune.evaluation import mutation, testgen_x
from codetune.evaluation.benchmarks import Task, load_tasks
from codetune.evaluation.harness import evaluate_samples, summarize
from codetune.evaluation.sandbox import Limits
from codetune.evaluation.testcases import to_data
from codetune.evaluation.xsource import (
    Raw,
    Template,
    Unprintable,
    has_raw,
    merge,
    parse_args,
    print_value,
    to_value,
)

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
needs_java = pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None, reason="no JDK")

JS_TASK = Task(
    task_id="JavaScript/0",
    language="javascript",
    prompt="/* The sum of the absolute values of xs, plus n. */\nconst absSum = (xs, n) => {\n",
    canonical_solution="  let s = n;\n  for (const x of xs) s += Math.abs(x);\n  return s;\n}\n",
    test=(
        "const testAbsSum = () => {\n  console.assert(absSum([1, 2, 3], 0) === 6)\n"
        "  console.assert(absSum([5], 1) === 6)\n  console.assert(absSum([], 2) === 2)\n}\ntestAbsSum()\n"
    ),
    entry_point="absSum",
    declaration="\nconst absSum = (xs, n) => {\n",
)
JS_WRONG = (
    "  let s = n;\n  for (const x of xs) s += x;\n  return s;\n}\n"  # right on the test's non-negative lists
)

JAVA_PROMPT = (
    "import java.util.*;\nimport java.lang.*;\n\nclass Solution {\n"
    "    public List<Integer> sortedAbs(List<Integer> xs, String tag) {\n"
)
JAVA_TASK = Task(
    task_id="Java/0",
    language="java",
    prompt=JAVA_PROMPT,
    # sorts its argument in place: the test's `new ArrayList<>(...)` form must survive mutation
    canonical_solution=(
        "        for (int i = 0; i < xs.size(); i++) xs.set(i, Math.abs(xs.get(i)));\n"
        "        Collections.sort(xs);\n        if (tag.isEmpty()) throw new IllegalArgumentException();\n"
        "        return xs;\n    }\n}"
    ),
    test=(
        "public class Main {\n    public static void main(String[] args) {\n        Solution s = new Solution();\n"
        "        List<Boolean> correct = Arrays.asList(\n"
        '                s.sortedAbs(new ArrayList<>(Arrays.asList(3, 1, 2)), "a").equals(Arrays.asList(1, 2, 3)),\n'
        '                s.sortedAbs(new ArrayList<>(Arrays.asList(7)), "b c").equals(Arrays.asList(7))\n'
        "        );\n        if (correct.contains(false)) {\n            throw new AssertionError();\n        }\n"
        "    }\n}"
    ),
    entry_point="sortedAbs",
    declaration=JAVA_PROMPT,
)
JAVA_WRONG = (
    "        Collections.sort(xs);\n        if (tag.isEmpty()) throw new IllegalArgumentException();\n"
    "        return xs;\n    }\n}"
)


# ------------------------------------------------------------------------------------- source <-> values


def _roundtrip(call: str, language: str) -> list[str]:
    args = parse_args(call, language)
    return [text if has_raw(n) else print_value(to_value(n), merge([n]), language) for n, text in args]


def test_java_arguments_parse_into_values_and_print_back_in_their_form():
    call = (
        's.f(new ArrayList<>(Arrays.asList(11.0, -2.5)), Arrays.asList(), "q\\"\\n\\u00e9", 5L, -3, 2.5f, '
        "new int[] {1, 2}, Map.of(\"a\", 1), List.of(List.of(1), List.of()), Optional.of(3), null, 'c', 1 + 2)"
    )
    values = [to_value(n) if not has_raw(n) else n for n, _ in parse_args(call, "java")]
    assert values[:9] == [[11.0, -2.5], [], 'q"\né', 5, -3, 2.5, [1, 2], {"a": 1}, [[1], []]]
    assert values[9:] == [Raw("Optional.of(3)"), Raw("null"), Raw("'c'"), Raw("1 + 2")]
    assert _roundtrip(call, "java") == [
        "new ArrayList<>(Arrays.asList(11.0, -2.5))", "Arrays.asList()", '"q\\"\\n\\351"', "5L", "-3", "2.5f",
        "new int[]{1, 2}", 'Map.of("a", 1)', "List.of(List.of(1), List.of())", "Optional.of(3)", "null", "'c'",
        "1 + 2",
    ]  # fmt: skip


def test_js_arguments_parse_into_values_and_print_back():
    call = "f([1.0, 2, -3], 'ab\\'c', {a: 1, 'b c': [true, false]}, null, Math.pow(2, 3), `t`)"
    values = [to_value(n) if not has_raw(n) else n for n, _ in parse_args(call, "javascript")]
    assert values == [
        [1.0, 2, -3],
        "ab'c",
        {"a": 1, "b c": [True, False]},
        Raw("null"),
        Raw("Math.pow(2, 3)"),
        "t",
    ]
    assert _roundtrip(call, "javascript")[:3] == ["[1.0, 2, -3]", '"ab\'c"', '{"a": 1, "b c": [true, false]}']


def test_printing_keeps_java_literal_kinds_and_refuses_what_the_language_cannot_hold():
    doubles = merge(parse_args("s.f(Arrays.asList(1.5))", "java")[0][:1])
    assert print_value([2, -1], doubles, "java") == "Arrays.asList(2.0, -1.0)"  # a List<Double> stays one
    ints = Template("lit", frozenset({"int"}))
    assert print_value(2**31 - 1, ints, "java") == str(2**31 - 1)
    assert print_value(2**40, ints, "java", declared="long") == f"{2**40}L"
    for bad, lang in (
        (2**31, "java"),
        (2**60, "javascript"),
        (float("inf"), "java"),
        (float("nan"), "javascript"),
    ):
        with pytest.raises(Unprintable):
            print_value(bad, ints, lang)
    with pytest.raises(Unprintable):
        print_value([1], ints, "java")  # a list where the seeds have a number
    # Java reads \uXXXX before lexing: a quote or line break must never be written that way
    assert print_value('"\n\\\x01€😀', Template("lit", frozenset({"str"})), "java") == (
        '"\\"\\n\\\\\\001\\u20ac\\ud83d\\ude00"'
    )


def test_generated_calls_are_seeded_keep_types_and_pass_kept_arguments_unchanged():
    task = Task(
        "JavaScript/1", "javascript", "const g = (xs, s, o) => {\n",
        "const t = () => {\n  console.assert(g([1, 2], 'ab', null) === 1)\n  console.assert(g([], 'b', null) === 2)\n}\n",
        "g", canonical_solution="  return 1;\n}\n",
    )  # fmt: skip
    seeds = testgen_x.seeds_of(task, to_data(task))
    first = testgen_x.generate(task, seeds, count=30, seed=0)
    assert first == testgen_x.generate(task, seeds, count=30, seed=0)
    assert first != testgen_x.generate(task, seeds, count=30, seed=1)
    assert len(first) == len(set(first)) == 30
    for call in first:
        nodes = parse_args(call, "javascript")
        assert nodes[2][1] == "null"
        xs, s = to_value(nodes[0][0]), to_value(nodes[1][0])
        assert isinstance(xs, list) and all(type(x) is int for x in xs) and isinstance(s, str)
        assert (xs, s) not in (([1, 2], "ab"), ([], "b"))  # the seeds themselves are not proposed


def test_tasks_without_parsed_calls_say_why():
    task = Task(
        "JavaScript/2",
        "javascript",
        "const h = (x) => {\n",
        "const t = () => {\n  let a = 3\n  console.assert(h(a) === 1)\n}\n",
        "h",
    )
    assert "test is not parsed" in testgen_x.augment_task(task, per_task=5, seed=0).skipped
    frozen = Task("JavaScript/3", "javascript", "const h = (x) => {\n", "console.assert(h(null) === 1)\n", "h")
    assert "no argument" in testgen_x.seeds_of(frozen, to_data(frozen))


# ------------------------------------------------------------------------------------------- sandbox


@needs_node
def test_js_canonical_runs_drop_calls_that_throw_hang_or_return_too_much_and_keep_the_rest():
    task = Task(
        "JavaScript/4", "javascript", "const k = (x) => {\n", "console.assert(k(1) === 1)\n", "k",
        canonical_solution=(
            "  if (x === 0) throw new Error('zero');\n  while (x === -1) {}\n"
            "  if (x === 5) return new Array(10 ** 6).fill(1);\n  return [x, {a: x}];\n}\n"
        ),
    )  # fmt: skip
    calls = ["k(2)", "k(0)", "k(5)", "k(-1)", "k(3)"]
    kept, note = testgen_x.canonical_results(task, calls, Limits(wall_s=5, cpu_s=5))
    assert sorted(kept) == [0, 4]
    assert kept[4][0] == {"v": [3, {"o": [["a", 3]]}]}
    assert note == "1 threw or did not compile, 1 hung or crashed, 1 result too large"


@needs_java
def test_java_calls_that_do_not_compile_are_dropped_by_line():
    calls = [
        's.sortedAbs(new ArrayList<>(Arrays.asList(-2, 1)), "x")',
        "s.sortedAbs(5, 6)",
        's.sortedAbs(new ArrayList<>(Arrays.asList(4)), "")',
    ]
    kept, note = testgen_x.canonical_results(JAVA_TASK, calls)
    assert list(kept) == [0] and kept[0][0] == {"v": [1, 2]}
    assert note == "2 threw or did not compile"  # the second does not compile, the third throws


def _file(tmp_path, rows) -> str:
    path = tmp_path / "extra.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _verdicts(tmp_path, task: Task, wrong: str, per_task: int):
    rows, skipped = testgen_x.augment([task], per_task=per_task, seed=0, source="test")
    assert skipped == {}
    (row,) = rows
    assert row["input_form"] == "source" and row["generator"]["name"] == "codetune.testgen_x"
    assert 0 < len(row["plus_input"]) <= per_task and len(row["base_input"]) == len(to_data(task).checks)
    (loaded,) = load_tasks(_file(tmp_path, rows))
    assert loaded.plus.plus_inputs == row["plus_input"] and loaded.prompt == task.prompt
    samples = [{"task_id": task.task_id, "completion": c} for c in (task.canonical_solution, wrong)]
    return row, evaluate_samples([loaded], samples, workers=2)


@needs_node
def test_js_generated_file_canonical_passes_and_an_edge_case_bug_fails(tmp_path):
    row, (canon, wrong) = _verdicts(tmp_path, JS_TASK, JS_WRONG, per_task=20)
    assert canon.passed and canon.plus_status == "passed"
    assert wrong.passed and wrong.plus_status == "failed" and wrong.plus_detail.startswith("extra call ")
    summary = summarize([canon, wrong])
    assert summary["pass@k_plus"]["pass@1_plus"] == 0.5 and summary["base_pass_plus_fail"] == 1


@needs_java
@pytest.mark.slow
def test_java_generated_file_keeps_mutable_lists_and_rejects_the_edge_case_bug(tmp_path):
    row, (canon, wrong) = _verdicts(tmp_path, JAVA_TASK, JAVA_WRONG, per_task=10)
    assert all(c.startswith("s.sortedAbs(new ArrayList<>(") for c in row["plus_input"])
    assert canon.passed and canon.plus_status == "passed"
    assert wrong.passed and wrong.plus_status == "failed" and "extra call" in wrong.plus_detail


def test_augment_refuses_python_tasks_and_bad_counts():
    py = Task("HumanEval/0", "python", "def f(x):\n", "def check(c):\n    assert c(1) == 1\n", "f")
    with pytest.raises(ValueError, match="python"):
        testgen_x.augment([py])
    with pytest.raises(ValueError, match="per_task"):
        testgen_x.augment([JS_TASK], per_task=0)
    assert mutation.VERSION >= 1


def test_a_generated_file_attaches_to_the_benchmark_tasks_as_extra_tests(tmp_path):
    from codetune.evaluation.testgen import attach_extra_tests

    out = testgen_x.Outcome(["absSum([1, 2, 3], 0)"], ["absSum([-1], 0)", "absSum([2, -3], 1)"], 0.0, None)
    path = _file(tmp_path, [testgen_x.record(JS_TASK, out, seed=3, per_task=2, source="x")])
    (task,), kind = attach_extra_tests([JS_TASK], path)
    assert task.plus.plus_inputs == ["absSum([-1], 0)", "absSum([2, -3], 1)"] and task.plus.atol == 0.0
    assert kind == "generated tests (2 per task, seed 3)"
    bad = {**testgen_x.record(JS_TASK, out, seed=3, per_task=2, source="x"), "plus_input": [["absSum"]]}
    with pytest.raises(BenchmarkError, match="source text of Java/JavaScript calls"):
        load_tasks(_file(tmp_path, [bad]))
