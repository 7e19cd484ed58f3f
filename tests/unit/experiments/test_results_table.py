"""results.csv holds every finished run of the experiment directory, the grid's first."""

import csv
from types import SimpleNamespace

from codetune.reporting.results import write_results
from codetune.rundir import RunDir


def _finished(exp_dir, name, label, bleu):
    RunDir(exp_dir / name).create().write_metrics(
        {"BLEU": bleu, "Syntax_Pass_Rate": 50.0, "Configuration": label, "run_id": name[-3:], "seed": 0}
    )
    return SimpleNamespace(dirname=name)


def test_a_narrower_grid_keeps_and_marks_the_runs_it_no_longer_lists(tmp_path, monkeypatch):
    from codetune.reporting import plots

    exp = tmp_path / "rank"
    r2 = _finished(exp, "rank-2-aaa", "Rank 2", 10.0)
    _finished(exp, "rank-4-bbb", "Rank 4", 20.0)
    _finished(exp, "rank-16-ccc", "Rank 16", 30.0)
    RunDir(exp / "rank-8-ddd").create()  # unfinished: never a row
    plotted = []
    monkeypatch.setattr(plots, "plot_results", lambda rows, out, **kw: plotted.append(rows))
    rows = write_results(exp, [r2, SimpleNamespace(dirname="rank-32-eee")])  # the grid now: ranks 2 and 32
    assert [(r["run_dir"], r["in_grid"]) for r in rows] == [
        ("rank-2-aaa", True),
        ("rank-16-ccc", False),
        ("rank-4-bbb", False),
    ]
    with (exp / "results.csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["Configuration"], r["in_grid"]) for r in table] == [
        ("Rank 2", "True"),
        ("Rank 16", "False"),
        ("Rank 4", "False"),
    ]
    with (exp / "results_long.csv").open(newline="") as f:
        assert {(r["Configuration"], r["in_grid"]) for r in csv.DictReader(f)} >= {("Rank 4", "False")}
    assert [r["Configuration"] for r in plotted[0]] == ["Rank 2", "Rank 16 (not in grid)", "Rank 4 (not in grid)"]
