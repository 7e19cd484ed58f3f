"""Bootstrap of corpus metrics from additive statistics, checked against brute-force recomputation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sacrebleu

from codetune.evaluation.codebleu import corpus_codebleu
from codetune.evaluation.uncertainty import bleu_from_stats, bleu_item_stats, codebleu_combine
from codetune.stats.bootstrap import bootstrap_ci_corpus
from codetune.stats.corpus import bootstrap_ci_stats, bootstrap_distribution_stats, paired_bootstrap_stats
from codetune.stats.paired import paired_bootstrap

HYPS = ["    return a + b\n", "    pass\n", "    if x:\n        return 1\n    return 2\n", "    total = sum(xs)\n"]
REFS = [
    "    return a - b\n",
    "    return None\n",
    "    if x:\n        return 1\n    return 0\n",
    "    return sum(xs)\n",
]


def test_bleu_stats_reproduce_sacrebleu_corpus_and_sentence_scores():
    stats, sentence = bleu_item_stats(HYPS, REFS)
    assert bleu_from_stats(stats) == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score, abs=1e-9)
    for h, r, s in zip(HYPS, REFS, sentence):
        assert s == pytest.approx(sacrebleu.sentence_bleu(h, [r]).score, abs=1e-9)


def test_bleu_of_every_resample_equals_sacrebleu_recomputation_brute_force():
    # All 4**4 = 256 ordered resamples of 4 items: summed statistics give exactly sacrebleu's corpus BLEU.
    stats, _ = bleu_item_stats(HYPS, REFS)
    for idx in itertools.product(range(4), repeat=4):
        expected = sacrebleu.corpus_bleu([HYPS[i] for i in idx], [[REFS[i] for i in idx]]).score
        assert bleu_from_stats(stats[list(idx)]) == pytest.approx(expected, abs=1e-9)


def test_bootstrap_ci_stats_equals_recomputing_sacrebleu_on_the_same_resamples():
    stats, _ = bleu_item_stats(HYPS, REFS)
    items = list(zip(HYPS, REFS))

    def slow(sample):
        return sacrebleu.corpus_bleu([h for h, _ in sample], [[r for _, r in sample]]).score

    fast = bootstrap_ci_stats(stats, bleu_from_stats, n_boot=150, alpha=0.1, seed=3)
    assert fast == pytest.approx(bootstrap_ci_corpus(items, slow, n_boot=150, alpha=0.1, seed=3), abs=1e-9)


def test_codebleu_bootstrap_equals_recomputation():
    from codetune.evaluation.codebleu import codebleu_item_stats

    stats = codebleu_item_stats(HYPS, REFS, "python")
    combine = codebleu_combine()
    draws = bootstrap_distribution_stats(stats, combine, n_boot=20, seed=1)
    idx = np.random.default_rng(1).integers(0, 4, size=(20, 4))
    for row, d in zip(idx, draws):
        expected = corpus_codebleu([HYPS[i] for i in row], [REFS[i] for i in row], "python").codebleu
        assert d == pytest.approx(100 * expected, abs=1e-9)


def test_paired_bootstrap_stats_matches_generic_paired_bootstrap():
    a, _ = bleu_item_stats(HYPS, REFS)
    b, _ = bleu_item_stats(REFS, REFS)  # a perfect system
    fast = paired_bootstrap_stats(a, b, bleu_from_stats, n_boot=100, seed=5)
    slow = paired_bootstrap(
        list(a), list(b), metric_fn=lambda rows: bleu_from_stats(np.array(rows)), n_boot=100, seed=5
    )
    for key in ("diff", "ci_low", "ci_high", "p_value"):
        assert fast[key] == pytest.approx(slow[key], abs=1e-9)
    assert fast["diff"] < 0 and fast["paired"] is True


def test_unpaired_bootstrap_of_identical_systems_is_not_significant():
    a, _ = bleu_item_stats(HYPS, REFS)
    res = paired_bootstrap_stats(a, a.copy(), bleu_from_stats, n_boot=200, seed=0, paired=False)
    assert res["diff"] == 0.0 and res["p_value"] == 1.0 and res["ci_low"] < 0 < res["ci_high"]


def test_ci_is_none_for_an_undefined_metric():
    stats = np.array([[1.0, 0.0], [0.0, 0.0]])
    assert bootstrap_ci_stats(stats, lambda row: None if row[1] == 0 else row[0] / row[1], n_boot=50) is None


def test_sentence_bleu_from_stats_equals_sacrebleu_sentence_bleu():
    from codetune.evaluation.uncertainty import sentence_bleu_from_stats

    stats, sentence = bleu_item_stats(HYPS, REFS)
    for row, s, h, r in zip(stats, sentence, HYPS, REFS):
        assert sentence_bleu_from_stats(row) == pytest.approx(s, abs=1e-12)
        assert sentence_bleu_from_stats(row) == pytest.approx(sacrebleu.sentence_bleu(h, [r]).score, abs=1e-9)
