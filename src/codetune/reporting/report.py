"""`report.md` and a self-contained `report.html` for one experiment directory.

The report is built as a list of blocks (headings, paragraphs, tables, images, generations) and then
rendered twice (`codetune.reporting.render`). Findings are worded by one function,
`codetune.reporting.wording.describe`, so a difference the test does not support is never stated as a
finding. Intervals and significance follow the level the runs recorded (`ci_level`, `n_boot`). Every
configuration is set against its base-model row (`codetune.reporting.baseline`) and against what it cost
(`codetune.reporting.cost`, whose figure is written beside the report as cost.png). pass@1 comes from each
run's benchmark stage; a run without one says why pass@1 was not measured. Runs with `eval.infilling` get
an infilling section (`codetune.reporting.infilling`: infilling pass@1 per configuration, and the FIM rates
compared on left-to-right and infilling pass@1). The seed study's research
questions (`codetune.reporting.study`) are included only when the experiment varies one of their axes.
"""

from __future__ import annotations

import base64
import math
import tempfile
from pathlib import Path

from codetune.io import atomic_write_text
from codetune.reporting.analysis import (
    METRICS,
    Config,
    Experiment,
    Level,
    config_value,
    group_configs,
    load_experiment,
)
from codetune.reporting.baseline import base_differences, base_section, plot_annotations
from codetune.reporting.benchmark import CATEGORIES, FAILURES, plus_summary, taxonomy
from codetune.reporting.comparison import Comparison, all_comparisons
from codetune.reporting.contamination import contamination_section
from codetune.reporting.cost import cost_section, plot_cost
from codetune.reporting.efficiency import efficiency_section
from codetune.reporting.infilling import infilling_section
from codetune.reporting.sampling import sampling_section
from codetune.reporting.study import study_section
from codetune.reporting.wording import (
    NAMES,
    adjacent,
    diff_ci,
    fmt,
    fmt_alpha,
    fmt_mde,
    fmt_p,
    fmt_value,
    sort_key,
    values_line,
)


def write_report(exp_dir: Path) -> tuple[Path, Path]:
    """Analyse the finished runs of `exp_dir` and write report.md and report.html beside them.

    Raises:
        CodetuneError: no finished run in `exp_dir`.
    """
    from codetune.reporting.render import render_html, render_markdown

    exp_dir = Path(exp_dir)
    blocks = build_report(exp_dir)
    md, html = exp_dir / "report.md", exp_dir / "report.html"
    atomic_write_text(md, render_markdown(blocks))
    atomic_write_text(html, render_html(blocks, title=f"codetune report: {exp_dir.name}"))
    return md, html


def build_report(exp_dir: Path) -> list[tuple]:
    """The report as blocks: ("h1"|"h2"|"h3"|"p", text), ("table", header, rows), ("img", alt, b64[, file]),
    ("gens", run). Writes the cost figure, cost.png, into `exp_dir` (report.md links it).

    Raises:
        CodetuneError: no finished run in `exp_dir`.
    """
    exp = load_experiment(exp_dir)
    runs, configs, level = exp.runs, exp.configs, exp.level
    present = [m for m, _, _ in METRICS if any(r.metrics.get(m) not in (None, "") for r in runs)]
    multi_seed = any(len(c.runs) > 1 for c in configs)
    # Base rows are compared with the cells in their own section, not pairwise along the grid.
    comparisons = all_comparisons(exp.trained, present + ["trivial_rate"], level)
    diffs = base_differences(exp, level)
    b: list[tuple] = [("h1", f"Experiment report: {Path(exp_dir).name}"), ("p", _summary(exp, multi_seed))]
    b += _headline(configs, present, multi_seed, level)
    b += base_section(exp, diffs, level)
    b += infilling_section(exp, comparisons, diffs, level)
    b += _runs_table(runs)
    b += _plots(runs, level, plot_annotations(diffs))
    png = plot_cost(exp, Path(exp_dir) / "cost.png", level)
    b += cost_section(exp, level, png, None if png is None else _b64(png))
    b += _comparisons_section(comparisons, level)
    b += _errors_section(configs)
    b += _plus_section(configs, level)
    b += efficiency_section(exp, level)
    b += sampling_section(Path(exp_dir), exp, level)
    b += _axes_section(exp, comparisons, present)
    b += study_section(exp, comparisons)
    b += contamination_section(Path(exp_dir), exp)
    b.append(("h2", "Generations"))
    b.append(("p", "Each test item with its prompt, reference and completion (first sample), per run."))
    for r in runs:
        b.append(("gens", r))
    return b


