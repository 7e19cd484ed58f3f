"""Load the fabricated-experiment helpers (tests run with --import-mode=importlib, so no sibling imports)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def load_fabricate():
    spec = importlib.util.spec_from_file_location("_codetune_fabricate", Path(__file__).with_name("_fabricate.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def fabricate():
    return load_fabricate()


@pytest.fixture(scope="session")
def base_exp(tmp_path_factory, fabricate):
    """`_fabricate.base_experiment`, built once, with its report written (treat it as read-only)."""
    from codetune.reporting.report import write_report

    exp = fabricate.base_experiment(tmp_path_factory.mktemp("base") / "rank")
    write_report(exp)
    return exp
