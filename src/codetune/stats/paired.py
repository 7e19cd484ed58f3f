"""Tests of a difference between two configurations scored on the same items.

Paired bootstrap (any metric), sign-flip permutation test (mean of per-item values) and the exact
McNemar test (pass/fail). Conventions as in `codetune.stats.bootstrap`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from codetune.errors import ConfigError
from codetune.stats.bootstrap import as_1d_float, check_n_boot_alpha, percentile_interval, resample_indices

# Exact sign-flip enumeration costs 2**n evaluations; 2**16 = 65,536 rows is still instant.
EXACT_PERMUTATION_MAX_N = 16


def paired_bootstrap(
    a_items: Sequence[Any] | np.ndarray,
    b_items: Sequence[Any] | np.ndarray,
    metric_fn: Callable[[list[Any]], float] | None = None,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, float]:
    """Paired bootstrap for the difference ``metric(A) - metric(B)`` on the same test items.

    Each replicate draws one set of item indices and applies it to both configurations, so
    item difficulty cancels (Koehn 2004, "Statistical Significance Tests for Machine Translation
    Evaluation"). The interval is the percentile interval of the replicate differences.

    Two-sided p-value, shift method: under H0 the replicate differences are re-centred on 0, and
    ``p = (1 + #{|d*_b - d| >= |d|}) / (1 + n_boot)`` where ``d`` is the observed difference
    (Efron & Tibshirani 1993, sec. 16.4; Berg-Kirkpatrick et al. 2012, "An Empirical Investigation of
    Statistical Significance in NLP", whose one-sided test is ``d*_b > 2d``).

    Args:
        a_items: per-item values of A (if ``metric_fn`` is None) or A's items for ``metric_fn``.
        b_items: same for B, aligned item by item with ``a_items``.
        metric_fn: corpus metric of a list of items; None means the mean of per-item numbers.
        n_boot: number of resamples.
        alpha: two-sided level of the interval.
        seed: RNG seed.

    Returns:
        dict with ``diff`` (A - B on all items), ``ci_low``, ``ci_high``, ``p_value``, ``n``.
    """
    check_n_boot_alpha(n_boot, alpha)
    observed, draws, n = _paired_draws(a_items, b_items, metric_fn, n_boot, seed)
    low, high = percentile_interval(draws, alpha)
    # Tolerance so that an exactly-zero observed difference gives p = 1, not a float-noise artefact.
    tol = 1e-12 * max(1.0, abs(observed))
    extreme = int(np.sum(np.abs(draws - observed) >= abs(observed) - tol))
    p_value = (1 + extreme) / (1 + n_boot)
    return {
        "diff": observed,
        "ci_low": low,
        "ci_high": high,
        "p_value": float(min(1.0, p_value)),
        "n": n,
    }


def _paired_arrays(a: Any, b: Any, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-item values of A and B as float arrays of one length (a ConfigError otherwise)."""
    a_arr, b_arr = as_1d_float(a, name_a), as_1d_float(b, name_b)
    if a_arr.size != b_arr.size:
        raise ConfigError(
            f"paired inputs differ in length: {a_arr.size} vs {b_arr.size}",
            hint="score both configurations on the same test items",
        )
    return a_arr, b_arr


def _paired_draws(
    a_items: Sequence[Any] | np.ndarray,
    b_items: Sequence[Any] | np.ndarray,
    metric_fn: Callable[[list[Any]], float] | None,
    n_boot: int,
    seed: int,
) -> tuple[float, np.ndarray, int]:
    """The observed A - B, its `n_boot` paired replicates (one index draw for both) and the item count."""
    if metric_fn is None:
        a, b = _paired_arrays(a_items, b_items, "a_items", "b_items")
        d_items = a - b
        idx = resample_indices(a.size, n_boot, seed)
        return float(d_items.mean()), d_items[idx].mean(axis=1), int(idx.shape[1])
    a_list, b_list = list(a_items), list(b_items)
    if len(a_list) != len(b_list) or not a_list:
        raise ConfigError(
            f"paired inputs must be non-empty and equal in length: {len(a_list)} vs {len(b_list)}",
            hint="score both configurations on the same test items",
        )
    observed = float(metric_fn(a_list)) - float(metric_fn(b_list))
    idx = resample_indices(len(a_list), n_boot, seed)
    draws = np.array(
        [float(metric_fn([a_list[i] for i in row])) - float(metric_fn([b_list[i] for i in row])) for row in idx]
    )
    return observed, draws, int(idx.shape[1])


def paired_permutation_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_perm: int = 10000,
    seed: int = 0,
    exact_max_n: int = EXACT_PERMUTATION_MAX_N,
) -> float:
    """Two-sided paired permutation (sign-flip) test of mean(a - b) = 0.

    Under H0 the label (A or B) within each item is exchangeable, so each paired difference
    ``d_i`` is equally likely to have either sign. The statistic is ``|mean(s * d)|`` over sign
    vectors ``s``; ``p = #{|mean(s*d)| >= |mean(d)|} / #draws``. With ``n <= exact_max_n`` all
    ``2**n`` sign vectors are enumerated (exact p, the observed vector included); otherwise
    ``n_perm`` random sign vectors give ``p = (1 + count) / (1 + n_perm)``
    (Good 2005, *Permutation, Parametric and Bootstrap Tests of Hypotheses*, ch. 3).

    Args:
        a: per-item values of configuration A.
        b: per-item values of configuration B, same items and order.
        n_perm: random sign vectors when ``n > exact_max_n``.
        seed: RNG seed (unused when exact).
        exact_max_n: largest n enumerated exactly.

    Returns:
        The two-sided p-value in (0, 1].
    """
    a_arr, b_arr = _paired_arrays(a, b, "a", "b")
    if not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
        raise ConfigError(f"`n_perm` must be a positive integer, got {n_perm!r}", hint="use e.g. n_perm=10000")
    d = a_arr - b_arr
    n = d.size
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, observed)
    if n <= exact_max_n:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))  # (2**n, n)
        stats_ = np.abs(signs @ d) / n
        return float(np.mean(stats_ >= observed - tol))
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([1.0, -1.0]), size=(n_perm, n))
    stats_ = np.abs(signs @ d) / n
    count = int(np.sum(stats_ >= observed - tol))
    return (1 + count) / (1 + n_perm)


