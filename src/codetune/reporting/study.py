"""The seed study's research questions (RQ1-RQ8), answered from an experiment's own measurements.

An optional part of the report: `study_section` returns blocks only when the experiment varies one of
the study's axes (LoRA rank, training-set size, language). Every answer is worded through `describe`,
so a difference is a finding only where its test is significant at the recorded level. Functional
correctness is pass@1 on the benchmark where the runs measured it (per benchmark task), and syntax
validity on the corpus items besides. The base-model rows are not on any axis; RQ2 counts them among
the configurations whose BLEU and pass@1 it sets side by side.
"""

from __future__ import annotations

import math

from codetune.reporting.analysis import Config, Experiment, Level, config_value, item_correlation
from codetune.reporting.benchmark import bleu_vs_pass, taxonomy
from codetune.reporting.comparison import Comparison
from codetune.reporting.wording import (
    NAMES,
    adjacent,
    describe,
    fmt,
    fmt_alpha,
    fmt_value,
    lookup,
    p_eq,
    sort_key,
    values_line,
)

_DEFAULT = Level()


def _correlation_verdict(corr: dict, level: Level) -> str:
    """'significant', or the honest sample-size caveat, for a pooled per-item correlation."""
    if corr["p_value"] < level.alpha:
        return "significant"
    return f"not significant at this sample size (n={corr['n']} item-runs)"


_RQS = (
    ("RQ1", "Is there a saturation point for LoRA rank?", "lora.r"),
    ("RQ2", "Do BLEU and functional correctness correlate?", "lora.r"),
    ("RQ3", "Does functional correctness improve linearly with data? (the Hello-World effect)", "data.train_size"),
    ("RQ4", "What is the minimum data requirement for reliable code generation?", "data.train_size"),
    ("RQ5", "Are syntax errors and code complexity (logic) coupled?", "data.train_size"),
    ("RQ6", "Are verbose languages harder for small LMs to learn?", "data.language"),
    ("RQ7", "Does syntax pass rate differ by language?", "data.language"),
    ("RQ8", "Does the model generalise across programming paradigms?", "data.language"),
)


def study_section(exp: Experiment, comparisons: list[Comparison]) -> list[tuple]:
    """The research questions as report blocks; [] when the experiment varies none of the study's axes."""
    axes = exp.axes
    if not any(axis in axes for axis in STUDY_AXES):
        return []
    out = [
        ("h2", "Research questions (from the seed study)"),
        (
            "p",
            (
                "Each answer uses only this experiment's measurements; a difference is stated as a finding "
                f"only where its test gives p < {fmt_alpha(exp.level.alpha)}."
            ),
        ),
    ]
    for rq, question, axis in _RQS:
        out.append(("h3", f"{rq}: {question}"))
        if axis not in axes:
            out.append(("p", f"Not addressed by this experiment (it has no {axis} axis)."))
            continue
        cells, held = _holding_others(exp.trained, axis, axes)
        if held:
            out.append(("p", held))
        ordered = sorted(cells, key=lambda c: sort_key(c.axis_value(axis)))
        if rq == "RQ2":
            ordered = exp.bases + ordered
        runs = [r for c in ordered for r in c.runs]
        answer = _ANSWERS[rq](ordered, runs, comparisons, axis, exp.level)
        out += [("p", text) for text in answer]
    return out


def _holding_others(trained: list[Config], axis: str, axes: list[str]) -> tuple[list[Config], str]:
    """The configurations along `axis` with the experiment's other axes held at the first grid cell's values
    (an answer compares steps of one axis, not cells that also differ in another), and a sentence saying
    so ("" when `axis` is the only axis)."""
    others = [a for a in axes if a != axis]
    if not others or not trained:
        return trained, ""
    first = trained[0]
    cells = [c for c in trained if all(c.axis_value(a) == first.axis_value(a) for a in others)]
    held = ", ".join(f"{a}={first.axis_value(a)}" for a in others)
    return cells, (
        f"Along {axis} with {held} (the experiment's other axes held at their first value; differences "
        "along those axes are answered in their own sections)."
    )


