"""`codetune report`: write report.md and a self-contained report.html for an experiment directory."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = (
    "Summarise an experiment directory (runs/<experiment>): headline metrics with 95% CIs, pairwise tests "
    "between configurations, plots, answers to the study's research questions, and every generation; "
    "writes report.md and report.html there."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment_dir", metavar="DIR", help="an experiment directory, e.g. runs/quick")


def run(args: argparse.Namespace) -> int:
    from codetune.reporting.report import write_report

    md, html = write_report(args.experiment_dir)
    print(f"wrote {md}")
    print(f"wrote {html}")
    return 0
