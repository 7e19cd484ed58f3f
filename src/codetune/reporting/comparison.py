"""A − B between two configurations on one metric, with the right test for it.

Every metric is resampled from its additive per-item statistics (see `codetune.reporting.analysis`):
paired when both were scored on the same items (corpus items for BLEU/CodeBLEU/syntax/stub rate,
benchmark tasks for pass@1, infilling items for infilling pass@1), independent otherwise. Pass/fail
metrics of a single seed also get the exact test: McNemar when paired, Fisher when not; several samples
per task leave the bootstrap alone.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from codetune.reporting.analysis import (
    INFILL_METRICS,
    TASK_METRICS,
    Config,
    Level,
    Run,
    combine_for,
    pooled_stats,
)


@dataclass
class Comparison:
    """A − B on one metric, tested at significance level `alpha`.

    `discordant` is McNemar's (b, c) when the exact McNemar test was used: b items (or tasks) pass in A
    only, c in B only.
    """

    a: str
    b: str
    metric: str
    diff: float
    ci: tuple[float, float]
    p_value: float
    test: str
    n: int
    paired: bool
    mde: float | None
    effect: str = ""
    alpha: float = 0.05
    discordant: tuple[int, int] | None = None

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha


def compare(
    a: Config, b: Config, metric: str, level: Level | None = None, pool_seeds: bool = False
) -> Comparison | None:
    """Test A − B on `metric` at `level`; None when either lacks the metric's per-item data.

    Seeds both configurations ran are compared seed with seed (statistics summed over them per item);
    `pool_seeds` sums every run of each instead (a base model, whose greedy output has no seed).
    """
    from codetune.stats.corpus import paired_bootstrap_stats

    level = level or Level()
    common = [s for s in a.seeds() if s in b.seeds()]
    seeds = None if pool_seeds else (common or None)
    sa, sb = pooled_stats(a, metric, seeds), pooled_stats(b, metric, seeds)
    if sa is None or sb is None:
        return None
    runs_a = [r for r in a.runs if seeds is None or r.seed in seeds]
    runs_b = [r for r in b.runs if seeds is None or r.seed in seeds]
    ra, rb = runs_a[0], runs_b[0]
    paired = ra.ids(metric) == rb.ids(metric) and sa.shape == sb.shape
    res = paired_bootstrap_stats(
        sa, sb, combine_for(metric), n_boot=level.n_boot, alpha=level.alpha, paired=paired
    )
    if res is None:
        return None
    test = ("paired" if paired else "unpaired") + " bootstrap"
    ci = (res["ci_low"], res["ci_high"])
    n = int(sa.shape[0])
    cmp = Comparison(
        a.label, b.label, metric, res["diff"], ci, res["p_value"], test, n, paired, None, "", level.alpha
    )
    k = max(len(runs_a), len(runs_b))
    if metric in ("BLEU", "CodeBLEU"):
        _continuous_effect(cmp, ra, rb, metric)
    else:
        _binary_test(cmp, ra, rb, metric, single_seed=k == 1)
    what = "infilling items" if metric in INFILL_METRICS else "tasks" if metric in TASK_METRICS else "items"
    if metric in TASK_METRICS:
        cmp.test = cmp.test.replace("bootstrap", f"bootstrap over {what}")
    if k > 1:
        cmp.test += f", {what} pooled over {k} seeds"
    return cmp


def _continuous_effect(cmp: Comparison, ra: Run, rb: Run, metric: str) -> None:
    from codetune.stats.power import minimum_detectable_effect_continuous

    xa, xb = ra.sentence.get(metric), rb.sentence.get(metric)
    if xa is None or xb is None or np.isnan(xa).any() or np.isnan(xb).any() or cmp.n < 2:
        return
    if cmp.paired:
        d = xa - xb
        sd = float(d.std(ddof=1))
        cmp.effect = f"d_z={d.mean() / sd:+.2f}" if sd > 0 else ""
    else:
        sd = math.sqrt(float(xa.var(ddof=1)) + float(xb.var(ddof=1)))
        pooled = sd / math.sqrt(2)
        cmp.effect = f"d={(xa.mean() - xb.mean()) / pooled:+.2f}" if pooled > 0 else ""
    # Sentence-level spread as the proxy for the corpus metric's: an approximation, said in the report.
    cmp.mde = minimum_detectable_effect_continuous(cmp.n, sd, alpha=cmp.alpha) if sd > 0 else None


def _binary_test(cmp: Comparison, ra: Run, rb: Run, metric: str, single_seed: bool) -> None:
    from scipy import stats as sps

    from codetune.stats.paired import mcnemar_exact
    from codetune.stats.power import minimum_detectable_effect

    xa, xb = ra.stats[metric][:, 0], rb.stats[metric][:, 0]
    if not (np.isin(xa, (0.0, 1.0)).all() and np.isin(xb, (0.0, 1.0)).all()):
        # Several samples per task: a task's statistic is its pass rate, so only the bootstrap applies.
        cmp.test += " (per-task pass rates)"
        return
    fa, fb = xa.astype(bool), xb.astype(bool)
    pa, pb = fa.mean(), fb.mean()
    cmp.effect = f"h={2 * math.asin(math.sqrt(pa)) - 2 * math.asin(math.sqrt(pb)):+.2f}"
    n = len(fb)
    # MDE of the test-set size: the two-proportion formula (conservative for a paired design, and it
    # needs no guess of the discordance) at the pair's mean rate, on its smaller side because a
    # decrease from p is an increase from 1 - p.
    mid = (float(pa) + float(pb)) / 2.0
    base = min(max(min(mid, 1.0 - mid), 0.5 / n), 0.5)
    cmp.mde = 100.0 * minimum_detectable_effect(n, base, alpha=cmp.alpha, paired=False)
    if cmp.paired:
        mc = mcnemar_exact(fa, fb)
        if single_seed:
            cmp.p_value, cmp.test = mc["p_value"], "exact McNemar"
            cmp.effect += f", discordant {mc['b10']}/{mc['b01']}"
            cmp.discordant = (mc["b10"], mc["b01"])
    else:
        if single_seed:
            table = [[int(fa.sum()), int((~fa).sum())], [int(fb.sum()), int((~fb).sum())]]
            cmp.p_value, cmp.test = float(sps.fisher_exact(table).pvalue), "Fisher exact"


def all_comparisons(configs: list[Config], metrics: list[str], level: Level | None = None) -> list[Comparison]:
    """Every pair of configurations on every metric they both have."""
    out = []
    for a, b in itertools.combinations(configs, 2):
        for m in metrics:
            c = compare(a, b, m, level)
            if c is not None:
                out.append(c)
    return out