def _functional_metrics(runs) -> list[str]:
    return [m for m in ("pass@1", "Syntax_Pass_Rate") if any(r.stats.get(m) is not None for r in runs)]


def _rq1(ordered, runs, comparisons, axis, level: Level = _DEFAULT) -> list[str]:
    metrics = ["BLEU", "CodeBLEU"] + _functional_metrics(runs)
    out = [line for m in metrics if (line := values_line(ordered, m, level))]
    lines, _ = adjacent(ordered, comparisons, metrics)
    out += lines
    # Saturation: the smallest rank that no larger rank beats significantly on any metric.
    sat = None
    for i, c in enumerate(ordered):
        beaten = any(
            (cmp := lookup(comparisons, d.label, c.label, m)) is not None and cmp.significant and cmp.diff > 0
            for d in ordered[i + 1 :]
            for m in metrics
        )
        if not beaten:
            sat = c
            break
    if sat is ordered[0]:
        out.append(
            f"Answer: no larger rank is significantly better than {sat.label} on any metric, so these data "
            "show no gain from rank beyond the smallest tested; they cannot locate a saturation point "
            "inside the tested range."
        )
    elif sat is not None:
        smaller = ordered[: ordered.index(sat)]
        gains = [
            cmp
            for s in smaller
            for m in metrics
            if (cmp := lookup(comparisons, sat.label, s.label, m)) is not None and cmp.significant and cmp.diff > 0
        ]
        if gains:
            out.append(
                f"Answer: {sat.label} is significantly better than a smaller rank ("
                + "; ".join(describe(c) for c in gains)
                + f") and no larger rank is significantly better than it: the measured saturation point is "
                f"{sat.label}."
            )
        else:
            # A larger rank beats a smaller one, but no rank is both a significant gain and unbeaten:
            # the data show an effect of rank without locating where it stops.
            wins = [
                cmp
                for i, a in enumerate(ordered)
                for b in ordered[:i]
                for m in metrics
                if (cmp := lookup(comparisons, a.label, b.label, m)) is not None and cmp.significant
            ]
            out.append(
                "Answer: the data cannot locate a saturation point. Significant differences: "
                + "; ".join(describe(c) for c in wins)
                + f". {sat.label} is not significantly different from the smaller ranks, and no larger rank is "
                "significantly better than it (p-values not adjusted for the number of comparisons)."
            )
    return out


def _rq2(ordered, runs, comparisons, axis, level: Level = _DEFAULT) -> list[str]:
    """Per benchmark task: sentence BLEU against pass/fail per configuration; across configurations: corpus
    BLEU against pass@1; and, on the corpus items, BLEU against syntax validity."""
    out, found = [], []
    for c in ordered:
        res = bleu_vs_pass([r.bench for r in c.runs if r.bench is not None], level.alpha)
        out.append(_bleu_pass_line(c, res))
        if res["status"] == "ok":
            found.append(res)
    out += _across(ordered, "pass@1", "corpus BLEU", level)
    if any(r.stats.get("Syntax_Pass_Rate") is not None for r in runs):
        corr = item_correlation(runs, "BLEU", "Syntax_Pass_Rate", level.ci_level)
        if corr is None:
            out.append("On the corpus test items, BLEU vs syntax validity: undefined (one of them is constant).")
        else:
            out.append(
                "On the corpus test items (which have no tests), sentence BLEU vs syntax validity "
                f"(point-biserial): r={corr['r']:+.2f} [{corr['ci'][0]:+.2f}, {corr['ci'][1]:+.2f}], "
                f"{p_eq(corr['p_value'])}; {_correlation_verdict(corr, level)} (items pooled over runs, so p "
                "is approximate)."
            )
        out += _across(ordered, "Syntax_Pass_Rate", "BLEU", level)
    if found:
        sig = [f for f in found if f["significant"] and f["r"] > 0]
        out.append(
            f"Answer: per benchmark task, BLEU tracks pass/fail (significant positive correlation) in {len(sig)} "
            f"of the {len(found)} configurations whose samples could be correlated"
            + ("." if sig else "; elsewhere the data do not show it at this sample size.")
        )
    elif not any(r.stats.get(m) is not None for r in runs for m in ("pass@1", "Syntax_Pass_Rate")):
        out.append("No functional measure (syntax or pass@1) was measured, so the question cannot be answered.")
    return out


