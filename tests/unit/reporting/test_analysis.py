"""Report inputs: persisted per-item statistics, the recorded CI level, and axes from the experiment's grid."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from codetune.reporting.analysis import Level, config_value, group_configs, load_experiment, load_runs
from codetune.reporting.report import build_report, write_report


def _strip_records(exp_dir, keys=("bleu_stats", "codebleu_stats")):
    """Rewrite every run's generations.jsonl without `keys`, as a run scored before they existed."""
    for path in exp_dir.glob("*/generations.jsonl"):
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in keys}) + "\n" for r in recs))


def _md(exp_dir):
    return write_report(exp_dir)[0].read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rank_dir(tmp_path_factory, fabricate):
    return fabricate.rank_experiment(tmp_path_factory.mktemp("an") / "rank", n=12, with_exec=True)


def test_scoring_persists_the_statistics_the_report_reads(rank_dir, monkeypatch):
    rec = json.loads(next(rank_dir.glob("*/generations.jsonl")).read_text().splitlines()[0])
    assert len(rec["bleu_stats"]) == 10 and all(isinstance(x, int) for x in rec["bleu_stats"])
    assert len(rec["codebleu_stats"]) > 10
    from codetune.evaluation import scoring

    def no_recompute(*a, **kw):
        raise AssertionError("the report recomputed a metric the records carry")

    monkeypatch.setattr(scoring, "metric_item_stats", no_recompute)
    runs = load_runs(rank_dir)
    assert all(r.stats["BLEU"].shape == (12, 10) and r.stats["CodeBLEU"] is not None for r in runs)


def test_report_from_persisted_stats_equals_the_one_recomputed_from_text(rank_dir, tmp_path):
    old = tmp_path / "rank"
    shutil.copytree(rank_dir, old)
    _strip_records(old)
    assert "bleu_stats" not in next(old.glob("*/generations.jsonl")).read_text()
    new_runs, old_runs = load_runs(rank_dir), load_runs(old)
    for a, b in zip(new_runs, old_runs):
        for m in ("BLEU", "CodeBLEU"):
            assert (a.stats[m] == b.stats[m]).all() and (a.sentence[m] == b.sentence[m]).all()
    assert _md(rank_dir) == _md(old)


def test_a_run_directory_from_before_this_change_reports_as_a_new_one_at_the_defaults(tmp_path, fabricate):
    """No stats in the records, no ci_level/n_boot in metrics.json, no config.yaml, no experiment.yaml."""
    new = fabricate.rank_experiment(tmp_path / "new" / "rank", n=12, n_boot=1000)  # 0.95/1000 as old runs get
    old = tmp_path / "old" / "rank"
    shutil.copytree(new, old)
    _strip_records(old)
    (old / "experiment.yaml").unlink()
    for d in old.iterdir():
        if d.is_dir():
            (d / "config.yaml").unlink()
            m = json.loads((d / "metrics.json").read_text())
            (d / "metrics.json").write_text(
                json.dumps({k: v for k, v in m.items() if k not in ("ci_level", "n_boot")})
            )
    assert load_experiment(old).grid is None and load_experiment(old).level == Level(0.95, 1000)
    assert _md(new) == _md(old)


@pytest.fixture(scope="module")
def report90(tmp_path_factory, fabricate):
    exp = fabricate.rank_experiment(tmp_path_factory.mktemp("ci") / "rank90", n=12, seeds=(0, 1), ci_level=0.9)
    md, html = write_report(exp)
    return exp, md.read_text(encoding="utf-8"), html.read_text(encoding="utf-8")


def test_ci_level_is_recorded_and_shown(report90):
    exp, md, html = report90
    m = json.loads(next(exp.glob("*/metrics.json")).read_text())
    assert (m["ci_level"], m["n_boot"]) == (0.9, 200)
    assert "95%" not in md and "95%" not in html
    assert "Intervals are 90% percentile bootstraps" in md and "value [90% CI]" in md
    assert "A − B [90% CI]" in md and "with 80% power at α=0.1" in md
    assert "with 90% confidence intervals" in html and "p < 0.1." in md


def test_ci_level_sets_the_reports_bootstraps_and_threshold(report90):
    exp, md, _ = report90
    e = load_experiment(exp)
    assert e.level == Level(0.9, 200) and e.level.alpha == 0.1
    c = e.configs[0]  # two seeds: the report's own bootstrap over seed-pooled items
    lo90, hi90 = config_value(c, "BLEU", e.level)["ci"]
    lo95, hi95 = config_value(c, "BLEU", Level(0.95, 200))["ci"]
    assert lo95 < lo90 and hi90 < hi95
    for line in re.findall(r"^\| Rank .*$", md.split("## Pairwise comparisons")[1].split("## Error")[0], re.M):
        cells = [x.strip() for x in line.strip("|").split("|")]
        p = 0.0 if cells[5] == "<0.001" else float(cells[5])
        assert (cells[-1] == "significant") == (p < 0.1), line


