"""Uncertainty for evaluation results: bootstrap intervals, paired tests, power, seed spread.

Every function here is pure (numpy/scipy only, seeded) so a report can be regenerated bit for bit.
The unit of resampling is always the *test item*: with 20 test prompts, a 5-point difference in pass
rate is one item, and these functions make that visible.

Conventions:
    - ``alpha`` is the two-sided error rate: a 95% interval is ``alpha=0.05``.
    - "paired" means both configurations were scored on the same items in the same order.
    - Monte Carlo p-values use the (1 + count) / (1 + draws) form, so they are never exactly 0
      (Davison & Hinkley 1997, *Bootstrap Methods and their Application*, eq. 4.11).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as sps

from codetune.errors import ConfigError

# Exact sign-flip enumeration costs 2**n evaluations; 2**16 = 65,536 rows is still instant.
EXACT_PERMUTATION_MAX_N = 16


def _as_1d_float(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ConfigError(
            f"`{name}` must be a 1-D sequence of numbers, got shape {arr.shape}",
            hint="pass one value per test item",
        )
    if arr.size == 0:
        raise ConfigError(f"`{name}` is empty", hint="score at least one test item before computing statistics")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(
            f"`{name}` contains NaN or infinite values",
            hint="drop or fix the items whose metric could not be computed",
        )
    return arr


def _check_common(n_boot: int, alpha: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ConfigError(f"`n_boot` must be a positive integer, got {n_boot!r}", hint="use e.g. n_boot=2000")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"`alpha` must be in (0, 1), got {alpha!r}", hint="use alpha=0.05 for a 95% interval")


def _resample_indices(n_items: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_items) matrix of item indices drawn uniformly with replacement."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_items, size=(n_boot, n_items))


def _percentile_interval(draws: np.ndarray, alpha: float) -> tuple[float, float]:
    # numpy's default "linear" quantile (Hyndman & Fan type 7).
    low, high = np.quantile(draws, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def bootstrap_distribution(
    per_item_values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """Bootstrap replicates of ``statistic`` over test items (the raw draws behind :func:`bootstrap_ci`).

    Args:
        per_item_values: one value per test item (e.g. 0/1 pass, per-sample BLEU).
        statistic: function of a 1-D array; ``np.mean`` (the default) is vectorised.
        n_boot: number of resamples.
        seed: seed for ``numpy.random.default_rng``.

    Returns:
        Array of shape (n_boot,) with the statistic of each resample.
    """
    values = _as_1d_float(per_item_values, "per_item_values")
    _check_common(n_boot, 0.05)
    idx = _resample_indices(values.size, n_boot, seed)  # (n_boot, n)
    resampled = values[idx]
    if statistic is np.mean:
        return resampled.mean(axis=1)
    return np.array([float(statistic(row)) for row in resampled])


def bootstrap_ci(
    per_item_values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a statistic of per-item values.

    Draw ``n_boot`` resamples of the n items with replacement, compute the statistic on each, and
    return the ``alpha/2`` and ``1 - alpha/2`` quantiles of those replicates (Efron & Tibshirani 1993,
    *An Introduction to the Bootstrap*, ch. 13). The interval reflects test-set sampling only, not
    training-seed variance (see :func:`mean_and_spread` for that).

    Args:
        per_item_values: one value per test item.
        statistic: function of a 1-D array returning a float (default: mean).
        n_boot: number of bootstrap resamples.
        alpha: two-sided level; 0.05 gives a 95% interval.
        seed: RNG seed; the same seed gives the same interval.

    Returns:
        ``(low, high)``.

    Raises:
        ConfigError: empty or non-finite values, ``n_boot < 1``, ``alpha`` outside (0, 1).
    """
    _check_common(n_boot, alpha)
    draws = bootstrap_distribution(per_item_values, statistic, n_boot=n_boot, seed=seed)
    return _percentile_interval(draws, alpha)


