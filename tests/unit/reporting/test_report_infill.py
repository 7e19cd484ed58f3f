"""The report's infilling section: infilling pass@1 per configuration and against the base model, and the
FIM rates compared on left-to-right and infilling pass@1, paired per task / per item (exact McNemar with
hand-counted discordant pairs); results.csv's infilling columns; runs without infilling unchanged."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from codetune.config import ExperimentConfig, dump_yaml
from codetune.reporting.analysis import load_experiment
from codetune.reporting.baseline import base_differences
from codetune.reporting.comparison import compare

P, W, S = "passed", "wrong_answer", "syntax_error"
# Ten benchmark tasks (left to right) and ten infilling items per run.
LEFT = {
    "base": [P, P, W, W, W, W, W, W, W, W],
    0.0: [P, P, P, P, W, W, W, W, W, W],
    0.5: [P, P, P, W, W, W, W, W, W, W],  # vs rate 0: b=0, c=1 -> p=1
    0.9: [P, W, W, W, W, W, W, W, W, W],  # vs rate 0: b=0, c=3 -> p=0.25
}
INFILL = {
    "base": [1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    0.0: [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
    0.5: [1, 1, 0, 1, 1, 1, 1, 1, 1, 0],  # vs rate 0: b=6 (items 3-8), c=1 (item 2) -> p=16/128
    0.9: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # vs rate 0: b=7, c=0 -> p=2/128; vs 0.5: b=2, c=0 -> p=0.5
}
EXACT = {"base": [0] * 10, 0.0: [1, 0, 1] + [0] * 7, 0.5: [1] * 4 + [0] * 6, 0.9: [1] * 8 + [0] * 2}
ITEM_IDS = [f"HumanEval/{i // 2}/single_line/{i % 2}" for i in range(10)]
TOKENS = {"base": "added_untrained", 0.0: "added_untrained", 0.5: "trained", 0.9: "trained"}


def write_infilling(run_dir: Path, passed: list[int], exact: list[int], fim_tokens: str) -> None:
    """Give a finished run an infilling stage as the runner writes it: infilling/results.jsonl (one
    verdict per item), summary.json (exact match per item) and the metrics.json columns."""
    from codetune.stats.bootstrap import bootstrap_ci

    d = Path(run_dir) / "infilling"
    d.mkdir()
    rows = [
        {"index": i, "task_id": t, "language": "python", "status": "passed" if ok else "failed", "sample": 0}
        for i, (t, ok) in enumerate(zip(ITEM_IDS, passed))
    ]
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    per_item = {t: bool(e) for t, e in zip(ITEM_IDS, exact)}
    (d / "summary.json").write_text(json.dumps({"exact_match_per_item": per_item, "infill_n": len(rows)}))
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    lo, hi = bootstrap_ci([100.0 * x for x in passed], n_boot=200, alpha=0.05, seed=0)
    metrics |= {
        "infill_kind": "single_line",
        "infill_n": len(rows),
        "infill_tasks": 5,
        "fim_tokens": fim_tokens,
        "infill_pass@1": 100.0 * sum(passed) / len(passed),
        "infill_pass@1_ci_low": lo,
        "infill_pass@1_ci_high": hi,
        "infill_exact_match": 100.0 * sum(exact) / len(exact),
        "infill_note": None,
    }
    (Path(run_dir) / "metrics.json").write_text(json.dumps(metrics, indent=1))


def fim_experiment(fabricate, exp_dir: Path, unmeasured: bool = False) -> Path:
    """A base row and FIM rates 0, 0.5, 0.9 (grid data.fim_rate), each with both benchmarks; `unmeasured`:
    rate 0.9's infilling recorded as not measured (its benchmark unavailable)."""
    from codetune.reporting.results import write_results

    infill = {"eval": {"infilling": "single_line", "infilling_limit": 5}}
    kinds = ["good"] * 4 + ["stub"] * 2
    specs = [fabricate.make_run(exp_dir, "Base model", kinds, infill, LEFT["base"], baseline=True)]
    write_infilling(Path(exp_dir) / specs[0].dirname, INFILL["base"], EXACT["base"], TOKENS["base"])
    for rate in (0.0, 0.5, 0.9):
        spec = fabricate.make_run(
            exp_dir, f"FIM rate {rate}", kinds, {"data": {"fim_rate": rate}, **infill}, LEFT[rate]
        )
        specs.append(spec)
        run_dir = Path(exp_dir) / spec.dirname
        if unmeasured and rate == 0.9:
            metrics = json.loads((run_dir / "metrics.json").read_text())
            metrics |= {"infill_kind": "single_line", "infill_n": 0, "infill_pass@1": None}
            metrics |= {"infill_note": "unavailable: no tasks here", "fim_tokens": None}
            (run_dir / "metrics.json").write_text(json.dumps(metrics))
        else:
            write_infilling(run_dir, INFILL[rate], EXACT[rate], TOKENS[rate])
    exp = ExperimentConfig(name=Path(exp_dir).name, grid={"data.fim_rate": [0.0, 0.5, 0.9]})
    (Path(exp_dir) / "experiment.yaml").write_text(dump_yaml(exp), encoding="utf-8")
    write_results(exp_dir, specs)
    return Path(exp_dir)


