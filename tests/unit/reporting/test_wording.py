"""Signed figures in the report: a difference or bound that rounds to zero never reads "-0.00"."""

from __future__ import annotations

from codetune.reporting.comparison import Comparison
from codetune.reporting.wording import describe, diff_ci, signed


def test_signed_rounds_negative_zero_to_plus():
    assert signed(-1e-17) == "+0.00"
    assert signed(-0.004) == "+0.00"
    assert signed(-0.005 - 1e-9) == "-0.01"
    assert signed(0.76) == "+0.76"
    assert signed(-2.44) == "-2.44"


def test_comparison_interval_from_a_bootstrap_that_lands_on_zero():
    c = Comparison("A", "B", "pass@1", 0.7634, (-1.5e-16, 2.2901), 1.0, "exact McNemar", 131, True, 7.4)
    assert diff_ci(c) == "+0.76 [+0.00, +2.29]"
    assert "+0.76 [+0.00, +2.29]" in describe(c)
