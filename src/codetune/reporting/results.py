"""Experiment tables: results.csv (the study's first columns, the headline metrics, then provenance), a
long-format table, and results.png (with each configuration's paired difference from its base row).

They hold every finished run of the experiment directory: a rerun with a narrower grid keeps the runs it
no longer lists, after the grid's, with `in_grid` False (and "(not in grid)" after their label in the plot).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from codetune.io import atomic_write_text
from codetune.rundir import RunDir, finished_runs

SEED_COLUMNS = ["BLEU", "Syntax_Pass_Rate", "Configuration"]
# Per-run lists and bulky fields stay in metrics.json, out of the table.
_NOT_IN_TABLE = {"loss_curve"}
METRIC_COLUMNS = (
    "BLEU",
    "Syntax_Pass_Rate",
    "pass@1",
    "CodeBLEU",
    "pass@1_plus",
    "infill_pass@1",
    "infill_exact_match",
)
# After the seed columns, in this order where present: the headline metrics with their intervals, then
# what the benchmark was, the infilling benchmark's metrics (`eval.infilling`) and what it was; then pass@k
# (k > 1), the execution-status and taxonomy counts, then the rest.
_LEADING = (
    "baseline",
    "pass@1",
    "pass@1_ci_low",
    "pass@1_ci_high",
    "BLEU_ci_low",
    "BLEU_ci_high",
    "CodeBLEU",
    "CodeBLEU_ci_low",
    "CodeBLEU_ci_high",
    "Syntax_Pass_Rate_ci_low",
    "Syntax_Pass_Rate_ci_high",
    "pass@1_plus",
    "pass@1_plus_ci_low",
    "pass@1_plus_ci_high",
    "benchmark",
    "benchmark_tasks",
    "benchmark_samples_per_task",
    "benchmark_note",
    "benchmark_base_pass_plus_fail",
    "benchmark_extra_tests",
    "fim_rate",
    "infill_pass@1",
    "infill_pass@1_ci_low",
    "infill_pass@1_ci_high",
    "infill_exact_match",
    "infill_kind",
    "infill_n",
    "infill_tasks",
    "fim_tokens",
    "infill_note",
)


def _atomic_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in header})
    atomic_write_text(path, buf.getvalue())


def collect_rows(exp_dir: Path, specs: list[Any]) -> list[dict]:
    """metrics.json of every finished run: the grid's in grid order, then the experiment directory's other
    finished runs by name (`in_grid` False: an earlier, wider grid made them). Unfinished runs are absent,
    never partial."""
    rows = []
    listed = set()
    for spec in specs:
        listed.add(spec.dirname)
        rd = RunDir(Path(exp_dir) / spec.dirname)
        if rd.is_finished():
            rows.append({**rd.read_metrics(), "run_dir": spec.dirname, "in_grid": True})
    for rd in finished_runs(exp_dir):
        if rd.name not in listed:
            rows.append({**rd.read_metrics(), "run_dir": rd.name, "in_grid": False})
    return rows


def write_results(exp_dir: Path, specs: list[Any]) -> list[dict]:
    """(Re)write results.csv, results_long.csv and results.png from the finished runs; return the rows."""
    exp_dir = Path(exp_dir)
    rows = collect_rows(exp_dir, specs)
    if not rows:
        return rows
    _atomic_csv(exp_dir / "results.csv", results_header(rows), rows)
    long_rows = []
    for r in rows:
        for metric in METRIC_COLUMNS:
            if metric in r:
                long_rows.append(
                    {
                        "run_id": r["run_id"],
                        "Configuration": r["Configuration"],
                        "seed": r.get("seed"),
                        "metric": metric,
                        "value": r[metric],
                        "ci_low": r.get(f"{metric}_ci_low"),
                        "ci_high": r.get(f"{metric}_ci_high"),
                        "n_test": r.get("n_test"),
                        "in_grid": r["in_grid"],
                    }
                )
    _atomic_csv(
        exp_dir / "results_long.csv",
        ["run_id", "Configuration", "seed", "metric", "value", "ci_low", "ci_high", "n_test", "in_grid"],
        long_rows,
    )
    from codetune.reporting.plots import plot_results

    # Out-of-grid runs get bars of their own: a label the grid still uses may now mean other settings.
    bars = [r if r["in_grid"] else {**r, "Configuration": f"{r['Configuration']} (not in grid)"} for r in rows]
    plot_results(bars, exp_dir / "results.png", title=exp_dir.name, deltas=_base_deltas(exp_dir, rows))
    return rows


def results_header(rows: list[dict]) -> list[str]:
    """results.csv's columns: seed columns, `_LEADING`, pass@k, exec_*/cat_* counts, then first-seen order."""
    from codetune.evaluation.programs import STATUSES
    from codetune.reporting.benchmark import CATEGORIES

    seen = list(dict.fromkeys(k for r in rows for k in r if k not in _NOT_IN_TABLE))
    passk = sorted((k for k in seen if re.match(r"pass@\d", k) and k not in _LEADING), key=_passk_order)
    counts = [f"exec_{s}" for s in (*STATUSES, "missing")] + [f"cat_{c}" for c in CATEGORIES]
    order = [*SEED_COLUMNS, *_LEADING, *passk, *counts]
    header = [k for k in order if k in seen or k in SEED_COLUMNS]
    return header + [k for k in seen if k not in header]


def _passk_order(key: str) -> tuple:
    """pass@10, its low and high bound, then pass@100, ..."""
    k, rest = re.match(r"pass@(\d+)(.*)", key).groups()
    return int(k), {"": 0, "_ci_low": 1, "_ci_high": 2}.get(rest, 3), rest


def _base_deltas(exp_dir: Path, rows: list[dict]) -> dict | None:
    """Each configuration's paired difference from its base row, for results.png; None without base rows."""
    from codetune.errors import CodetuneError
    from codetune.reporting.analysis import load_experiment
    from codetune.reporting.baseline import base_differences, plot_annotations

    if not any(r.get("baseline") for r in rows):
        return None
    try:
        exp = load_experiment(exp_dir, [r["run_dir"] for r in rows])
    except CodetuneError:
        # An unreadable run file is the report's to name; the table and the bars are written regardless.
        return None
    return plot_annotations(base_differences(exp))