def _summary(exp: Experiment, multi_seed: bool) -> str:
    n_test = sorted({int(r.metrics.get("n_test") or len(r.records)) for r in exp.runs})
    text = (
        f"{len(exp.runs)} finished run(s) in {len(exp.configs)} configuration(s); test items per run: "
        f"{', '.join(map(str, n_test))}. Varying axes: {', '.join(exp.axes) or 'none'}"
        f"{'; several seeds per configuration' if multi_seed else ''}. "
        f"Intervals are {exp.level.percent} percentile bootstraps over test items; they reflect test-set "
        "sampling, not seed variance (see ± sd where there are several seeds)."
    )
    if len(exp.levels) > 1:
        recorded = ", ".join(f"{lv.percent} ({lv.n_boot} resamples)" for lv in exp.levels)
        text += (
            f" The runs recorded different interval settings ({recorded}): each run's own intervals are at "
            f"its level; the report's tests use the first, {exp.level.percent} with {exp.level.n_boot} resamples."
        )
    benches = [
        f"{r.bench.name} ({len(r.bench.task_ids)} tasks, {r.bench.samples_per_task} sample(s) per task)"
        for r in exp.runs
        if r.bench is not None and r.bench.measured and r.bench.task_ids
    ]
    if benches:
        text += (
            f" pass@1 is over benchmark tasks ({', '.join(dict.fromkeys(benches))}), a different item set from "
            "the corpus test items that BLEU, CodeBLEU and syntax are measured on; its intervals resample tasks."
        )
    infill = [
        f"{r.infill.name} ({len(r.infill.task_ids)} items)"
        for r in exp.runs
        if r.infill is not None and r.infill.measured and r.infill.task_ids
    ]
    if infill:
        text += (
            f" Infilling pass@1 is over infilling items ({', '.join(dict.fromkeys(infill))}), masked lines of the "
            "benchmark's canonical bodies: a third item set; its intervals resample items."
        )
    if exp.bases:
        text += f" Base-model rows: {', '.join(c.label for c in exp.bases)}."
    return text


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


def _headline(configs: list[Config], present: list[str], multi_seed: bool, level: Level) -> list[tuple]:
    present = present if "pass@1" in present else [*present, "pass@1"]  # "not measured" is an answer too
    header = ["Configuration", "runs", "n_test"] + [NAMES[m] for m in present]
    header += ["stub rate %", "gen cyclomatic", "ref cyclomatic", "gen nloc", "ref nloc"]
    rows = []
    for c in configs:
        row = [c.label, str(len(c.runs)), str(c.runs[0].metrics.get("n_test", len(c.runs[0].records)))]
        row += [_headline_value(c, m, level) for m in present]
        row.append(fmt_value(config_value(c, "trivial_rate", level)))
        for key in ("mean_gen_cyclomatic", "mean_ref_cyclomatic", "mean_gen_nloc", "mean_ref_nloc"):
            vals = [float(r.metrics[key]) for r in c.runs if r.metrics.get(key) is not None]
            row.append(fmt(sum(vals) / len(vals)) if vals else "n/a")
        rows.append(row)
    note = f"value [{level.percent} CI]" + (
        "; mean ± sd over seeds [CI over items, seeds pooled]" if multi_seed else ""
    )
    out = [
        ("h2", "Headline"),
        (
            "p",
            note + ". Complexity is of prompt + body, so generated and reference functions share the signature."
            " Base-model rows (no adapter) first.",
        ),
        ("table", header, rows),
    ]
    notes = [f"{c.label}: {n}" for c in configs if (n := c.pass_note())]
    if notes:
        out.append(("p", "pass@1 not measured (never counted as 0) for " + "; ".join(notes) + "."))
    return out


