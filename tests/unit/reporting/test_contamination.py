"""The report's contamination section: counts per run from contamination.json, flagged items listed once
with the configurations that held them, runs without a check said to be unchecked, base rows left out."""

from __future__ import annotations

from pathlib import Path

from codetune.data.contamination import run_check, write_check
from codetune.data.records import CodeSample
from codetune.evaluation.benchmarks import Task
from codetune.experiments.benchmark import Benchmark

TASK = Task(
    "HumanEval/0",
    "python",
    'def count_vowels(s):\n    """Count the vowels of s, y included only at the end."""\n',
    "",
    "count_vowels",
    canonical_solution="    n = sum(c in 'aeiouAEIOU' for c in s)\n    if s and s[-1] in 'yY':\n        n += 1\n"
    "    return n\n",
)
COPY = CodeSample(
    "copy",
    "python",
    "def cv(word):\n",
    "    k = sum(ch in 'aeiouAEIOU' for ch in word)\n"
    "    if word and word[-1] in 'yY':\n        k += 1\n    return k\n",
    "lib/vowels.py",
    12,
    "cv",
)
CLEAN = CodeSample(
    "clean", "python", "def mean(xs):\n", "    return sum(xs) / len(xs)\n", "lib/stats.py", 3, "mean"
)


def _experiment(tmp_path: Path, fabricate) -> Path:
    runs = [
        ("Base model", ["stub"] * 4, {}, {"baseline": True}),
        ("Rank 4", ["good"] * 4, {"lora": {"r": 4}}),
        ("Rank 16", ["good"] * 4, {"lora": {"r": 16}}),
        ("Rank 64", ["good"] * 4, {"lora": {"r": 64}}),
    ]
    exp = fabricate.make_experiment(tmp_path / "rank", runs, grid={"lora.r": [4, 16, 64]})
    bench = Benchmark("tiny", [TASK])
    for r, decontaminate in ((4, False), (16, True)):  # Rank 64 predates the check
        run_dir = next(d for d in exp.iterdir() if d.name.startswith(f"rank-{r}-"))
        write_check(run_dir, run_check([CLEAN, COPY], [], bench, decontaminate))
    return exp


def test_section_counts_lists_and_says_what_was_not_checked(tmp_path, fabricate):
    from codetune.reporting.analysis import load_experiment
    from codetune.reporting.contamination import contamination_section

    exp_dir = _experiment(tmp_path, fabricate)
    blocks = contamination_section(exp_dir, load_experiment(exp_dir))
    i = blocks.index(("h2", "Contamination check"))
    about, table = blocks[i + 1][1], blocks[i + 2]
    assert "13-token windows" in about and "flagged from 0.50" in about and "128 permutations" in about
    rows = {r[1]: r for r in table[2]}
    assert "Base model" not in rows
    assert rows["Rank 4"][2:] == ["tiny (1 tasks)", "2", "1 (1)", "0 (0)", "off"]
    assert rows["Rank 16"][2:] == ["tiny (1 tasks)", "2", "1 (1)", "0 (0)", "1"]
    assert rows["Rank 64"][2] == "not checked (the run predates the check)"
    assert blocks[i + 3] == ("h3", "Flagged training items")
    flagged = blocks[i + 4][2]
    assert {(r[0], r[1]) for r in flagged} == {("cv (lib/vowels.py:12)", "benchmark HumanEval/0 (count_vowels)")}
    solution = next(r for r in flagged if r[2] == "solution")
    assert solution[3] == "ngram" and solution[4] == "1.00" and int(solution[5]) > 0
    assert solution[6] == "Rank 4, Rank 16" and solution[7] == "Rank 16"  # dropped where decontaminate was on


def test_runs_without_any_check_get_one_line_in_the_report(base_exp):
    md = (base_exp / "report.md").read_text()
    section = md.split("## Contamination check", 1)[1].split("\n## ", 1)[0]
    assert section.strip() == "No run recorded a contamination check (the runs predate it): not checked."