@pytest.fixture(scope="module")
def fim_exp(tmp_path_factory, fabricate):
    from codetune.reporting.report import write_report

    exp = fim_experiment(fabricate, tmp_path_factory.mktemp("fim") / "fim")
    write_report(exp)
    return exp


def _section(exp: Path) -> str:
    md = (exp / "report.md").read_text(encoding="utf-8")
    return md.split("## Infilling\n")[1].split("\n## ")[0]


def _row(text: str, *first: str) -> list[str]:
    """The cells of the one table row that starts with the cells `first`."""
    start = "| " + " | ".join(first) + " |"
    (line,) = [line for line in text.splitlines() if line.startswith(start)]
    return [c.strip() for c in line.strip("|").split("|")]


def _configs(exp):
    return {c.label: c for c in load_experiment(exp).configs}


def test_infilling_is_paired_per_item_with_hand_counted_mcnemar(fim_exp):
    c = _configs(fim_exp)
    cmp = compare(c["FIM rate 0.5"], c["FIM rate 0.0"], "infill_pass@1")
    assert cmp.test == "exact McNemar" and cmp.discordant == (6, 1) and cmp.n == 10
    assert cmp.p_value == pytest.approx(16 / 128) and cmp.diff == pytest.approx(50.0)
    cmp = compare(c["FIM rate 0.9"], c["FIM rate 0.0"], "infill_pass@1")
    assert cmp.discordant == (7, 0) and cmp.p_value == pytest.approx(2 / 128) and cmp.significant
    # left to right the same configurations are paired per benchmark task
    cmp = compare(c["FIM rate 0.9"], c["FIM rate 0.0"], "pass@1")
    assert cmp.discordant == (0, 3) and cmp.p_value == pytest.approx(0.25) and cmp.diff == pytest.approx(-30.0)


def test_section_table_per_configuration(fim_exp):
    text = _section(fim_exp).split("### ")[0]
    base = _row(text, "Base model")
    assert base[1:4] == ["-", "added, untrained (mean of the other rows)", "10"]
    assert base[4].startswith("10.00 [") and base[5].startswith("0.00") and base[6].startswith("20.00 [")
    r09 = _row(text, "FIM rate 0.9")
    assert r09[1:4] == ["0.9", "trained (the adapter's rows)", "10"]
    assert r09[4].startswith("100.00") and r09[5].startswith("80.00 [") and r09[6].startswith("10.00 [")
    assert _row(text, "FIM rate 0.0")[1] == "0"


