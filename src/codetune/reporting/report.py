"""`report.md` and a self-contained `report.html` for one experiment directory.

The report is built as a list of blocks (headings, paragraphs, tables, images, generations) and then
rendered twice (`codetune.reporting.render`). Findings are worded by one function, `describe`, so a
difference the test does not support is never stated as a finding.
"""

from __future__ import annotations

import base64
import math
import tempfile
from pathlib import Path
from typing import Any

from codetune.reporting.analysis import (
    ALPHA,
    AXES,
    METRICS,
    Comparison,
    Config,
    all_comparisons,
    config_value,
    group_configs,
    item_correlation,
    load_runs,
    varying_axes,
)

_AXIS_NAMES = dict(AXES)
_NAMES = {key: name for key, name, _ in METRICS} | {"trivial_rate": "stub rate %"}


def _correlation_verdict(corr: dict) -> str:
    """'significant', or the honest sample-size caveat, for a pooled per-item correlation."""
    if corr["p_value"] < ALPHA:
        return "significant"
    return f"not significant at this sample size (n={corr['n']} item-runs)"


def write_report(exp_dir: Path) -> tuple[Path, Path]:
    """Analyse the finished runs of `exp_dir` and write report.md and report.html beside them.

    Raises:
        CodetuneError: no finished run in `exp_dir`.
    """
    from codetune.reporting.render import render_html, render_markdown

    exp_dir = Path(exp_dir)
    blocks = build_report(exp_dir)
    md, html = exp_dir / "report.md", exp_dir / "report.html"
    _atomic_write(md, render_markdown(blocks))
    _atomic_write(html, render_html(blocks, title=f"codetune report: {exp_dir.name}"))
    return md, html


def build_report(exp_dir: Path) -> list[tuple]:
    """The report as blocks: ("h1"|"h2"|"h3"|"p", text), ("table", header, rows), ("img", alt, b64), ("gens", run)."""
    runs = load_runs(exp_dir)
    configs = group_configs(runs)
    present = [m for m, _, _ in METRICS if any(r.metrics.get(m) not in (None, "") for r in runs)]
    axes = varying_axes(configs)
    multi_seed = any(len(c.runs) > 1 for c in configs)
    comparisons = all_comparisons(configs, present + ["trivial_rate"])
    n_test = sorted({int(r.metrics.get("n_test") or len(r.records)) for r in runs})

    b: list[tuple] = [("h1", f"Experiment report: {Path(exp_dir).name}")]
    b.append(
        (
            "p",
            (
                f"{len(runs)} finished run(s) in {len(configs)} configuration(s); test items per run: "
                f"{', '.join(map(str, n_test))}. Varying axes: {', '.join(axes) or 'none'}"
                f"{'; several seeds per configuration' if multi_seed else ''}. "
                "Intervals are 95% percentile bootstraps over test items; they reflect test-set sampling, "
                "not seed variance (see ± sd where there are several seeds)."
            ),
        )
    )
    b += _headline(configs, present, multi_seed)
    b += _runs_table(runs)
    b += _plots(runs)
    b += _comparisons_section(comparisons)
    b += _errors_section(configs)
    b += _rq_section(configs, runs, comparisons, axes)
    b.append(("h2", "Generations"))
    b.append(("p", "Each test item with its prompt, reference and completion (first sample), per run."))
    for r in runs:
        b.append(("gens", r))
    return b


# ----------------------------------------------------------------------------------------------
# Formatting
# ----------------------------------------------------------------------------------------------


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


def fmt_value(v: dict[str, Any] | None) -> str:
    if v is None:
        return "n/a"
    s = fmt(v["value"])
    if v["n_seeds"] > 1:
        s += f" ± {fmt(v['sd'])}"
    if v["ci"] is not None:
        s += f" [{fmt(v['ci'][0])}, {fmt(v['ci'][1])}]"
    return s


def describe(c: Comparison) -> str:
    """One sentence for a comparison; 'not significant' whenever p >= ALPHA."""
    name = _NAMES.get(c.metric, c.metric)
    core = f"{name}: {c.a} − {c.b} = {c.diff:+.2f} [{c.ci[0]:+.2f}, {c.ci[1]:+.2f}], {p_eq(c.p_value)} ({c.test})"
    if c.significant:
        return core + f"; significant at α={ALPHA}"
    mde = f"; minimum detectable difference {fmt_mde(c.mde)}" if c.mde else ""
    return core + f"; not significant at this sample size (n={c.n}){mde}"


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


