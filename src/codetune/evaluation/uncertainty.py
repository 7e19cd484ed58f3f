"""Cheap bootstrap for corpus metrics built from additive per-item statistics (BLEU, CodeBLEU).

Corpus BLEU pools n-gram matches, n-gram totals and lengths over all items before it combines them, so
the BLEU of a resample is a function of the *sum* of its items' statistics. We extract the statistics
once per item (sacrebleu's public `BLEU.sentence_score(...).counts/.totals/.sys_len/.ref_len`), then
each bootstrap replicate is one matrix product ``(n_boot, n_items) @ (n_items, k)`` and a combine
(`BLEU.compute_bleu`, sacrebleu's public static method) — no re-tokenising, no re-parsing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from codetune.reporting.stats import _check_common, _percentile_interval, _resample_indices

# Columns of a BLEU statistics row: matches for n = 1..4, totals for n = 1..4, hypothesis length,
# reference length.
BLEU_STAT_COLUMNS = (
    *(f"correct_{n}" for n in range(1, 5)),
    *(f"total_{n}" for n in range(1, 5)),
    "sys_len",
    "ref_len",
)


def bleu_scorer(tokenize: str = "13a"):
    """A sacrebleu BLEU object set up like `sacrebleu.sentence_bleu` (exp smoothing, effective order)."""
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize=tokenize, effective_order=True)


def bleu_item_stats(
    hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a"
) -> tuple[np.ndarray, list[float]]:
    """Per-item BLEU sufficient statistics and sentence BLEU.

    Returns:
        ``(stats, sentence)``: ``stats`` has shape (n_items, 10) in `BLEU_STAT_COLUMNS` order;
        ``sentence`` is each item's sentence BLEU (0-100), equal to `sacrebleu.sentence_bleu`.
    """
    if len(hypotheses) != len(references):
        raise ValueError("hypotheses and references differ in length")
    scorer = bleu_scorer(tokenize)
    rows, sentence = [], []
    for hyp, ref in zip(hypotheses, references):
        s = scorer.sentence_score(hyp, [ref])
        rows.append([*s.counts, *s.totals, s.sys_len, s.ref_len])
        sentence.append(float(s.score))
    return np.array(rows, dtype=float).reshape(len(rows), len(BLEU_STAT_COLUMNS)), sentence


def bleu_from_stats(stats: np.ndarray) -> float:
    """Corpus BLEU (0-100) from a stats row or matrix; equals `sacrebleu.corpus_bleu` (exp smoothing)."""
    from sacrebleu.metrics import BLEU

    total = np.asarray(stats, dtype=float)
    if total.ndim == 2:
        total = total.sum(axis=0)
    # Counts are integers; round away float noise from the matrix products before sacrebleu sees them.
    t = np.rint(total).astype(int).tolist()
    return float(BLEU.compute_bleu(t[0:4], t[4:8], t[8], t[9], smooth_method="exp").score)


def _summed_replicates(stats: np.ndarray, idx: np.ndarray) -> np.ndarray:
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
    _check_common(n_boot, 0.05)
    idx = _resample_indices(stats.shape[0], n_boot, seed)
    sums = _summed_replicates(stats, idx)
    return np.array([_nan_if_none(combine(row)) for row in sums])


def bootstrap_ci_stats(
    stats: np.ndarray,
    combine: Callable[[np.ndarray], float | None],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of a corpus metric from per-item additive statistics.

    Same draws as `codetune.reporting.stats.bootstrap_ci_corpus` with the same seed, so the two agree
    exactly; this one costs one matrix product instead of ``n_boot`` metric recomputations.

    Returns:
        ``(low, high)``, or None when the metric is undefined on some resample (e.g. CodeBLEU with
        only a dataflow weight) or there are no items.
    """
    _check_common(n_boot, alpha)
    stats = np.asarray(stats, dtype=float)
    if stats.ndim != 2 or stats.shape[0] == 0:
        return None
    draws = bootstrap_distribution_stats(stats, combine, n_boot=n_boot, seed=seed)
    if np.isnan(draws).any():
        return None
    return _percentile_interval(draws, alpha)


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
    `codetune.reporting.stats.paired_bootstrap` does, with the same shift-method p-value. With
    ``paired=False`` (different test sets, e.g. one per language) A and B are resampled independently.

    Returns:
        dict with ``diff``, ``ci_low``, ``ci_high``, ``p_value``, ``n`` (items of A), ``paired``;
        None when the metric is undefined on some resample.
    """
    _check_common(n_boot, alpha)
    a_stats, b_stats = np.asarray(a_stats, dtype=float), np.asarray(b_stats, dtype=float)
    if paired and a_stats.shape != b_stats.shape:
        raise ValueError(f"paired statistics differ in shape: {a_stats.shape} vs {b_stats.shape}")
    full_a, full_b = combine(a_stats.sum(axis=0)), combine(b_stats.sum(axis=0))
    if full_a is None or full_b is None:
        return None
    observed = float(full_a) - float(full_b)
    idx_a = _resample_indices(a_stats.shape[0], n_boot, seed)
    idx_b = idx_a if paired else _resample_indices(b_stats.shape[0], n_boot, seed + 1)
    da = np.array([_nan_if_none(combine(r)) for r in _summed_replicates(a_stats, idx_a)])
    db = np.array([_nan_if_none(combine(r)) for r in _summed_replicates(b_stats, idx_b)])
    draws = da - db
    if np.isnan(draws).any():
        return None
    low, high = _percentile_interval(draws, alpha)
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


def codebleu_combine(weights: Sequence[float] | None = None) -> Callable[[np.ndarray], float | None]:
    """A `combine` function for CodeBLEU statistics, scaled to 0-100 like BLEU."""
    from codetune.evaluation.codebleu import DEFAULT_WEIGHTS, codebleu_from_stats

    w = tuple(DEFAULT_WEIGHTS if weights is None else weights)

    def combine(row: np.ndarray) -> float | None:
        score = codebleu_from_stats(row, w).codebleu
        return None if score is None else 100.0 * score

    return combine


def _nan_if_none(x: float | None) -> float:
    return float("nan") if x is None else float(x)
