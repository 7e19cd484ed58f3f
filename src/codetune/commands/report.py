"""`codetune report`: write report.md and a self-contained report.html for an experiment directory."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = (
    "Summarise an experiment directory (runs/<experiment>): headline metrics with confidence intervals at the "
    "level the runs recorded (eval.ci_level), each configuration against the base model (McNemar on the "
    "benchmark's per-task pass/fail, paired bootstrap on BLEU/CodeBLEU), pairwise tests between configurations "
    "and along each grid axis, the benchmark's error taxonomy, pass@1 against training cost with its Pareto "
    "front (cost.png), plots, answers to the seed study's research questions when it varies their axes, and "
    "every generation; writes report.md and report.html there."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment_dir", metavar="DIR", help="an experiment directory, e.g. runs/quick")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from codetune.reporting.report import write_report
    from codetune.rundir import check_writable_dir

    exp_dir = Path(args.experiment_dir)
    if exp_dir.is_dir():  # a missing one (or a file) is the report's to name (with the command that makes it)
        # Before the analysis: report.md, report.html and cost.png go into the experiment directory.
        check_writable_dir(
            exp_dir,
            "experiment directory",
            "the report is written into it (report.md, report.html, cost.png): make it writable, or copy it "
            "somewhere writable and report on the copy",
        )
    md, html = write_report(args.experiment_dir)
    print(f"wrote {md}")
    print(f"wrote {html}")
    return 0
