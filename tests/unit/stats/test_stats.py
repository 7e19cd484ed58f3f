"""codetune.stats (bootstrap, paired tests, power) against exact enumeration, scipy and textbook values."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats as sps

from codetune.errors import ConfigError
from codetune.stats import bootstrap, paired, power


def _exact_bootstrap_means(values):
    """All n**n equally likely resamples of n items, and their means."""
    n = len(values)
    return np.array([np.mean([values[i] for i in idx]) for idx in itertools.product(range(n), repeat=n)])


def test_bootstrap_distribution_matches_exact_enumeration_n3():
    values = [0.0, 1.0, 5.0]
    exact = Counter(np.round(_exact_bootstrap_means(values), 9))
    draws = bootstrap.bootstrap_distribution(values, n_boot=40000, seed=1)
    seen = Counter(np.round(draws, 9))
    assert set(seen) == set(exact)  # 10 distinct means
    for value, count in exact.items():
        assert seen[value] / 40000 == pytest.approx(count / 27, abs=0.01)


def test_bootstrap_ci_matches_exact_quantiles_n4():
    values = [0.0, 1.0, 2.0, 10.0]
    exact = np.sort(_exact_bootstrap_means(values))  # 256 equally likely means
    low, high = bootstrap.bootstrap_ci(values, n_boot=50000, seed=3)
    # Exact 2.5% / 97.5% points of the discrete bootstrap distribution; neither sits on a jump.
    assert low == pytest.approx(np.quantile(exact, 0.025), abs=0.05)
    assert high == pytest.approx(np.quantile(exact, 0.975), abs=0.05)
    assert low < np.mean(values) < high


def test_bootstrap_ci_is_seeded_and_custom_statistic_works():
    values = np.arange(20.0)
    assert bootstrap.bootstrap_ci(values, seed=7) == bootstrap.bootstrap_ci(values, seed=7)
    low, high = bootstrap.bootstrap_ci(values, statistic=np.median, n_boot=500, seed=0)
    assert 0 <= low <= 9.5 <= high <= 19


def test_bootstrap_ci_corpus_equals_per_item_when_metric_is_a_mean():
    values = [0.1, 0.4, 0.4, 0.9, 1.0, 0.0]
    corpus = bootstrap.bootstrap_ci_corpus(values, lambda items: float(np.mean(items)), n_boot=300, seed=5)
    per_item = bootstrap.bootstrap_ci(values, n_boot=300, seed=5)
    assert corpus == pytest.approx(per_item, abs=1e-12)


def test_bootstrap_ci_corpus_ratio_metric():
    # A pooled ratio (like corpus BLEU's clipped-count precision) is not a mean of per-item ratios.
    items = [(1, 10), (9, 10), (0, 1)]

    def fn(xs):
        return sum(m for m, _ in xs) / sum(t for _, t in xs)

    low, high = bootstrap.bootstrap_ci_corpus(items, fn, n_boot=2000, seed=0)
    assert 0.0 <= low < fn(items) < high <= 0.9 + 1e-12


def test_paired_bootstrap_per_item_identical_gives_zero_diff_and_p1():
    a = [1, 0, 1, 1, 0]
    out = paired.paired_bootstrap(a, a, n_boot=200)
    assert out["diff"] == 0 and out["ci_low"] == 0 and out["ci_high"] == 0 and out["p_value"] == 1.0


def test_paired_bootstrap_detects_consistent_improvement():
    rng = np.random.default_rng(0)
    b = rng.random(60)
    a = b + 0.2 + 0.01 * rng.standard_normal(60)
    out = paired.paired_bootstrap(a, b, n_boot=2000, seed=1)
    assert out["diff"] == pytest.approx(np.mean(a - b))
    assert out["ci_low"] > 0.18 and out["ci_high"] < 0.22
    assert out["p_value"] == pytest.approx(1 / 2001)
    assert out["n"] == 60


def test_paired_bootstrap_same_indices_for_both_configs():
    # With a metric_fn equal to the mean, resampling must match the per-item path exactly,
    # which only holds if A and B are resampled with the same indices.
    a = [0.3, 0.9, 0.2, 0.5]
    b = [0.1, 0.7, 0.4, 0.5]

    def mean(xs):
        return float(np.mean(xs))

    with_fn = paired.paired_bootstrap(a, b, metric_fn=mean, n_boot=500, seed=2)
    per_item = paired.paired_bootstrap(a, b, n_boot=500, seed=2)
    for key in ("diff", "ci_low", "ci_high", "p_value"):
        assert with_fn[key] == pytest.approx(per_item[key], abs=1e-12)


def test_paired_bootstrap_p_value_is_shift_method():
    a = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    b = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    out = paired.paired_bootstrap(a, b, n_boot=1000, seed=4)
    d = a - b
    idx = np.random.default_rng(4).integers(0, 6, size=(1000, 6))
    draws = d[idx].mean(axis=1)
    expected = (1 + np.sum(np.abs(draws - d.mean()) >= abs(d.mean()) - 1e-12)) / 1001
    assert out["p_value"] == pytest.approx(expected)


def _brute_force_sign_flip(d):
    obs = abs(np.mean(d))
    hits = [abs(np.mean(np.array(s) * d)) >= obs - 1e-12 for s in itertools.product((1, -1), repeat=len(d))]
    return sum(hits) / len(hits)


@pytest.mark.parametrize(
    "a,b",
    [
        ([3.0, 1.0, 4.0, 1.0, 5.0], [2.0, 1.0, 3.0, 2.0, 1.0]),
        ([1, 1, 1, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 1, 0, 0]),
        ([0.5, 0.25], [0.5, 0.25]),
    ],
)
def test_permutation_exact_matches_enumeration(a, b):
    d = np.asarray(a, float) - np.asarray(b, float)
    assert paired.paired_permutation_test(a, b) == pytest.approx(_brute_force_sign_flip(d))


def test_permutation_monte_carlo_close_to_exact():
    rng = np.random.default_rng(11)
    a = rng.random(14)
    b = a - 0.1 + 0.3 * rng.standard_normal(14)
    exact = paired.paired_permutation_test(a, b)
    mc = paired.paired_permutation_test(a, b, n_perm=20000, seed=3, exact_max_n=0)
    assert mc == pytest.approx(exact, abs=0.015)


def test_permutation_all_differences_one_sign():
    # 8 items all improved by 1: only the all-plus and all-minus vectors are as extreme: p = 2/256.
    assert paired.paired_permutation_test([1] * 8, [0] * 8) == pytest.approx(2 / 256)


@pytest.mark.parametrize(
    "a,b",
    [
        ([1, 1, 1, 1, 1, 1, 0, 0, 1, 0], [0, 0, 0, 1, 1, 0, 0, 1, 1, 0]),
        ([1] * 12 + [0] * 3, [0] * 12 + [0] * 3),
        ([1, 0, 1], [1, 0, 1]),
    ],
)
def test_mcnemar_matches_scipy_binomtest(a, b):
    out = paired.mcnemar_exact(a, b)
    a_arr, b_arr = np.array(a, bool), np.array(b, bool)
    b10 = int(np.sum(a_arr & ~b_arr))
    b01 = int(np.sum(~a_arr & b_arr))
    assert (out["b10"], out["b01"]) == (b10, b01)
    expected = 1.0 if b10 + b01 == 0 else sps.binomtest(b10, b10 + b01, 0.5).pvalue
    assert out["p_value"] == pytest.approx(expected, rel=1e-12)
    assert out["diff"] == pytest.approx(a_arr.mean() - b_arr.mean())


def test_mcnemar_effect_sizes():
    out = paired.mcnemar_exact([1, 1, 1, 0, 0], [0, 0, 1, 1, 0])
    assert out["b10"] == 2 and out["b01"] == 1 and out["odds_ratio"] == 2.0
    assert paired.mcnemar_exact([1, 0], [0, 0])["odds_ratio"] == math.inf
    assert math.isnan(paired.mcnemar_exact([1, 0], [1, 0])["odds_ratio"])


def test_mde_unpaired_textbook_value():
    # p1=0.5 vs p2=0.6 needs ~387.3 items per group (Fleiss et al., no continuity correction).
    assert power.n_items_two_proportions(0.5, 0.6) == pytest.approx(387.3, abs=0.2)
    assert power.minimum_detectable_effect(388, 0.5, paired=False) == pytest.approx(0.1, abs=0.001)


def test_mde_paired_round_trip_and_monotone():
    mde = power.minimum_detectable_effect(100, 0.3, discordance=0.2)
    assert power.n_items_mcnemar(mde, 0.2) == pytest.approx(100, rel=1e-6)
    assert power.minimum_detectable_effect(400, 0.3, discordance=0.2) < mde
    # Default discordance: independent failures at the baseline rate, 2 p (1 - p).
    assert power.minimum_detectable_effect(100, 0.3) == pytest.approx(
        power.minimum_detectable_effect(100, 0.3, discordance=0.42)
    )


def test_mde_tiny_test_set_is_large():
    # The seed study used 20 test items: a 5-point difference (one item) is far below what it can detect.
    assert power.minimum_detectable_effect(20, 0.3, paired=False) > 0.3
    assert power.minimum_detectable_effect(5, 0.5, discordance=0.1) == math.inf


def test_mde_continuous_formula():
    expected = (sps.t.ppf(0.975, 49) + sps.t.ppf(0.8, 49)) * 2.0 / math.sqrt(50)
    assert power.minimum_detectable_effect_continuous(50, 2.0) == pytest.approx(expected)


def test_mean_and_spread():
    out = bootstrap.mean_and_spread([9.42, 9.34, 9.64])
    assert out["mean"] == pytest.approx(9.4666667, abs=1e-6)
    assert out["sd"] == pytest.approx(np.std([9.42, 9.34, 9.64], ddof=1))
    assert (out["min"], out["max"], out["n"]) == (9.34, 9.64, 3)
    assert math.isnan(bootstrap.mean_and_spread([1.0])["sd"])


@pytest.mark.parametrize(
    "call",
    [
        lambda: bootstrap.bootstrap_ci([]),
        lambda: bootstrap.bootstrap_ci([1.0, float("nan")]),
        lambda: bootstrap.bootstrap_ci([1.0], alpha=1.5),
        lambda: paired.paired_bootstrap([1, 2], [1]),
        lambda: paired.paired_permutation_test([1, 2], [1]),
        lambda: paired.mcnemar_exact([1, 2], [1, 0]),
        lambda: power.minimum_detectable_effect(0, 0.5),
        lambda: power.minimum_detectable_effect(10, 1.0),
    ],
)
def test_bad_arguments_raise_config_error(call):
    with pytest.raises(ConfigError):
        call()
