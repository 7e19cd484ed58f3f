"""Percentile bootstrap over test items, and the spread of a metric over seeds.

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

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from codetune.errors import ConfigError


def as_1d_float(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
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


def check_n_boot_alpha(n_boot: int, alpha: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ConfigError(f"`n_boot` must be a positive integer, got {n_boot!r}", hint="use e.g. n_boot=2000")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"`alpha` must be in (0, 1), got {alpha!r}", hint="use alpha=0.05 for a 95% interval")


def resample_indices(n_items: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_items) matrix of item indices drawn uniformly with replacement."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_items, size=(n_boot, n_items))


def percentile_interval(draws: np.ndarray, alpha: float) -> tuple[float, float]:
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
    values = as_1d_float(per_item_values, "per_item_values")
    check_n_boot_alpha(n_boot, 0.05)
    idx = resample_indices(values.size, n_boot, seed)  # (n_boot, n)
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
    check_n_boot_alpha(n_boot, alpha)
    draws = bootstrap_distribution(per_item_values, statistic, n_boot=n_boot, seed=seed)
    return percentile_interval(draws, alpha)


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
    check_n_boot_alpha(n_boot, alpha)
    items = list(items)
    if not items:
        raise ConfigError("`items` is empty", hint="score at least one test item before computing statistics")
    idx = resample_indices(len(items), n_boot, seed)
    draws = np.array([float(metric_fn([items[i] for i in row])) for row in idx])
    return percentile_interval(draws, alpha)


def mean_and_spread(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Summary of one metric across training seeds (or any repeated runs).

    Returns:
        dict with ``mean``, ``sd`` (sample sd, ddof=1; NaN for a single value: one seed says nothing
        about seed variance), ``min``, ``max``, ``n``.
    """
    arr = as_1d_float(values, "values")
    return {
        "mean": float(arr.mean()),
        "sd": float(arr.std(ddof=1)) if arr.size > 1 else math.nan,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "n": int(arr.size),
    }