def _headline(configs: list[Config], present: list[str], multi_seed: bool) -> list[tuple]:
    header = ["Configuration", "runs", "n_test"] + [_NAMES[m] for m in present]
    header += ["stub rate %", "gen cyclomatic", "ref cyclomatic", "gen nloc", "ref nloc"]
    rows = []
    for c in configs:
        row = [c.label, str(len(c.runs)), str(c.runs[0].metrics.get("n_test", len(c.runs[0].records)))]
        row += [fmt_value(config_value(c, m)) for m in present]
        row.append(fmt_value(config_value(c, "trivial_rate")))
        for key in ("mean_gen_cyclomatic", "mean_ref_cyclomatic", "mean_gen_nloc", "mean_ref_nloc"):
            vals = [float(r.metrics[key]) for r in c.runs if r.metrics.get(key) is not None]
            row.append(fmt(sum(vals) / len(vals)) if vals else "n/a")
        rows.append(row)
    note = "value [95% CI]" + ("; mean ± sd over seeds [CI over items, seeds pooled]" if multi_seed else "")
    return [
        ("h2", "Headline"),
        (
            "p",
            note + ". Complexity is of prompt + body, so generated and reference functions share the signature.",
        ),
        ("table", header, rows),
    ]


def _runs_table(runs) -> list[tuple]:
    header = ["run", "Configuration", "seed", "BLEU [CI]", "CodeBLEU [CI]", "Syntax % [CI]", "pass@1 % [CI]"]
    rows = []
    for r in runs:
        row = [r.dirname, r.label, str(r.seed)]
        for m in ("BLEU", "CodeBLEU", "Syntax_Pass_Rate", "pass@1"):
            v, lo, hi = (r.metrics.get(k) for k in (m, f"{m}_ci_low", f"{m}_ci_high"))
            row.append("n/a" if v is None else fmt(float(v)) + ("" if lo is None else f" [{fmt(lo)}, {fmt(hi)}]"))
        rows.append(row)
    return [("h2", "Runs"), ("table", header, rows)]


def _plots(runs) -> list[tuple]:
    from codetune.reporting.plots import plot_results

    rows = [dict(r.metrics) for r in runs]
    out = [("h2", "Plots")]
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_results(rows, Path(tmp) / "results.png", title="metrics with 95% CIs")
        out.append(("img", "Metrics per configuration with 95% confidence intervals", _b64(png)))
        png = _plot_stubs(runs, Path(tmp) / "stubs.png")
        if png is not None:
            out.append(("img", "Stub rate and complexity per configuration", _b64(png)))
    return out


