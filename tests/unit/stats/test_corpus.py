"""codetune.stats.corpus on pass rates: the additive-statistics bootstrap equals the per-item one."""

from __future__ import annotations

import numpy as np
import pytest

from codetune.stats.bootstrap import bootstrap_ci
from codetune.stats.corpus import bootstrap_ci_stats, paired_bootstrap_stats, rate_combine, rate_stats
from codetune.stats.paired import paired_bootstrap

FLAGS_A = [True, True, False, True, False, True, True, False, True, True]
FLAGS_B = [False, True, False, False, False, True, False, False, True, False]


def test_rate_of_summed_statistics():
    assert rate_combine(rate_stats(FLAGS_A).sum(axis=0)) == pytest.approx(70.0)
    assert rate_combine(np.zeros(2)) is None


def test_rate_interval_equals_the_per_item_bootstrap_with_the_same_draws():
    per_item = bootstrap_ci([100.0 * f for f in FLAGS_A], n_boot=400, alpha=0.1, seed=4)
    fast = bootstrap_ci_stats(rate_stats(FLAGS_A), rate_combine, n_boot=400, alpha=0.1, seed=4)
    assert fast == pytest.approx(per_item, abs=1e-9)


def test_paired_rate_test_equals_the_per_item_paired_bootstrap():
    a, b = [100.0 * f for f in FLAGS_A], [100.0 * f for f in FLAGS_B]
    slow = paired_bootstrap(a, b, n_boot=300, seed=2)
    fast = paired_bootstrap_stats(rate_stats(FLAGS_A), rate_stats(FLAGS_B), rate_combine, n_boot=300, seed=2)
    for key in ("diff", "ci_low", "ci_high", "p_value"):
        assert fast[key] == pytest.approx(slow[key], abs=1e-9)
    assert fast["diff"] == pytest.approx(40.0) and fast["n"] == 10


def test_stats_package_is_a_leaf():
    """codetune.stats imports nothing from codetune but codetune.errors (and itself)."""
    import re
    from pathlib import Path

    import codetune.stats as pkg

    for path in Path(pkg.__file__).parent.glob("*.py"):
        for mod in re.findall(r"^\s*(?:from|import) (codetune[\w.]*)", path.read_text(), flags=re.M):
            assert mod == "codetune.errors" or mod.startswith("codetune.stats"), (path.name, mod)