def _bleu_pass_line(c: Config, res: dict) -> str:
    status = res["status"]
    if status == "not_measured":
        return f"{c.label}: pass@1 not measured ({c.pass_note() or 'no benchmark results'}), so BLEU cannot be set against it."
    if status == "no_bleu":
        return (
            f"{c.label}: the benchmark results carry no per-sample BLEU (`bleu_stats` in results.jsonl), so BLEU "
            "cannot be set against pass/fail per task."
        )
    if status == "constant":
        what = "passed" if res["n_fail"] == 0 else "failed" if res["n_pass"] == 0 else "had the same BLEU"
        return f"{c.label}: every one of its {res['n']} benchmark samples {what}: the correlation is undefined."
    caveat = (
        " (samples of one task are not independent, so p is approximate)" if res["per_task_samples"] > 1 else ""
    )
    verdict = (
        "significant" if res["significant"] else f"not significant at this sample size (n={res['n']} samples)"
    )
    return (
        f"{c.label}: per benchmark sample, sentence BLEU against the canonical solution vs pass/fail "
        f"(point-biserial): r={res['r']:+.2f}, {p_eq(res['p_value'])} over {res['n']} samples of "
        f"{res['n_tasks']} tasks{caveat}; mean BLEU {fmt(res['pass_bleu'])} for the {res['n_pass']} passing vs "
        f"{fmt(res['fail_bleu'])} for the {res['n_fail']} failing samples; {verdict}."
    )


def _across(ordered, flag: str, bleu_name: str, level: Level) -> list[str]:
    """Spearman's rho between BLEU and `flag` over configurations, with its exact permutation p."""
    name = NAMES[flag]
    pairs = [(config_value(c, "BLEU", level), config_value(c, flag, level)) for c in ordered]
    pairs = [(x["value"], y["value"]) for x, y in pairs if x and y]
    if not pairs:
        return []
    if len(pairs) < 3:
        return [
            f"Across configurations ({bleu_name} vs {name}): only {len(pairs)} points, too few for a correlation."
        ]
    rho, p = spearman_exact([q[0] for q in pairs], [q[1] for q in pairs])
    if math.isnan(rho):
        return [f"Across configurations ({bleu_name} vs {name}): undefined (one of them is the same everywhere)."]
    caveat = "" if p < level.alpha else f"; not significant at this sample size ({len(pairs)} configurations)"
    return [
        f"Across configurations, Spearman ρ({bleu_name}, {name}) = {_fmt_rho(rho)} over {len(pairs)} "
        f"configurations, exact permutation {p_eq(p)}{caveat}."
    ]


def spearman_exact(x: list[float], y: list[float]) -> tuple[float, float]:
    """Spearman's rho and its exact two-sided permutation p-value (all k! orderings; k <= 8).

    With 3 configurations the smallest attainable p is 1/3; scipy's t approximation would report ~0.
    """
    import itertools

    from scipy import stats as sps

    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan, math.nan  # a constant side: rho is undefined
    rho = float(sps.spearmanr(x, y).statistic)
    if math.isnan(rho) or len(x) > 8:
        return rho, float("nan") if math.isnan(rho) else float(sps.spearmanr(x, y).pvalue)
    perms = [float(sps.spearmanr(x, list(p)).statistic) for p in itertools.permutations(y)]
    extreme = sum(abs(r) >= abs(rho) - 1e-12 for r in perms)
    return rho, extreme / len(perms)


