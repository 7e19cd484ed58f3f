"""Each configuration against its base row: McNemar per benchmark task, paired bootstrap per corpus item;
pass@1 from benchmark/results.jsonl (never 0 when not measured), the error taxonomy and HumanEval+."""

from __future__ import annotations

import csv
import json

import pytest

from codetune.reporting.analysis import load_experiment
from codetune.reporting.baseline import base_differences, match_base
from codetune.reporting.comparison import compare


def _md(exp):
    return (exp / "report.md").read_text(encoding="utf-8")


def _section(md, start, end):
    return md.split(start)[1].split(end)[0]


def _row(text, first):
    """The cells of the table row whose text starts with `first` (one or more leading cells)."""
    line = next(line for line in text.splitlines() if line.startswith(f"| {first}"))
    return [c.strip() for c in line.strip("|").split("|")]


def _diffs(base_exp):
    return {d.config.label: d for d in base_differences(load_experiment(base_exp))}


def test_mcnemar_against_the_base_row_has_the_hand_counts(base_exp):
    d = _diffs(base_exp)
    c16 = d["Rank 16"].comparisons["pass@1"]
    assert d["Rank 16"].base.label == "Base model"
    assert c16.test == "exact McNemar" and c16.discordant == (6, 1)
    assert c16.p_value == pytest.approx(16 / 128) and c16.diff == pytest.approx(50.0) and c16.n == 10
    c4 = d["Rank 4"].comparisons["pass@1"]
    assert c4.discordant == (0, 1) and c4.p_value == 1.0 and c4.diff == pytest.approx(-10.0)
    table = _section(_md(base_exp), "## Differences from the base model", "## Runs")
    rows = [line for line in table.splitlines() if line.startswith("| Rank 16 | Base model | pass@1 %")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[3].startswith("80.00 [") and cells[4].startswith("30.00 [") and cells[5].startswith("+50.00 [")
    assert cells[6:11] == ["6", "1", "0.125", "exact McNemar", "10"]
    assert cells[11] == "not significant at this sample size (n=10)"
    assert "tasks passed only by Rank 16: b=6, only by Base model: c=1" in table


def test_bleu_against_the_base_row_is_paired_over_corpus_items_not_tasks(base_exp):
    d = _diffs(base_exp)["Rank 16"]
    bleu = d.comparisons["BLEU"]
    assert bleu.paired and bleu.test == "paired bootstrap" and bleu.n == 8  # 8 corpus items, 10 tasks
    assert bleu.discordant is None and d.comparisons["CodeBLEU"].n == 8


def test_base_rows_come_first_and_are_not_on_the_grid_axes(base_exp):
    exp = load_experiment(base_exp)
    assert [c.label for c in exp.configs][0] == "Base model" and [c.label for c in exp.bases] == ["Base model"]
    assert exp.axes == ["lora.r"]
    md = _md(base_exp)
    head = _section(md, "## Headline", "## Differences")
    assert [line.split("|")[1].strip() for line in head.splitlines() if line.startswith("| ")][1] == "Base model"
    vs = _section(md, "## Differences from the base model", "## Runs")
    first = next(line for line in vs.splitlines() if line.startswith("| ") and "Configuration" not in line)
    assert first.startswith("| Base model | (itself) | pass@1 %")
    # Pairwise comparisons and the axis walk are among the trained configurations only.
    assert "| Base model |" not in _section(md, "## Pairwise comparisons", "## Error taxonomy")
    assert "Base model" not in _section(md, "### Along lora.r", "## Research questions")


def test_a_run_without_a_benchmark_reports_not_measured_and_why_never_0(base_exp):
    md = _md(base_exp)
    why = "the run has no benchmark stage: it was written before runs executed a benchmark"
    head = _section(md, "## Headline", "## Differences")
    assert _row(head, "Rank 64")[6] == "not measured"
    assert f"pass@1 not measured (never counted as 0) for Rank 64: {why}." in head
    vs = _row(_section(md, "## Differences from the base model", "## Runs"), "Rank 64 | Base model | pass@1 %")
    assert vs[3] == "not measured" and vs[-1] == f"no test: pass@1 not measured, Rank 64: {why}"
    assert _row(_section(md, "## Runs", "## Plots"), "rank-64-")[6] == "not measured"
    tax = _row(_section(md, "## Error taxonomy", "## HumanEval+"), "Rank 64")
    assert tax[-1] == f"not executed: {why}"


def test_an_unavailable_benchmark_reports_its_note(tmp_path, fabricate):
    exp = tmp_path / "java"
    spec = fabricate.make_run(exp, "Rank 4", ["good"] * 4, {"lora": {"r": 4}})
    note = "HumanEval-X java is not available offline: pass eval.benchmark=PATH"
    fabricate.write_no_benchmark(exp / spec.dirname, note)
    from codetune.reporting.report import write_report

    md = write_report(exp)[0].read_text(encoding="utf-8")
    assert _row(_section(md, "## Headline", "## Differences"), "Rank 4")[6] == "not measured"
    assert f"for Rank 4: {note}." in md and "No base-model row in this experiment" in md
    # No pass@1 anywhere: the cost figure shows BLEU, and says so.
    assert "pass@1 was not measured in any run, so BLEU stands in." in md


def test_error_taxonomy_counts_the_categories(base_exp):
    tax = _section(_md(base_exp), "## Error taxonomy", "## HumanEval+")
    header = [c.strip() for c in tax.split("\n| Configuration |")[1].split("\n")[0].strip("|").split("|")]
    assert header[:4] == ["samples", "passed", "syntax_error", "compile_error"]
    cells = dict(zip(["Configuration", *header], _row(tax, "Base model")))
    assert (cells["samples"], cells["passed"], cells["wrong_answer"], cells["syntax_error"]) == (
        "10",
        "3",
        "6",
        "1",
    )
    assert cells["source"] == "results.jsonl"
    r16 = dict(zip(["Configuration", *header], _row(tax, "Rank 16")))
    assert (r16["passed"], r16["wrong_answer"], r16["syntax_error"]) == ("8", "2", "0")


def test_error_taxonomy_falls_back_to_the_metrics_counts(tmp_path, fabricate):
    from codetune.reporting.benchmark import taxonomy

    exp = tmp_path / "tax"
    a = fabricate.make_run(exp, "A", ["good"] * 4, {"lora": {"r": 4}})
    fabricate.write_benchmark(
        exp / a.dirname, ["passed", "timeout", "timeout", "resource_limit"], categories=False
    )
    run = load_experiment(exp).runs[0]
    counts, source = taxonomy([run.bench], [run.metrics])
    assert source == "metrics.json"
    assert (counts["passed"], counts["timeout"], counts["resource_limit"], counts["wrong_answer"]) == (1, 2, 1, 0)


def test_several_samples_per_task_use_per_task_rates_and_no_mcnemar(tmp_path, fabricate):
    exp = tmp_path / "sampled"
    P, W = "passed", "wrong_answer"
    fabricate.make_run(exp, "Base model", ["good"] * 4, {}, [[P, W], [W, W], [W, W], [P, P]], baseline=True)
    fabricate.make_run(exp, "Rank 8", ["good"] * 4, {"lora": {"r": 8}}, [[P, P], [P, W], [W, W], [P, P]])
    e = load_experiment(exp)
    base, r8 = e.configs
    assert r8.runs[0].bench.samples_per_task == 2 and r8.runs[0].metrics["pass@1"] == pytest.approx(62.5)
    assert list(r8.runs[0].stats["pass@1"][:, 0]) == [1.0, 0.5, 0.0, 1.0]
    c = compare(r8, base, "pass@1", e.level, pool_seeds=True)
    assert c.test == "paired bootstrap over tasks (per-task pass rates)" and c.discordant is None
    assert c.diff == pytest.approx(62.5 - 37.5) and c.n == 4


def test_each_language_is_compared_with_its_own_base_row(tmp_path, fabricate):
    P, W = "passed", "wrong_answer"
    runs = []
    for lang, mine in (("python", [P, P, P, W]), ("javascript", [W, W, W, W])):
        runs.append(
            (
                f"Base model ({lang})",
                ["stub"] * 3,
                {"data": {"language": lang}},
                {"baseline": True, "bench": [W, W, P, W]},
            )
        )
        runs.append((f"{lang} r8", ["good"] * 3, {"data": {"language": lang}, "lora": {"r": 8}}, {"bench": mine}))
    e = load_experiment(
        fabricate.make_experiment(tmp_path / "lang", runs, grid={"data.language": ["python", "javascript"]})
    )
    by = {c.label: c for c in e.configs}
    assert match_base(by["python r8"], e.bases).label == "Base model (python)"
    assert match_base(by["javascript r8"], e.bases).label == "Base model (javascript)"
    d = {x.config.label: x.comparisons["pass@1"] for x in base_differences(e)}
    assert d["python r8"].discordant == (2, 0) and d["javascript r8"].discordant == (0, 1)


def test_humaneval_plus_side_by_side(base_exp):
    plus = _section(_md(base_exp), "## HumanEval+", "## Along each axis")
    cells = _row(plus, "Rank 16")
    assert cells[1].startswith("80.00 [") and cells[2].startswith("60.00 [") and cells[3] == "2"
    assert "| Base model |" not in plus  # no HumanEval+ data for it


def test_results_csv_orders_the_new_columns(base_exp):
    with (base_exp / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    h = list(rows[0])
    assert h[:7] == [
        "BLEU",
        "Syntax_Pass_Rate",
        "Configuration",
        "baseline",
        "pass@1",
        "pass@1_ci_low",
        "pass@1_ci_high",
    ]
    assert h.index("CodeBLEU") < h.index("benchmark") < h.index("benchmark_tasks") < h.index("exec_passed")
    assert h.index("exec_missing") < h.index("cat_passed") < h.index("cat_unavailable") < h.index("run_id")
    assert h.index("pass@1_plus") < h.index("benchmark")
    by = {r["Configuration"]: r for r in rows}
    assert by["Rank 64"]["pass@1"] == "" and by["Base model"]["baseline"] == "True"


def test_results_header_puts_pass_at_k_after_the_headline():
    from codetune.reporting.results import results_header

    row = {"BLEU": 1, "Configuration": "x", "pass@10_ci_high": 3, "pass@10": 1, "pass@10_ci_low": 2, "zeta": 0}
    row |= {"pass@1": 5, "cat_timeout": 0, "exec_failed": 1}
    h = results_header([row])
    assert h == ["BLEU", "Syntax_Pass_Rate", "Configuration", "pass@1", "pass@10", "pass@10_ci_low"] + [
        "pass@10_ci_high",
        "exec_failed",
        "cat_timeout",
        "zeta",
    ]


def test_results_png_carries_the_differences_from_the_base_row(base_exp):
    from codetune.reporting.results import _base_deltas

    rows = [
        json.loads((base_exp / d.name / "metrics.json").read_text()) | {"run_dir": d.name}
        for d in base_exp.iterdir()
        if d.is_dir()
    ]
    deltas = _base_deltas(base_exp, rows)
    diff, p = deltas["Rank 16"]["pass@1"]
    assert diff == pytest.approx(50.0) and p == pytest.approx(0.125)
    assert "pass@1" not in deltas["Rank 64"] and "BLEU" in deltas["Rank 64"]
    png = (base_exp / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_seeds_of_a_configuration_are_pooled_against_the_one_greedy_base_row(tmp_path, fabricate):
    P, W = "passed", "wrong_answer"
    exp = tmp_path / "seeds"
    fabricate.make_run(exp, "Base model", ["good"] * 3, {}, [W, W, P, W], baseline=True)
    for seed, tasks in ((0, [P, P, P, W]), (1, [P, W, P, W])):
        fabricate.make_run(exp, "Rank 8", ["good"] * 3, {"lora": {"r": 8}, "seed": seed}, tasks)
    (d,) = base_differences(load_experiment(exp))
    c = d.comparisons["pass@1"]
    assert c.diff == pytest.approx(62.5 - 25.0) and c.discordant is None  # McNemar needs one seed a side
    assert c.test == "paired bootstrap over tasks, tasks pooled over 2 seeds"
    assert d.comparisons["BLEU"].test == "paired bootstrap, items pooled over 2 seeds"
