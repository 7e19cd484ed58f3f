"""`report.md` and a self-contained `report.html` for one experiment directory.

The report is built as a list of blocks (headings, paragraphs, tables, images, generations) and then
rendered twice (`codetune.reporting.render`). Findings are worded by one function,
`codetune.reporting.wording.describe`, so a difference the test does not support is never stated as a
finding. Intervals and significance follow the level the runs recorded (`ci_level`, `n_boot`). The seed
study's research questions (`codetune.reporting.study`) are included only when the experiment varies one
of their axes.
"""

from __future__ import annotations

import base64
import math
import tempfile
from pathlib import Path

from codetune.io import atomic_write_text
from codetune.reporting.analysis import (
    METRICS,
    Comparison,
    Config,
    Experiment,
    Level,
    all_comparisons,
    config_value,
    group_configs,
    load_experiment,
)
from codetune.reporting.study import study_section
from codetune.reporting.wording import (
    NAMES,
    adjacent,
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
    """The report as blocks: ("h1"|"h2"|"h3"|"p", text), ("table", header, rows), ("img", alt, b64), ("gens", run).

    Raises:
        CodetuneError: no finished run in `exp_dir`.
    """
    exp = load_experiment(exp_dir)
    runs, configs, level = exp.runs, exp.configs, exp.level
    present = [m for m, _, _ in METRICS if any(r.metrics.get(m) not in (None, "") for r in runs)]
    multi_seed = any(len(c.runs) > 1 for c in configs)
    comparisons = all_comparisons(configs, present + ["trivial_rate"], level)
    b: list[tuple] = [("h1", f"Experiment report: {Path(exp_dir).name}"), ("p", _summary(exp, multi_seed))]
    b += _headline(configs, present, multi_seed, level)
    b += _runs_table(runs)
    b += _plots(runs, level)
    b += _comparisons_section(comparisons, level)
    b += _errors_section(configs)
    b += _axes_section(exp, comparisons, present)
    b += study_section(exp, comparisons)
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
    return text


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


def _headline(configs: list[Config], present: list[str], multi_seed: bool, level: Level) -> list[tuple]:
    header = ["Configuration", "runs", "n_test"] + [NAMES[m] for m in present]
    header += ["stub rate %", "gen cyclomatic", "ref cyclomatic", "gen nloc", "ref nloc"]
    rows = []
    for c in configs:
        row = [c.label, str(len(c.runs)), str(c.runs[0].metrics.get("n_test", len(c.runs[0].records)))]
        row += [fmt_value(config_value(c, m, level)) for m in present]
        row.append(fmt_value(config_value(c, "trivial_rate", level)))
        for key in ("mean_gen_cyclomatic", "mean_ref_cyclomatic", "mean_gen_nloc", "mean_ref_nloc"):
            vals = [float(r.metrics[key]) for r in c.runs if r.metrics.get(key) is not None]
            row.append(fmt(sum(vals) / len(vals)) if vals else "n/a")
        rows.append(row)
    note = f"value [{level.percent} CI]" + (
        "; mean ± sd over seeds [CI over items, seeds pooled]" if multi_seed else ""
    )
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


def _plots(runs, level: Level) -> list[tuple]:
    from codetune.reporting.plots import plot_results

    rows = [dict(r.metrics) for r in runs]
    out = [("h2", "Plots")]
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_results(
            rows, Path(tmp) / "results.png", title=f"metrics with {level.percent} CIs", ci_level=level.ci_level
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
    from codetune.evaluation.programs import STATUSES

    # The execution-status counts scoring writes (error_taxonomy): exec_<status> and exec_missing.
    known = {f"exec_{s}" for s in (*STATUSES, "missing")}
    exec_keys = sorted({k for c in configs for r in c.runs for k in r.metrics if k in known})
    header = ["Configuration"] + keys + exec_keys
    rows = []
    for c in configs:
        rows.append([c.label] + [str(sum(int(r.metrics.get(k) or 0) for r in c.runs)) for k in keys + exec_keys])
    note = "Counts summed over seeds." + ("" if exec_keys else " No execution statuses (pass@k) in these runs.")
    return [("h2", "Error taxonomy"), ("p", note), ("table", header, rows)]


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
        for ordered in _along(exp.configs, axis, exp.axes):
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
