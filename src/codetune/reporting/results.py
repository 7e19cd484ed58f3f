"""Experiment tables: results.csv (the study's first columns, then provenance) and a long-format table."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from codetune.io import atomic_write_text
from codetune.rundir import RunDir

SEED_COLUMNS = ["BLEU", "Syntax_Pass_Rate", "Configuration"]
# Per-run lists and bulky fields stay in metrics.json, out of the table.
_NOT_IN_TABLE = {"loss_curve"}
METRIC_COLUMNS = ("BLEU", "Syntax_Pass_Rate", "pass@1", "CodeBLEU")


def _atomic_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in header})
    atomic_write_text(path, buf.getvalue())


def collect_rows(exp_dir: Path, specs: list[Any]) -> list[dict]:
    """metrics.json of every finished run, in grid order (unfinished runs are absent, never partial)."""
    rows = []
    for spec in specs:
        rd = RunDir(Path(exp_dir) / spec.dirname)
        if rd.is_finished():
            row = rd.read_metrics()
            row["run_dir"] = spec.dirname
            rows.append(row)
    return rows


def write_results(exp_dir: Path, specs: list[Any]) -> list[dict]:
    """(Re)write results.csv, results_long.csv and results.png from the finished runs; return the rows."""
    exp_dir = Path(exp_dir)
    rows = collect_rows(exp_dir, specs)
    if not rows:
        return rows
    header = list(SEED_COLUMNS)
    for r in rows:
        for k in r:
            if k not in header and k not in _NOT_IN_TABLE:
                header.append(k)
    _atomic_csv(exp_dir / "results.csv", header, rows)
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
                    }
                )
    _atomic_csv(
        exp_dir / "results_long.csv",
        ["run_id", "Configuration", "seed", "metric", "value", "ci_low", "ci_high", "n_test"],
        long_rows,
    )
    from codetune.reporting.plots import plot_results

    plot_results(rows, exp_dir / "results.png", title=exp_dir.name)
    return rows