def _fmt_rho(x: float) -> str:
    return "undefined" if math.isnan(x) else f"{x:+.2f}"


def _rq3(ordered, runs, comparisons, axis, level: Level = _DEFAULT) -> list[str]:
    metrics = _functional_metrics(runs)
    out = [line for m in metrics + ["trivial_rate"] if (line := values_line(ordered, m, level))]
    lines, sig = adjacent(ordered, comparisons, metrics)
    out += lines
    if not metrics:
        out.append("No functional measure was measured.")
    elif not sig:
        out.append(
            "Answer: no significant change in functional correctness between adjacent training sizes; "
            "neither a linear gain nor a valley can be claimed from these data."
        )
    else:
        ups = [c for c in sig if c.diff > 0]
        downs = [c for c in sig if c.diff < 0]
        shape = "a significant drop somewhere (not linear)" if downs else "only significant gains"
        out.append(f"Answer: {shape}: " + "; ".join(f"{c.a} vs {c.b} {c.diff:+.1f}" for c in ups + downs) + ".")
    small, large = ordered[0], ordered[-1]
    c = lookup(comparisons, small.label, large.label, "trivial_rate")
    if c is not None:
        out.append("Hello-World effect (stub rate, smallest vs largest size): " + describe(c) + ".")
        out.append(_complexity_line(small, large))
    return out


def _complexity_line(small: Config, large: Config) -> str:
    def mean(c, key):
        v = [float(r.metrics[key]) for r in c.runs if r.metrics.get(key) is not None]
        return sum(v) / len(v) if v else None

    return (
        f"Mean cyclomatic complexity generated/reference: {small.label} {fmt(mean(small, 'mean_gen_cyclomatic'))}/"
        f"{fmt(mean(small, 'mean_ref_cyclomatic'))}, {large.label} {fmt(mean(large, 'mean_gen_cyclomatic'))}/"
        f"{fmt(mean(large, 'mean_ref_cyclomatic'))}."
    )


def _rq4(ordered, runs, comparisons, axis, level: Level = _DEFAULT) -> list[str]:
    metrics = _functional_metrics(runs)
    if not metrics:
        return ["No functional measure was measured, so the question cannot be answered."]
    largest = ordered[-1]
    out = []
    for m in metrics:
        ok = [
            c
            for c in ordered[:-1]
            if (cmp := lookup(comparisons, c.label, largest.label, m)) is not None
            and not (cmp.significant and cmp.diff < 0)
        ]
        smallest = ok[0].label if ok else largest.label
        out.append(
            f"{NAMES[m]}: the smallest size not significantly worse than the largest ({largest.label}) is "
            f"{smallest}. 'Not significantly worse' is not 'equal': see the MDE in the comparisons table."
        )
    out.append(f"Sizes beyond {largest.label} were not measured; the data say nothing about them.")
    return out


def _rq5(ordered, runs, comparisons, axis, level: Level = _DEFAULT) -> list[str]:
    out = []
    if any(r.stats.get("Syntax_Pass_Rate") is not None for r in runs):
        for key in ("gen_cyclomatic", "gen_nloc"):
            corr = item_correlation(runs, key, "Syntax_Pass_Rate", level.ci_level)
            if corr is None:
                out.append(f"Per item, {key} vs syntax pass: undefined (a constant).")
                continue
            verdict = _correlation_verdict(corr, level)
            out.append(
                f"Per item, {key} of the generated function vs syntax pass: r={corr['r']:+.2f} "
                f"[{corr['ci'][0]:+.2f}, {corr['ci'][1]:+.2f}], {p_eq(corr['p_value'])}; {verdict}."
            )
        corr = item_correlation(runs, "trivial", "Syntax_Pass_Rate", level.ci_level)
        if corr is not None:
            verdict = "significant" if corr["p_value"] < level.alpha else "not significant at this sample size"
            out.append(f"Stubs vs syntax pass: r={corr['r']:+.2f}, {p_eq(corr['p_value'])}; {verdict}.")
    out += _benchmark_syntax_errors(ordered)
    if not out:
        out.append("Syntax was not measured, so the coupling cannot be examined.")
    return out