def mcnemar_exact(a_pass: Sequence[bool] | np.ndarray, b_pass: Sequence[bool] | np.ndarray) -> dict[str, float]:
    """Exact McNemar test for two pass/fail configurations on the same items.

    Only discordant items carry information: ``b10`` = A passes and B fails, ``b01`` = A fails and
    B passes. Under H0 (equal pass rates) ``b10 ~ Binomial(b10 + b01, 1/2)``; the two-sided p-value is
    ``min(1, 2 * P(X <= min(b10, b01)))``, which for p = 1/2 equals the exact binomial two-sided test
    (``scipy.stats.binomtest``). No discordant items gives p = 1.

    Args:
        a_pass: per-item pass flags of A.
        b_pass: per-item pass flags of B, same items and order.

    Returns:
        dict with ``n``, ``b10``, ``b01``, ``n_discordant``, ``rate_a``, ``rate_b``,
        ``diff`` (rate_a - rate_b = (b10 - b01) / n), ``odds_ratio`` (b10 / b01; inf if b01 == 0 < b10,
        nan if both are 0) and ``p_value``.
    """
    from scipy import stats as sps

    a = np.asarray(a_pass)
    b = np.asarray(b_pass)
    if a.ndim != 1 or b.ndim != 1 or a.size != b.size or a.size == 0:
        raise ConfigError(
            f"pass flags must be two non-empty 1-D arrays of equal length, got {a.shape} and {b.shape}",
            hint="score both configurations on the same test items",
        )
    for name, arr in (("a_pass", a), ("b_pass", b)):
        if not np.all(np.isin(arr, (0, 1, True, False))):
            raise ConfigError(f"`{name}` must hold booleans (or 0/1)", hint="pass one pass/fail flag per item")
    a = a.astype(bool)
    b = b.astype(bool)
    n = int(a.size)
    b10 = int(np.sum(a & ~b))
    b01 = int(np.sum(~a & b))
    n_disc = b10 + b01
    p_value = 1.0 if n_disc == 0 else float(min(1.0, 2.0 * sps.binom.cdf(min(b10, b01), n_disc, 0.5)))
    if b01 > 0:
        odds_ratio = b10 / b01
    else:
        odds_ratio = math.inf if b10 > 0 else math.nan
    return {
        "n": n,
        "b10": b10,
        "b01": b01,
        "n_discordant": n_disc,
        "rate_a": float(a.mean()),
        "rate_b": float(b.mean()),
        "diff": (b10 - b01) / n,
        "odds_ratio": odds_ratio,
        "p_value": p_value,
    }
