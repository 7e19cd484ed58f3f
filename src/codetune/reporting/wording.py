"""How the report words numbers and findings: one place, so a difference the test does not support is
never stated as a finding (`describe`)."""

from __future__ import annotations

import math
from typing import Any

from codetune.reporting.analysis import METRICS, Config, Level, config_value
from codetune.reporting.comparison import Comparison

NAMES = {key: name for key, name, _ in METRICS} | {"trivial_rate": "stub rate %"}


def fmt(x: float | None, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{nd}f}"


def fmt_mde(mde: float | None) -> str:
    """Minimum detectable effect in points; inf means no effect reaches 80% power at this n."""
    if mde is None:
        return "n/a"
    return "none reaches 80% power" if math.isinf(mde) else f"{mde:.1f} points"


def fmt_p(p: float) -> str:
    """A p-value for a table cell: '<0.001' or three decimals."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def p_eq(p: float) -> str:
    """A p-value in a sentence: 'p<0.001' or 'p=0.048'."""
    return "p" + (fmt_p(p) if p < 0.001 else "=" + fmt_p(p))


def fmt_alpha(alpha: float) -> str:
    """A significance level as the report writes it: 0.05, 0.1."""
    return f"{alpha:g}"


def fmt_value(v: dict[str, Any] | None) -> str:
    if v is None:
        return "n/a"
    s = fmt(v["value"])
    if v["n_seeds"] > 1:
        s += f" ± {fmt(v['sd'])}"
    if v["ci"] is not None:
        s += f" [{fmt(v['ci'][0])}, {fmt(v['ci'][1])}]"
    return s


def signed(x: float) -> str:
    """`x` with its sign to two decimals; a value that rounds to zero is "+0.00", never "-0.00"."""
    return f"{round(x, 2) or 0.0:+.2f}"


def diff_ci(c: Comparison) -> str:
    """A comparison's difference and interval: "+1.25 [-0.50, +3.00]"."""
    return f"{signed(c.diff)} [{signed(c.ci[0])}, {signed(c.ci[1])}]"


def describe(c: Comparison) -> str:
    """One sentence for a comparison; 'not significant' whenever p >= its alpha."""
    name = NAMES.get(c.metric, c.metric)
    core = f"{name}: {c.a} − {c.b} = {diff_ci(c)}, {p_eq(c.p_value)} ({c.test})"
    if c.significant:
        return core + f"; significant at α={fmt_alpha(c.alpha)}"
    mde = f"; minimum detectable difference {fmt_mde(c.mde)}" if c.mde else ""
    return core + f"; not significant at this sample size (n={c.n}){mde}"


def sort_key(v: Any) -> tuple:
    """Numbers in numeric order, then everything else by its text."""
    return (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v))


def lookup(comparisons, a: str, b: str, metric: str) -> Comparison | None:
    """The comparison of a and b on `metric`, worded as a − b (flipped if it was tested as b − a)."""
    for c in comparisons:
        if c.metric == metric and {c.a, c.b} == {a, b}:
            if c.a == a:
                return c
            # Flip so the sentence reads a − b.
            return Comparison(
                a,
                b,
                metric,
                -c.diff,
                (-c.ci[1], -c.ci[0]),
                c.p_value,
                c.test,
                c.n,
                c.paired,
                c.mde,
                flip_effect(c.effect),
                c.alpha,
                None if c.discordant is None else (c.discordant[1], c.discordant[0]),
            )
    return None


def flip_effect(effect: str) -> str:
    """An effect-size text for b − a from the one for a − b."""
    import re

    effect = re.sub(r"discordant (\d+)/(\d+)", r"discordant \2/\1", effect)
    return effect.replace("+", "\0").replace("-", "+").replace("\0", "-")


def values_line(ordered: list[Config], metric: str, level: Level | None = None) -> str | None:
    """One line, e.g. "BLEU: Rank 4 v [ci]; Rank 16 ...", over configurations in order (None: none has it)."""
    vals = [(c.label, config_value(c, metric, level)) for c in ordered]
    if all(v is None for _, v in vals):
        return None
    return f"{NAMES.get(metric, metric)}: " + "; ".join(f"{lab} {fmt_value(v)}" for lab, v in vals) + "."


def adjacent(ordered: list[Config], comparisons, metrics) -> tuple[list[str], list[Comparison]]:
    """Each step along `ordered` (next − previous) described, and the significant ones."""
    lines, sig = [], []
    for a, b in zip(ordered[1:], ordered[:-1]):
        for m in metrics:
            c = lookup(comparisons, a.label, b.label, m)
            if c is not None:
                lines.append(describe(c) + ".")
                if c.significant:
                    sig.append(c)
    return lines, sig