def _plot_stubs(runs, out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = group_configs(runs)
    triv = [config_value(c, "trivial_rate") for c in configs]
    if all(t is None for t in triv):
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    x = list(range(len(configs)))
    means = [t["value"] if t else math.nan for t in triv]
    err = [
        [(t["value"] - t["ci"][0]) if t and t["ci"] else 0 for t in triv],
        [(t["ci"][1] - t["value"]) if t and t["ci"] else 0 for t in triv],
    ]
    ax1.bar(x, means, yerr=err, capsize=4, color="#DD8452")
    ax1.set_xticks(x, [c.label for c in configs], rotation=20, ha="right", fontsize=8)
    ax1.set_title("Stub rate % (95% CI)", fontsize=10)
    for i, (key, color) in enumerate((("gen_cyclomatic", "#4C72B0"), ("ref_cyclomatic", "#55A868"))):
        vals = []
        for c in configs:
            v = [rec[key] for r in c.runs for rec in r.records if rec.get(key) is not None]
            vals.append(sum(v) / len(v) if v else math.nan)
        ax2.bar([xi + (i - 0.5) * 0.38 for xi in x], vals, width=0.38, color=color, label=key.split("_")[0])
    ax2.set_xticks(x, [c.label for c in configs], rotation=20, ha="right", fontsize=8)
    ax2.set_title("Mean cyclomatic complexity", fontsize=10)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _comparisons_section(comparisons: list[Comparison]) -> list[tuple]:
    out = [("h2", "Pairwise comparisons")]
    if not comparisons:
        return out + [("p", "Only one configuration (or no per-item data): nothing to compare.")]
    out.append(
        (
            "p",
            (
                "A − B with a 95% bootstrap interval; pass rates also get the exact McNemar test (same "
                "items, one seed) or Fisher's exact test (different test sets). MDE: the smallest difference "
                "this test set detects with 80% power at α=0.05 (for BLEU/CodeBLEU estimated from "
                "sentence-level spread; for pass rates the two-proportion formula at the pair's mean rate, "
                "conservative for paired items). p-values are not adjusted for the number of comparisons."
            ),
        )
    )
    header = ["A", "B", "metric", "A − B [95% CI]", "effect size", "p", "test", "n", "MDE", "verdict"]
    rows = [
        [
            c.a,
            c.b,
            _NAMES.get(c.metric, c.metric),
            f"{c.diff:+.2f} [{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]",
            c.effect or "n/a",
            fmt_p(c.p_value),
            c.test,
            str(c.n),
            fmt_mde(c.mde),
            "significant" if c.significant else f"not significant at this sample size (n={c.n})",
        ]
        for c in comparisons
    ]
    return out + [("table", header, rows)]


def _errors_section(configs: list[Config]) -> list[tuple]:
    keys = ["syntax_valid", "syntax_invalid", "syntax_unavailable"]
    exec_keys = sorted({k for c in configs for r in c.runs for k in r.metrics if k.startswith("exec_")})
    header = ["Configuration"] + keys + exec_keys
    rows = []
    for c in configs:
        rows.append([c.label] + [str(sum(int(r.metrics.get(k) or 0) for r in c.runs)) for k in keys + exec_keys])
    note = "Counts summed over seeds." + ("" if exec_keys else " No execution statuses (pass@k) in these runs.")
    return [("h2", "Error taxonomy"), ("p", note), ("table", header, rows)]


# ----------------------------------------------------------------------------------------------
# Research questions
# ----------------------------------------------------------------------------------------------

_RQS = (
    ("RQ1", "Is there a saturation point for LoRA rank?", "lora_r"),
    ("RQ2", "Do BLEU and functional correctness correlate?", "lora_r"),
    ("RQ3", "Does functional correctness improve linearly with data? (the Hello-World effect)", "train_size"),
    ("RQ4", "What is the minimum data requirement for reliable code generation?", "train_size"),
    ("RQ5", "Are syntax errors and code complexity (logic) coupled?", "train_size"),
    ("RQ6", "Are verbose languages harder for small LMs to learn?", "language"),
    ("RQ7", "Does syntax pass rate differ by language?", "language"),
    ("RQ8", "Does the model generalise across programming paradigms?", "language"),
)


def _rq_section(configs, runs, comparisons, axes) -> list[tuple]:
    out = [
        ("h2", "Research questions (from the seed study)"),
        (
            "p",
            (
                "Each answer uses only this experiment's measurements; a difference is stated as a finding "
                "only where its test gives p < 0.05."
            ),
        ),
    ]
    for rq, question, axis in _RQS:
        out.append(("h3", f"{rq}: {question}"))
        if axis not in axes:
            out.append(("p", f"Not addressed by this experiment (it has no {_AXIS_NAMES[axis]} axis)."))
            continue
        ordered = sorted(configs, key=lambda c: _sort_key(c.axis_value(axis)))
        answer = _ANSWERS[rq](ordered, runs, comparisons, axis)
        out += [("p", text) for text in answer]
    return out


def _sort_key(v: Any) -> tuple:
    return (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v))


def _lookup(comparisons, a: str, b: str, metric: str) -> Comparison | None:
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
                _flip_effect(c.effect),
            )
    return None


def _flip_effect(effect: str) -> str:
    import re

    effect = re.sub(r"discordant (\d+)/(\d+)", r"discordant \2/\1", effect)
    return effect.replace("+", "\0").replace("-", "+").replace("\0", "-")


def _values_line(ordered, metric) -> str | None:
    vals = [(c.label, config_value(c, metric)) for c in ordered]
    if all(v is None for _, v in vals):
        return None
    return f"{_NAMES.get(metric, metric)}: " + "; ".join(f"{lab} {fmt_value(v)}" for lab, v in vals) + "."