def _benchmark_syntax_errors(ordered: list[Config]) -> list[str]:
    """Syntax errors among each configuration's non-passing benchmark samples (the error taxonomy)."""
    parts = []
    for c in ordered:
        tax = taxonomy([r.bench for r in c.runs if r.bench is not None], [r.metrics for r in c.runs])
        if tax is not None and len([r for r in c.runs if r.bench is not None]) == len(c.runs):
            counts = tax[0]
            failing = sum(v for k, v in counts.items() if k != "passed")
            parts.append(f"{c.label} {counts['syntax_error']} of {failing}")
    if not parts:
        return []
    return ["On the benchmark, syntax errors among the non-passing samples: " + "; ".join(parts) + "."]


def _rq6(ordered, runs, comparisons, axis, level: Level = _DEFAULT) -> list[str]:
    out = [line for m in ("BLEU", "CodeBLEU") if (line := values_line(ordered, m, level))]
    for c in ordered:
        v = [float(r.metrics["mean_ref_tokens"]) for r in c.runs if r.metrics.get("mean_ref_tokens") is not None]
        if v:
            out.append(f"{c.label}: mean reference function length {sum(v) / len(v):.0f} tokens.")
    lines, sig = adjacent(ordered, comparisons, ["BLEU", "CodeBLEU"])
    out += lines
    out.append(
        "Answer: "
        + (
            "significant differences between languages: "
            + "; ".join(f"{c.a} vs {c.b} on {c.metric} {c.diff:+.1f}" for c in sig)
            if sig
            else "no significant difference in BLEU/CodeBLEU between languages at these sample sizes."
        )
        + " Test sets differ by language, so the tests are unpaired and BLEU levels are only loosely "
        "comparable across languages."
    )
    return out


def _rq7(ordered, runs, comparisons, axis, level: Level = _DEFAULT) -> list[str]:
    out = []
    for c in ordered:
        v = config_value(c, "Syntax_Pass_Rate", level)
        out.append(
            f"{c.label}: syntax pass {fmt_value(v)}"
            if v
            else f"{c.label}: syntax pass rate not measured (checker unavailable; never counted as a pass)."
        )
    lines, sig = adjacent(ordered, comparisons, ["Syntax_Pass_Rate"])
    out += lines
    out.append(
        "Answer: "
        + (
            "yes, " + "; ".join(f"{c.a} vs {c.b} {c.diff:+.1f} points" for c in sig)
            if sig
            else "no significant difference was measured."
        )
    )
    return out


def _rq8(ordered, runs, comparisons, axis, level: Level = _DEFAULT) -> list[str]:
    out = []
    for c in ordered:
        parts = [
            f"{NAMES[m]} {fmt_value(v)}"
            for m in ("Syntax_Pass_Rate", "pass@1", "trivial_rate")
            if (v := config_value(c, m, level))
        ]
        out.append(f"{c.label}: " + ("; ".join(parts) if parts else "no functional measure") + ".")
    out.append(
        "Answer: the rates above say how often the model writes valid, non-stub code per language; "
        "a language with a syntax-pass interval far from 0 and a low stub rate is one it generalises to in "
        "that sense. Differences between languages are findings only where RQ7's tests are significant."
    )
    return out


STUDY_AXES = tuple(dict.fromkeys(axis for _, _, axis in _RQS))

_ANSWERS = {"RQ1": _rq1, "RQ2": _rq2, "RQ3": _rq3, "RQ4": _rq4, "RQ5": _rq5, "RQ6": _rq6, "RQ7": _rq7, "RQ8": _rq8}
