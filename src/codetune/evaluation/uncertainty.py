"""Per-item sufficient statistics of BLEU and CodeBLEU, and the functions that combine them into the metric.

Corpus BLEU pools n-gram matches, n-gram totals and lengths over all items before it combines them, so
the BLEU of a resample is a function of the *sum* of its items' statistics. We extract the statistics
once per item (sacrebleu's public `BLEU.sentence_score(...).counts/.totals/.sys_len/.ref_len`), then
each bootstrap replicate is one matrix product ``(n_boot, n_items) @ (n_items, k)`` and a combine
(`BLEU.compute_bleu`, sacrebleu's public static method) — no re-tokenising, no re-parsing. The bootstrap
itself is metric-agnostic and lives in `codetune.stats.corpus`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

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


def sentence_bleu_from_stats(row: np.ndarray) -> float:
    """Sentence BLEU (0-100) of one item's stats row; equals `sacrebleu.sentence_bleu` (effective order)."""
    from sacrebleu.metrics import BLEU

    t = np.rint(np.asarray(row, dtype=float)).astype(int).tolist()
    return float(BLEU.compute_bleu(t[0:4], t[4:8], t[8], t[9], smooth_method="exp", effective_order=True).score)


def codebleu_combine(weights: Sequence[float] | None = None) -> Callable[[np.ndarray], float | None]:
    """A `combine` function for CodeBLEU statistics, scaled to 0-100 like BLEU."""
    from codetune.evaluation.codebleu import DEFAULT_WEIGHTS, codebleu_from_stats

    w = tuple(DEFAULT_WEIGHTS if weights is None else weights)

    def combine(row: np.ndarray) -> float | None:
        score = codebleu_from_stats(row, w).codebleu
        return None if score is None else 100.0 * score

    return combine