def _adjacent(ordered, comparisons, metrics) -> tuple[list[str], list[Comparison]]:
    lines, sig = [], []
    for a, b in zip(ordered[1:], ordered[:-1]):
        for m in metrics:
            c = _lookup(comparisons, a.label, b.label, m)
            if c is not None:
                lines.append(describe(c) + ".")
                if c.significant:
                    sig.append(c)
    return lines, sig


def _functional_metrics(runs) -> list[str]:
    return [m for m in ("Syntax_Pass_Rate", "pass@1") if any(r.stats.get(m) is not None for r in runs)]


def _rq1(ordered, runs, comparisons, axis) -> list[str]:
    metrics = ["BLEU", "CodeBLEU"] + _functional_metrics(runs)
    out = [line for m in metrics if (line := _values_line(ordered, m))]
    lines, _ = _adjacent(ordered, comparisons, metrics)
    out += lines
    # Saturation: the smallest rank that no larger rank beats significantly on any metric.
    sat = None
    for i, c in enumerate(ordered):
        beaten = any(
            (cmp := _lookup(comparisons, d.label, c.label, m)) is not None and cmp.significant and cmp.diff > 0
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
            if (cmp := _lookup(comparisons, sat.label, s.label, m)) is not None
            and cmp.significant
            and cmp.diff > 0
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
                if (cmp := _lookup(comparisons, a.label, b.label, m)) is not None and cmp.significant
            ]
            out.append(
                "Answer: the data cannot locate a saturation point. Significant differences: "
                + "; ".join(describe(c) for c in wins)
                + f". {sat.label} is not significantly different from the smaller ranks, and no larger rank is "
                "significantly better than it (p-values not adjusted for the number of comparisons)."
            )
    return out


def _rq2(ordered, runs, comparisons, axis) -> list[str]:
    out = []
    for flag in _functional_metrics(runs):
        corr = item_correlation(runs, "BLEU", flag)
        name = _NAMES[flag]
        if corr is None:
            out.append(f"Per item, BLEU vs {name}: undefined (one of them is constant).")
            continue
        verdict = _correlation_verdict(corr)
        out.append(
            f"Per item, sentence BLEU vs {name} (point-biserial): r={corr['r']:+.2f} "
            f"[{corr['ci'][0]:+.2f}, {corr['ci'][1]:+.2f}], {p_eq(corr['p_value'])}; {verdict} "
            "(items pooled over runs, so p is approximate)."
        )
        pairs = [(config_value(c, "BLEU"), config_value(c, flag)) for c in ordered]
        pairs = [(x["value"], y["value"]) for x, y in pairs if x and y]
        if len(pairs) >= 3:
            rho, p = spearman_exact([p[0] for p in pairs], [p[1] for p in pairs])
            out.append(
                f"Across configurations, Spearman ρ(BLEU, {name}) = {_fmt_rho(rho)} over "
                f"{len(pairs)} configurations, exact permutation {p_eq(p)}"
                + ("" if p < ALPHA else f"; not significant at this sample size ({len(pairs)} configurations)")
                + "."
            )
        else:
            out.append(f"Across configurations: only {len(pairs)} points, too few for a correlation.")
    if not out:
        out.append("No functional measure (syntax or pass@1) was measured, so the question cannot be answered.")
    return out


def spearman_exact(x: list[float], y: list[float]) -> tuple[float, float]:
    """Spearman's rho and its exact two-sided permutation p-value (all k! orderings; k <= 8).

    With 3 configurations the smallest attainable p is 1/3; scipy's t approximation would report ~0.
    """
    import itertools

    from scipy import stats as sps

    rho = float(sps.spearmanr(x, y).statistic)
    if math.isnan(rho) or len(x) > 8:
        return rho, float("nan") if math.isnan(rho) else float(sps.spearmanr(x, y).pvalue)
    perms = [float(sps.spearmanr(x, list(p)).statistic) for p in itertools.permutations(y)]
    extreme = sum(abs(r) >= abs(rho) - 1e-12 for r in perms)
    return rho, extreme / len(perms)


def _fmt_rho(x: float) -> str:
    return "undefined" if math.isnan(x) else f"{x:+.2f}"