def _headline_value(c: Config, metric: str, level: Level) -> str:
    v = config_value(c, metric, level)
    unmeasured = metric == "pass@1" or (metric == "infill_pass@1" and c.infilling)
    return "not measured" if v is None and unmeasured else fmt_value(v)


def _runs_table(runs) -> list[tuple]:
    header = ["run", "Configuration", "seed", "BLEU [CI]", "CodeBLEU [CI]", "Syntax % [CI]", "pass@1 % [CI]"]
    metrics = ["BLEU", "CodeBLEU", "Syntax_Pass_Rate", "pass@1"]
    if any(r.infill is not None for r in runs):
        header.append("infilling pass@1 % [CI]")
        metrics.append("infill_pass@1")
    rows = []
    for r in runs:
        row = [r.dirname, r.label, str(r.seed)]
        for m in metrics:
            v, lo, hi = (r.metrics.get(k) for k in (m, f"{m}_ci_low", f"{m}_ci_high"))
            missing = "not measured" if m == "pass@1" or (m == "infill_pass@1" and r.infill is not None) else "n/a"
            row.append(
                missing if v is None else fmt(float(v)) + ("" if lo is None else f" [{fmt(lo)}, {fmt(hi)}]")
            )
        rows.append(row)
    return [("h2", "Runs"), ("table", header, rows)]


def _plots(runs, level: Level, deltas: dict) -> list[tuple]:
    from codetune.reporting.plots import plot_results

    rows = [dict(r.metrics) for r in runs]
    out = [("h2", "Plots")]
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_results(
            rows,
            Path(tmp) / "results.png",
            title=f"metrics with {level.percent} CIs",
            ci_level=level.ci_level,
            deltas=deltas or None,
        )
        out.append(("img", f"Metrics per configuration with {level.percent} confidence intervals", _b64(png)))
        png = _plot_stubs(runs, Path(tmp) / "stubs.png", level)
        if png is not None:
            out.append(("img", "Stub rate and complexity per configuration", _b64(png)))
    return out


