"""Power: how many test items a difference needs, and the smallest difference a test set can detect.

Large-sample normal (or t) approximations; at n < ~30 treat the results as optimistic.
"""

from __future__ import annotations

import math

import numpy as np

from codetune.errors import ConfigError


def _z(q: float) -> float:
    from scipy import stats as sps

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


def _check_baseline(baseline_rate: float) -> None:
    if not 0.0 < baseline_rate < 1.0:
        raise ConfigError(
            f"`baseline_rate` must be in (0, 1), got {baseline_rate!r}",
            hint="pass the observed pass rate of the baseline configuration",
        )


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
    _check_baseline(baseline_rate)
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

    from scipy import optimize

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
    from scipy import stats as sps

    df = n_items - 1
    return float((sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(power, df)) * sd_diff / math.sqrt(n_items))