def test_plot_title_follows_the_recorded_level():
    from codetune.reporting.plots import _percent

    assert _percent([{"ci_level": 0.9}], None) == "90%"
    assert _percent([{}], None) == "95%"  # rows that predate the field
    assert _percent([{"ci_level": 0.9}], 0.99) == "99%"


def _lr_runs(kinds_a, kinds_b):
    return [
        ("lr 1e-4", kinds_a, {"train": {"lr": 1e-4}, "lora": {"alpha": 16}}),
        ("lr 3e-4", kinds_b, {"train": {"lr": 3e-4}, "lora": {"alpha": 16}}),
    ]


def test_a_grid_over_train_lr_reports_that_axis(tmp_path, fabricate):
    runs = _lr_runs(["stub"] * 6 + ["good"] * 6, ["good"] * 12)
    exp = fabricate.make_experiment(tmp_path / "lr", runs, grid={"train.lr": [1e-4, 3e-4], "lora.alpha": [16]})
    assert load_experiment(exp).axes == ["train.lr"]  # lora.alpha is in the grid but does not vary
    md = _md(exp)
    assert "Varying axes: train.lr." in md
    along = md.split("### Along train.lr")[1].split("## Generations")[0]
    assert "lr 1e-4 (train.lr=0.0001) → lr 3e-4 (train.lr=0.0003)." in along
    assert "stub rate %: lr 3e-4 − lr 1e-4 = -50.00" in along
    assert "Research questions" not in md  # the seed study's axes are absent


def test_without_experiment_yaml_the_study_axes_are_the_fallback(tmp_path, fabricate):
    exp = fabricate.make_experiment(tmp_path / "lr", _lr_runs(["good"] * 4, ["stub"] * 4))
    assert load_experiment(exp).grid is None
    md = _md(exp)
    assert "Varying axes: none." in md and "nothing to compare along" in md


def test_axes_are_compared_with_the_others_held_fixed(tmp_path, fabricate):
    runs = [(f"r{r} a{a}", ["good"] * 4, {"lora": {"r": r, "alpha": a}}) for r in (4, 16) for a in (8, 32)]
    exp = fabricate.make_experiment(tmp_path / "two", runs, grid={"lora.r": [4, 16], "lora.alpha": [8, 32]})
    blocks = build_report(exp)
    texts = [b[1] for b in blocks if b[0] == "p"]
    assert "r4 a8 (lora.alpha=8.0) → r4 a32 (lora.alpha=32.0)." in texts
    assert "r4 a8 (lora.r=4) → r16 a8 (lora.r=16)." in texts
    assert not any("r4 a8 (lora.r=4) → r16 a32" in t for t in texts)
    assert ("h2", "Research questions (from the seed study)") in blocks  # lora.r is a study axis
    assert group_configs(load_runs(exp))[0].axis_value("lora.alpha") == 8.0


def test_a_p_between_the_levels_is_significant_only_at_90(tmp_path, fabricate):
    runs = [
        ("Rank 4", ["stub"] * 5 + ["good"] * 3, {"lora": {"r": 4}}),
        ("Rank 16", ["good"] * 8, {"lora": {"r": 16}}),
    ]
    exp = fabricate.make_experiment(tmp_path / "p", runs, grid={"lora.r": [4, 16]}, ci_level=0.9)
    from codetune.reporting.comparison import compare

    a, b = load_experiment(exp).configs
    c90, c95 = compare(a, b, "trivial_rate", Level(0.9, 200)), compare(a, b, "trivial_rate", Level(0.95, 200))
    assert c90.test == "exact McNemar" and c90.p_value == pytest.approx(2 / 2**5)  # 5 discordant, one way
    assert c90.significant and not c95.significant
    md = _md(exp)
    assert "stub rate %: Rank 16 − Rank 4 = -62.50" in md and "p=0.062 (exact McNemar); significant at α=0.1" in md


def test_results_csv_keeps_its_columns_and_adds_the_interval_settings(rank_dir):
    import csv

    with (rank_dir / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    assert header[:3] == ["BLEU", "Syntax_Pass_Rate", "Configuration"]
    for col in (
        "BLEU_ci_low",
        "CodeBLEU",
        "pass@1",
        "trivial_rate",
        "n_train",
        "lora_r",
        "train_workers",
        "run_dir",
    ):
        assert col in header, col
    assert {(r["ci_level"], r["n_boot"]) for r in rows} == {("0.95", "200")}
    assert "loss_curve" not in header


def test_runs_that_recorded_different_levels_are_said_to(tmp_path, fabricate):
    from codetune.reporting.results import write_results

    exp = tmp_path / "mixed"
    specs = [
        fabricate.make_run(exp, "Rank 4", ["good"] * 4, {"lora": {"r": 4}}, ci_level=0.9),
        fabricate.make_run(exp, "Rank 16", ["good"] * 4, {"lora": {"r": 16}}, ci_level=0.95),
    ]
    write_results(exp, specs)
    e = load_experiment(exp)
    assert e.levels == [Level(0.9, 200), Level(0.95, 200)] or e.levels == [Level(0.95, 200), Level(0.9, 200)]
    md = _md(exp)
    assert "The runs recorded different interval settings (" in md and f"use the first, {e.level.percent}" in md