def _plot_stubs(runs, out: Path, level: Level) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = group_configs(runs)
    triv = [config_value(c, "trivial_rate", level) for c in configs]
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
    ax1.set_title(f"Stub rate % ({level.percent} CI)", fontsize=10)
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
    # A temp directory of the caller's: the PNG is read back into the HTML, never left in the experiment.
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _comparisons_section(comparisons: list[Comparison], level: Level) -> list[tuple]:
    out = [("h2", "Pairwise comparisons")]
    if not comparisons:
        return out + [("p", "Only one configuration (or no per-item data): nothing to compare.")]
    out.append(
        (
            "p",
            (
                f"A − B with a {level.percent} bootstrap interval; pass rates also get the exact McNemar test "
                "(same items, one seed) or Fisher's exact test (different test sets). MDE: the smallest "
                f"difference this test set detects with 80% power at α={fmt_alpha(level.alpha)} (for "
                "BLEU/CodeBLEU estimated from sentence-level spread; for pass rates the two-proportion formula "
                "at the pair's mean rate, conservative for paired items). p-values are not adjusted for the "
                "number of comparisons."
            ),
        )
    )
    header = ["A", "B", "metric", f"A − B [{level.percent} CI]", "effect size", "p", "test", "n", "MDE", "verdict"]
    rows = [
        [
            c.a,
            c.b,
            NAMES.get(c.metric, c.metric),
            diff_ci(c),
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
    """The benchmark's error taxonomy (non-passing samples by category) and the corpus syntax counts."""
    header = ["Configuration", "samples", "passed", *FAILURES, "source"]
    rows = []
    for c in configs:
        tax = taxonomy([r.bench for r in c.runs], [r.metrics for r in c.runs])
        if tax is None:
            why = c.pass_note() or "no per-sample categories (results.jsonl) or cat_* counts"
            rows.append([c.label] + ["n/a"] * (len(CATEGORIES) + 1) + [f"not executed: {why}"])
            continue
        counts, source = tax
        rows.append([c.label, str(sum(counts.values()))] + [str(counts[k]) for k in CATEGORIES] + [source])
    keys = ["syntax_valid", "syntax_invalid", "syntax_unavailable"]
    syntax = [[c.label] + [str(sum(int(r.metrics.get(k) or 0) for r in c.runs)) for k in keys] for c in configs]
    return [
        ("h2", "Error taxonomy"),
        (
            "p",
            "Benchmark samples per outcome, summed over seeds: every sample that did not pass is one of syntax "
            "error, compile error, runtime error, wrong answer (ran, failed the tests), timeout, resource limit, "
            "or unavailable (could not be executed here; never a pass or a fail).",
        ),
        ("table", header, rows),
        ("p", "Syntax checks of the corpus completions (the checker's statuses), summed over seeds."),
        ("table", ["Configuration", *keys], syntax),
    ]


def _plus_section(configs: list[Config], level: Level) -> list[tuple]:
    """Extra tests (HumanEval+'s or generated ones, `eval.extra_tests`): base-test and extra-test pass@1 side by
    side, what passes only the base tests, and that as a share of the samples passing the base tests."""
    rows, kinds = [], []
    for c in configs:
        plus = plus_summary([r.bench for r in c.runs], [r.metrics for r in c.runs])
        if plus is None:
            continue
        kinds += plus["kinds"]
        value = fmt(plus["value"]) + (
            "" if plus["ci"] is None else f" [{fmt(plus['ci'][0])}, {fmt(plus['ci'][1])}]"
        )
        share = fmt(100.0 * plus["base_pass_plus_fail"] / plus["base_passed"]) if plus["base_passed"] else "-"
        rows.append([c.label, _headline_value(c, "pass@1", level), value, str(plus["base_pass_plus_fail"]), share])
    if not rows:
        return []
    kind = " / ".join(dict.fromkeys(kinds))
    header = [
        "Configuration",
        f"pass@1 % base tests [{level.percent} CI]",
        f"pass@1 % {'HumanEval+' if kind == 'HumanEval+' else 'extra tests'}",
        "pass base, fail plus",
        "% of base passes rejected",
    ]
    title = "HumanEval+" if kind == "HumanEval+" else f"Extra tests: {kind}"
    return [
        ("h2", title),
        (
            "p",
            f"pass@1 on the benchmark's own tests and with the extra inputs ({kind}; a sample passes the extra "
            "tests when it passes both, its results equal to the canonical solution's); 'pass base, fail plus' "
            "counts samples that pass the base tests but fail the extra ones, the last column as a share of all "
            "samples passing the base tests.",
        ),
        ("table", header, rows),
    ]


def _axes_section(exp: Experiment, comparisons: list[Comparison], present: list[str]) -> list[tuple]:
    """Along each varying axis: configurations in axis order (other axes held fixed), values, and each step."""
    out = [("h2", "Along each axis")]
    if not exp.axes:
        return out + [("p", "No axis of the experiment varies between configurations: nothing to compare along.")]
    out.append(
        (
            "p",
            "Configurations in the order of each varying axis, the other axes held fixed; each step is the "
            "pairwise comparison of its two configurations (next − previous).",
        )
    )
    metrics = present + ["trivial_rate"]
    for axis in exp.axes:
        out.append(("h3", f"Along {axis}"))
        for ordered in _along(exp.trained, axis, exp.axes):
            out.append(("p", " → ".join(f"{c.label} ({axis}={c.axis_value(axis)})" for c in ordered) + "."))
            out += [("p", text) for m in metrics if (text := values_line(ordered, m, exp.level))]
            steps, _ = adjacent(ordered, comparisons, metrics)
            out += [("p", text) for text in steps]
    return out


def _along(configs: list[Config], axis: str, axes: list[str]) -> list[list[Config]]:
    """Groups of configurations that differ only in `axis`, each sorted by it (groups of one dropped)."""
    groups: dict[str, list[Config]] = {}
    for c in configs:
        rest = repr([c.axis_value(a) for a in axes if a != axis])
        groups.setdefault(rest, []).append(c)
    return [sorted(g, key=lambda c: sort_key(c.axis_value(axis))) for g in groups.values() if len(g) > 1]


def _b64(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")
