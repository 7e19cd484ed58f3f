"""pass@k: hand-computed values, agreement with the closed form, stability where factorials overflow."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import pytest

from codetune.evaluation.passk import aggregate_pass_at_k, parse_ks, pass_at_k


def _exact(n: int, c: int, k: int) -> float:
    return float(1 - Fraction(comb(n - c, k), comb(n, k)))


def test_hand_computed_values():
    assert pass_at_k(1, 1, 1) == 1.0
    assert pass_at_k(1, 0, 1) == 0.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    # 1 - C(2,2)/C(4,2) = 1 - 1/6
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)
    assert pass_at_k(5, 0, 5) == 0.0
    assert pass_at_k(5, 1, 5) == 1.0  # n - c < k: every draw of k contains the correct one


@pytest.mark.parametrize("n", [1, 2, 5, 20, 50])
def test_matches_closed_form_for_every_c_and_k(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(_exact(n, c, k), abs=1e-12)


def test_stable_where_binomials_overflow_floats():
    # C(2000, 1000) overflows a float; the product form does not.
    n, c, k = 2000, 7, 1000
    assert pass_at_k(n, c, k) == pytest.approx(_exact(n, c, k), rel=1e-9)
    assert 0.0 <= pass_at_k(1000, 1, 1) <= 1.0
    assert pass_at_k(1000, 1, 1) == pytest.approx(0.001)


@pytest.mark.parametrize("args", [(3, 4, 1), (3, -1, 1), (3, 1, 0), (3, 1, 4)])
def test_rejects_out_of_range(args):
    with pytest.raises(ValueError):
        pass_at_k(*args)


def test_aggregate_means_per_task_and_skips_k_above_some_n():
    agg = aggregate_pass_at_k({"a": (2, 1), "b": (2, 0), "c": (3, 3)}, [1, 2, 3])
    assert agg["per_task"]["a"]["pass@1"] == pytest.approx(0.5)
    assert agg["per_task"]["a"]["pass@2"] == pytest.approx(1.0)
    assert agg["pass@k"]["pass@1"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert agg["pass@k"]["pass@2"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert "pass@3" not in agg["pass@k"] and agg["skipped_k"] == [3]
    assert "pass@3" not in agg["per_task"]["a"] and agg["per_task"]["c"]["pass@3"] == 1.0


def test_parse_ks():
    assert parse_ks("10, 1,1") == [1, 10]
    for bad in ("0", "", "a", "-1"):
        with pytest.raises(ValueError):
            parse_ks(bad)
