"""Cheap bootstrap for corpus metrics built from additive per-item statistics (BLEU, CodeBLEU, rates).

A corpus metric such as BLEU pools counts over all items before it combines them, so the metric of a
resample is a function of the *sum* of its items' statistics. Given those statistics once per item
(an ``(n_items, k)`` matrix) and a ``combine`` function of one summed row, each bootstrap replicate is
one row of a matrix product ``(n_boot, n_items) @ (n_items, k)`` and one combine: no re-tokenising,
no re-parsing. What the columns mean is the metric's business (see `codetune.evaluation.uncertainty`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from codetune.stats.bootstrap import check_n_boot_alpha, percentile_interval, resample_indices


def summed_replicates(stats: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(n_boot, k): the summed statistics of each resample (idx is (n_boot, n_items))."""
    n_boot, n = idx.shape
    # Multiplicity of each item in each resample; (n_boot, n) @ (n, k) sums the resampled rows.
    weights = np.zeros((n_boot, n))
    np.add.at(weights, (np.repeat(np.arange(n_boot), n), idx.ravel()), 1.0)
    return weights @ stats


def bootstrap_distribution_stats(
    stats: np.ndarray, combine: Callable[[np.ndarray], float | None], n_boot: int = 1000, seed: int = 0
) -> np.ndarray:
    """Replicates of a corpus metric over resampled items (NaN where `combine` returns None)."""
    stats = np.asarray(stats, dtype=float)
    check_n_boot_alpha(n_boot, 0.05)
    idx = resample_indices(stats.shape[0], n_boot, seed)
    sums = summed_replicates(stats, idx)
    return np.array([_nan_if_none(combine(row)) for row in sums])


def bootstrap_ci_stats(
    stats: np.ndarray,
    combine: Callable[[np.ndarray], float | None],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of a corpus metric from per-item additive statistics.

    Same draws as `codetune.stats.bootstrap.bootstrap_ci_corpus` with the same seed, so the two agree
    exactly; this one costs one matrix product instead of ``n_boot`` metric recomputations.

    Returns:
        ``(low, high)``, or None when the metric is undefined on some resample (e.g. CodeBLEU with
        only a dataflow weight) or there are no items.
    """
    check_n_boot_alpha(n_boot, alpha)
    stats = np.asarray(stats, dtype=float)
    if stats.ndim != 2 or stats.shape[0] == 0:
        return None
    draws = bootstrap_distribution_stats(stats, combine, n_boot=n_boot, seed=seed)
    if np.isnan(draws).any():
        return None
    return percentile_interval(draws, alpha)


def paired_bootstrap_stats(
    a_stats: np.ndarray,
    b_stats: np.ndarray,
    combine: Callable[[np.ndarray], float | None],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    paired: bool = True,
) -> dict[str, float] | None:
    """Bootstrap test of ``metric(A) - metric(B)`` from additive statistics.

    ``paired=True`` (same test items, same order) applies one set of resampled indices to both, as
    `codetune.stats.paired.paired_bootstrap` does, with the same shift-method p-value. With
    ``paired=False`` (different test sets, e.g. one per language) A and B are resampled independently.

    Returns:
        dict with ``diff``, ``ci_low``, ``ci_high``, ``p_value``, ``n`` (items of A), ``paired``;
        None when the metric is undefined on some resample.
    """
    check_n_boot_alpha(n_boot, alpha)
    a_stats, b_stats = np.asarray(a_stats, dtype=float), np.asarray(b_stats, dtype=float)
    if paired and a_stats.shape != b_stats.shape:
        raise ValueError(f"paired statistics differ in shape: {a_stats.shape} vs {b_stats.shape}")
    full_a, full_b = combine(a_stats.sum(axis=0)), combine(b_stats.sum(axis=0))
    if full_a is None or full_b is None:
        return None
    observed = float(full_a) - float(full_b)
    idx_a = resample_indices(a_stats.shape[0], n_boot, seed)
    idx_b = idx_a if paired else resample_indices(b_stats.shape[0], n_boot, seed + 1)
    da = np.array([_nan_if_none(combine(r)) for r in summed_replicates(a_stats, idx_a)])
    db = np.array([_nan_if_none(combine(r)) for r in summed_replicates(b_stats, idx_b)])
    draws = da - db
    if np.isnan(draws).any():
        return None
    low, high = percentile_interval(draws, alpha)
    tol = 1e-12 * max(1.0, abs(observed))
    extreme = int(np.sum(np.abs(draws - observed) >= abs(observed) - tol))
    return {
        "diff": observed,
        "ci_low": low,
        "ci_high": high,
        "p_value": float(min(1.0, (1 + extreme) / (1 + n_boot))),
        "n": int(a_stats.shape[0]),
        "paired": paired,
    }


def _nan_if_none(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def rate_stats(flags: list[bool] | np.ndarray) -> np.ndarray:
    """A pass rate as additive statistics: one ``(passed, attempted)`` row per item, shape (n_items, 2)."""
    flags = np.asarray(flags, dtype=float)
    return np.column_stack([flags, np.ones(len(flags))])


def rate_combine(row: np.ndarray) -> float | None:
    """Percentage of passes from summed `rate_stats` rows; None with no attempts."""
    return None if row[1] == 0 else 100.0 * float(row[0]) / float(row[1])