def test_fim_rates_compared_on_both_metrics_higher_rate_first(fim_exp):
    text = _section(fim_exp)
    cells = _row(text, "FIM rate 0.9", "FIM rate 0.0", "infilling pass@1 %")
    assert cells[5].startswith("+70.00 [") and cells[6:11] == ["7", "0", "0.016", "exact McNemar", "10"]
    assert cells[11] == "significant"
    cells = _row(text, "FIM rate 0.9", "FIM rate 0.0", "left-to-right pass@1 %")
    assert cells[5].startswith("-30.00 [") and cells[6:11] == ["0", "3", "0.250", "exact McNemar", "10"]
    assert cells[11] == "not significant at this sample size (n=10)"
    cells = _row(text, "FIM rate 0.9", "FIM rate 0.5", "infilling pass@1 %")
    assert cells[6:9] == ["2", "0", "0.500"]
    cells = _row(text, "FIM rate 0.5", "FIM rate 0.0", "infilling pass@1 %")
    assert cells[6:9] == ["6", "1", "0.125"]
    # no pair is listed twice or the other way round
    assert not [line for line in text.splitlines() if line.startswith("| FIM rate 0.0 | FIM rate 0.5 |")]
    # and each configuration against the base model: infilling 0.9 vs base b=9, c=0 -> p=2/512
    cells = _row(text, "FIM rate 0.9", "Base model", "infilling pass@1 %")
    assert cells[6:9] == ["9", "0", "0.004"]
    assert "infilling pass@1 %: FIM rate 0.9 − FIM rate 0.0 = +70.00" in text


def test_base_section_and_headline_carry_infilling(fim_exp):
    diffs = {d.config.label: d for d in base_differences(load_experiment(fim_exp))}
    cmp = diffs["FIM rate 0.5"].comparisons["infill_pass@1"]
    assert diffs["FIM rate 0.5"].base.label == "Base model"  # matched although data.fim_rate differs
    assert cmp.discordant == (7, 0) and cmp.test == "exact McNemar"
    md = (fim_exp / "report.md").read_text(encoding="utf-8")
    head = md.split("## Headline")[1].split("\n## ")[0]
    assert "infilling pass@1 %" in head
    assert "Infilling pass@1 is over infilling items (single_line infilling (10 items))" in md
    runs = md.split("## Runs")[1].split("\n## ")[0]
    assert "infilling pass@1 % [CI]" in runs


def test_results_csv_has_the_infilling_columns_after_the_benchmarks(fim_exp):
    with (fim_exp / "results.csv").open() as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames, list(reader)
    cols = ["infill_pass@1", "infill_pass@1_ci_low", "infill_pass@1_ci_high", "infill_exact_match"]
    cols += ["infill_kind", "infill_n", "infill_tasks", "fim_tokens", "infill_note"]
    i = header.index("benchmark_note")
    assert header[i + 1 : i + 1 + len(cols)] == cols
    by = {r["Configuration"]: r for r in rows}
    assert by["FIM rate 0.5"]["infill_pass@1"] == "80.0" and by["FIM rate 0.5"]["fim_tokens"] == "trained"
    with (fim_exp / "results_long.csv").open() as f:
        long = [r for r in csv.DictReader(f) if r["metric"] == "infill_pass@1"]
    assert len(long) == 4


def test_unmeasured_infilling_is_never_a_zero(tmp_path, fabricate):
    from codetune.reporting.report import write_report

    exp = fim_experiment(fabricate, tmp_path / "fim", unmeasured=True)
    write_report(exp)
    text = _section(exp)
    assert _row(text.split("### ")[0], "FIM rate 0.9")[4] == "not measured (unavailable: no tasks here)"
    cells = _row(text, "FIM rate 0.9", "FIM rate 0.0", "infilling pass@1 %")
    assert cells[3] == "not measured" and cells[-1] == "no test: not measured on both sides"
    # left to right it is still compared
    assert _row(text, "FIM rate 0.9", "FIM rate 0.0", "left-to-right pass@1 %")[8] == "0.250"


def test_a_report_without_infilling_has_no_section(base_exp):
    md = (base_exp / "report.md").read_text(encoding="utf-8")
    assert "## Infilling" not in md and "infilling pass@1" not in md