def _rq3(ordered, runs, comparisons, axis) -> list[str]:
    metrics = _functional_metrics(runs)
    out = [line for m in metrics + ["trivial_rate"] if (line := _values_line(ordered, m))]
    lines, sig = _adjacent(ordered, comparisons, metrics)
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
    c = _lookup(comparisons, small.label, large.label, "trivial_rate")
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


def _rq4(ordered, runs, comparisons, axis) -> list[str]:
    metrics = _functional_metrics(runs)
    if not metrics:
        return ["No functional measure was measured, so the question cannot be answered."]
    largest = ordered[-1]
    out = []
    for m in metrics:
        ok = [
            c
            for c in ordered[:-1]
            if (cmp := _lookup(comparisons, c.label, largest.label, m)) is not None
            and not (cmp.significant and cmp.diff < 0)
        ]
        smallest = ok[0].label if ok else largest.label
        out.append(
            f"{_NAMES[m]}: the smallest size not significantly worse than the largest ({largest.label}) is "
            f"{smallest}. 'Not significantly worse' is not 'equal': see the MDE in the comparisons table."
        )
    out.append(f"Sizes beyond {largest.label} were not measured; the data say nothing about them.")
    return out


def _rq5(ordered, runs, comparisons, axis) -> list[str]:
    out = []
    if any(r.stats.get("Syntax_Pass_Rate") is not None for r in runs):
        for key in ("gen_cyclomatic", "gen_nloc"):
            corr = item_correlation(runs, key, "Syntax_Pass_Rate")
            if corr is None:
                out.append(f"Per item, {key} vs syntax pass: undefined (a constant).")
                continue
            verdict = _correlation_verdict(corr)
            out.append(
                f"Per item, {key} of the generated function vs syntax pass: r={corr['r']:+.2f} "
                f"[{corr['ci'][0]:+.2f}, {corr['ci'][1]:+.2f}], {p_eq(corr['p_value'])}; {verdict}."
            )
        corr = item_correlation(runs, "trivial", "Syntax_Pass_Rate")
        if corr is not None:
            verdict = "significant" if corr["p_value"] < ALPHA else "not significant at this sample size"
            out.append(f"Stubs vs syntax pass: r={corr['r']:+.2f}, {p_eq(corr['p_value'])}; {verdict}.")
    if not out:
        out.append("Syntax was not measured, so the coupling cannot be examined.")
    return out


def _rq6(ordered, runs, comparisons, axis) -> list[str]:
    out = [line for m in ("BLEU", "CodeBLEU") if (line := _values_line(ordered, m))]
    for c in ordered:
        v = [float(r.metrics["mean_ref_tokens"]) for r in c.runs if r.metrics.get("mean_ref_tokens") is not None]
        if v:
            out.append(f"{c.label}: mean reference function length {sum(v) / len(v):.0f} tokens.")
    lines, sig = _adjacent(ordered, comparisons, ["BLEU", "CodeBLEU"])
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


def _rq7(ordered, runs, comparisons, axis) -> list[str]:
    out = []
    for c in ordered:
        v = config_value(c, "Syntax_Pass_Rate")
        out.append(
            f"{c.label}: syntax pass {fmt_value(v)}"
            if v
            else f"{c.label}: syntax pass rate not measured (checker unavailable; never counted as a pass)."
        )
    lines, sig = _adjacent(ordered, comparisons, ["Syntax_Pass_Rate"])
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


def _rq8(ordered, runs, comparisons, axis) -> list[str]:
    out = []
    for c in ordered:
        parts = [
            f"{_NAMES[m]} {fmt_value(v)}"
            for m in ("Syntax_Pass_Rate", "pass@1", "trivial_rate")
            if (v := config_value(c, m))
        ]
        out.append(f"{c.label}: " + ("; ".join(parts) if parts else "no functional measure") + ".")
    out.append(
        "Answer: the rates above say how often the model writes valid, non-stub code per language; "
        "a language with a syntax-pass interval far from 0 and a low stub rate is one it generalises to in "
        "that sense. Differences between languages are findings only where RQ7's tests are significant."
    )
    return out


_ANSWERS = {"RQ1": _rq1, "RQ2": _rq2, "RQ3": _rq3, "RQ4": _rq4, "RQ5": _rq5, "RQ6": _rq6, "RQ7": _rq7, "RQ8": _rq8}


def _b64(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