def bootstrap_ci_corpus(
    items: Sequence[Any],
    metric_fn: Callable[[list[Any]], float],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval for a corpus-level metric that is not a mean of per-item values.

    Corpus BLEU and CodeBLEU pool n-gram counts over all items before combining them, so the metric
    of a resample must be recomputed from the resampled items, not averaged. Each replicate calls
    ``metric_fn([items[i] for i in idx])`` with ``idx`` drawn with replacement.

    Args:
        items: the test items, e.g. ``[(hypothesis, reference), ...]``.
        metric_fn: maps a list of items (duplicates allowed) to the corpus metric.
        n_boot: number of resamples (each one calls ``metric_fn`` once; keep it modest for slow metrics).
        alpha: two-sided level.
        seed: RNG seed.

    Returns:
        ``(low, high)``.
    """
    _check_common(n_boot, alpha)
    items = list(items)
    if not items:
        raise ConfigError("`items` is empty", hint="score at least one test item before computing statistics")
    idx = _resample_indices(len(items), n_boot, seed)
    draws = np.array([float(metric_fn([items[i] for i in row])) for row in idx])
    return _percentile_interval(draws, alpha)


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
    _check_common(n_boot, alpha)
    if metric_fn is None:
        a = _as_1d_float(a_items, "a_items")
        b = _as_1d_float(b_items, "b_items")
        if a.size != b.size:
            raise ConfigError(
                f"paired inputs differ in length: {a.size} vs {b.size}",
                hint="score both configurations on the same test items",
            )
        d_items = a - b
        observed = float(d_items.mean())
        idx = _resample_indices(a.size, n_boot, seed)
        draws = d_items[idx].mean(axis=1)
    else:
        a_list, b_list = list(a_items), list(b_items)
        if len(a_list) != len(b_list) or not a_list:
            raise ConfigError(
                f"paired inputs must be non-empty and equal in length: {len(a_list)} vs {len(b_list)}",
                hint="score both configurations on the same test items",
            )
        observed = float(metric_fn(a_list)) - float(metric_fn(b_list))
        idx = _resample_indices(len(a_list), n_boot, seed)
        draws = np.array(
            [
                float(metric_fn([a_list[i] for i in row])) - float(metric_fn([b_list[i] for i in row]))
                for row in idx
            ]
        )
    low, high = _percentile_interval(draws, alpha)
    # Tolerance so that an exactly-zero observed difference gives p = 1, not a float-noise artefact.
    tol = 1e-12 * max(1.0, abs(observed))
    extreme = int(np.sum(np.abs(draws - observed) >= abs(observed) - tol))
    p_value = (1 + extreme) / (1 + n_boot)
    return {
        "diff": observed,
        "ci_low": low,
        "ci_high": high,
        "p_value": float(min(1.0, p_value)),
        "n": int(idx.shape[1]),
    }


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
    a_arr = _as_1d_float(a, "a")
    b_arr = _as_1d_float(b, "b")
    if a_arr.size != b_arr.size:
        raise ConfigError(
            f"paired inputs differ in length: {a_arr.size} vs {b_arr.size}",
            hint="score both configurations on the same test items",
        )
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


def _z(q: float) -> float:
    return float(sps.norm.ppf(q))


def _check_power(n_items: int, alpha: float, power: float) -> None:
    if not isinstance(n_items, (int, np.integer)) or n_items < 1:
        raise ConfigError(f"`n_items` must be a positive integer, got {n_items!r}", hint="pass the test-set size")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"`alpha` must be in (0, 1), got {alpha!r}", hint="use alpha=0.05")
    if not 0.0 < power < 1.0:
        raise ConfigError(f"`power` must be in (0, 1), got {power!r}", hint="use power=0.8")


def n_items_two_proportions(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Items per group to tell pass rates p1 and p2 apart with independent samples (normal approx.).

    ``n = (z_{1-a/2} sqrt(2 pbar (1-pbar)) + z_{power} sqrt(p1 q1 + p2 q2))^2 / (p1 - p2)^2``,
    ``pbar = (p1 + p2) / 2`` (Fleiss, Levin & Paik 2003, eq. 4.14, without continuity correction).
    """
    delta = p2 - p1
    pbar = (p1 + p2) / 2.0
    num = _z(1 - alpha / 2) * math.sqrt(2 * pbar * (1 - pbar)) + _z(power) * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return num**2 / delta**2


def n_items_mcnemar(delta: float, discordance: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Paired items for McNemar's test to detect a pass-rate difference ``delta`` (normal approx.).

    With discordant fraction ``psi = p10 + p01`` and ``delta = p10 - p01``:
    ``n = (z_{1-a/2} sqrt(psi) + z_{power} sqrt(psi - delta^2))^2 / delta^2`` (Connor 1987,
    "Sample size for testing differences in proportions for the paired-sample design", Biometrics 43).
    """
    num = _z(1 - alpha / 2) * math.sqrt(discordance) + _z(power) * math.sqrt(max(0.0, discordance - delta**2))
    return num**2 / delta**2


def minimum_detectable_effect(
    n_items: int,
    baseline_rate: float,
    alpha: float = 0.05,
    power: float = 0.8,
    paired: bool = True,
    discordance: float | None = None,
) -> float:
    """Smallest increase in pass rate over ``baseline_rate`` detectable with ``n_items`` test items.

    Inverts the sample-size formulas numerically (Brent's method on the effect):
      - ``paired=False``: two independent proportions, :func:`n_items_two_proportions`
        (each configuration scored on its own ``n_items`` items).
      - ``paired=True``: McNemar on the same items, :func:`n_items_mcnemar`. It needs the fraction of
        discordant items ``psi``; if ``discordance`` is None we assume the two configurations fail
        independently at the baseline rate, ``psi = 2 p (1 - p)``. Real configurations are positively
        correlated, so the observed ``psi`` is usually smaller and the true MDE smaller: pass the
        observed discordant fraction when you have it. The effect cannot exceed ``psi``.

    Both are large-sample normal approximations; at n < ~30 treat the result as optimistic.

    Args:
        n_items: number of test items.
        baseline_rate: pass rate of the reference configuration, in (0, 1).
        alpha: two-sided significance level.
        power: probability of detecting an effect of the returned size.
        paired: use the paired (McNemar) design.
        discordance: assumed fraction of discordant items for the paired design, in (0, 1].

    Returns:
        The minimum detectable difference in pass rate (absolute, e.g. 0.12 = 12 points), or
        ``math.inf`` if even the largest possible effect is not detectable at this size.
    """
    _check_power(n_items, alpha, power)
    if not 0.0 < baseline_rate < 1.0:
        raise ConfigError(
            f"`baseline_rate` must be in (0, 1), got {baseline_rate!r}",
            hint="pass the observed pass rate of the baseline configuration",
        )
    if paired:
        psi = 2 * baseline_rate * (1 - baseline_rate) if discordance is None else float(discordance)
        if not 0.0 < psi <= 1.0:
            raise ConfigError(
                f"`discordance` must be in (0, 1], got {discordance!r}",
                hint="pass the observed fraction of items on which the two configurations disagree",
            )
        hi = min(psi, 1.0 - baseline_rate)

        def excess(d: float) -> float:
            return n_items_mcnemar(d, psi, alpha, power) - n_items
    else:
        hi = 1.0 - baseline_rate

        def excess(d: float) -> float:
            return n_items_two_proportions(baseline_rate, baseline_rate + d, alpha, power) - n_items

    lo = 1e-9
    if excess(hi) > 0:
        return math.inf
    return float(optimize.brentq(excess, lo, hi, xtol=1e-12))


def minimum_detectable_effect_continuous(
    n_items: int, sd_diff: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest mean paired difference detectable for a continuous metric (e.g. per-sample BLEU).

    Paired t-test approximation: ``delta = (t_{1-a/2, n-1} + t_{power, n-1}) * sd_diff / sqrt(n)``,
    where ``sd_diff`` is the standard deviation of the per-item differences A - B (estimate it from a
    pilot run). Uses t quantiles with n - 1 degrees of freedom in place of z (slightly conservative
    versus the exact noncentral-t solution).
    """
    _check_power(n_items, alpha, power)
    if n_items < 2:
        raise ConfigError("`n_items` must be at least 2 for a paired t approximation", hint="use more test items")
    if not sd_diff >= 0.0 or not math.isfinite(sd_diff):
        raise ConfigError(
            f"`sd_diff` must be a finite non-negative number, got {sd_diff!r}",
            hint="pass the sd of per-item differences",
        )
    df = n_items - 1
    return float((sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(power, df)) * sd_diff / math.sqrt(n_items))


def mean_and_spread(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Summary of one metric across training seeds (or any repeated runs).

    Returns:
        dict with ``mean``, ``sd`` (sample sd, ddof=1; NaN for a single value: one seed says nothing
        about seed variance), ``min``, ``max``, ``n``.
    """
    arr = _as_1d_float(values, "values")
    return {
        "mean": float(arr.mean()),
        "sd": float(arr.std(ddof=1)) if arr.size > 1 else math.nan,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "n": int(arr.size),
    }
