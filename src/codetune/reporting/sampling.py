"""The report's section on complexity-stratified training data: at each size, does it differ from random?

`data.sampling=stratified` draws the training pool round-robin from cyclomatic-complexity quartiles
(`codetune.data.corpus`); `random` takes it as shuffled. Both keep the same test items and benchmark tasks,
so a stratified cell and the random cell it differs from only in `data.sampling` (the other axes, e.g.
`data.train_size`, held fixed) are paired item by item: pass@1 per benchmark task with the exact McNemar test
(one greedy sample per task, one seed) or the paired bootstrap, and the corpus metrics per test item, each with
the difference's interval (`codetune.reporting.comparison.compare`). The training items' own complexity shows
what the stratification changed.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from codetune.reporting.analysis import Config, Experiment, Level, config_value
from codetune.reporting.comparison import Comparison, compare
from codetune.reporting.wording import NAMES, describe, fmt, fmt_p, fmt_value, sort_key
from codetune.rundir import RunDir

AXIS = "data.sampling"
REFERENCE = "random"
METRICS = ("pass@1", "BLEU", "CodeBLEU", "Syntax_Pass_Rate")


def sampling_section(exp_dir: Path, exp: Experiment, level: Level) -> list[tuple]:
    """Report blocks comparing each non-random sampling with random at the same other settings; [] when the
    experiment has no `data.sampling` axis."""
    if AXIS not in exp.axes:
        return []
    pairs = _pairs(exp)
    out: list[tuple] = [("h2", "Stratified vs random sampling"), ("p", _about(level))]
    if not pairs:
        return out + [
            ("p", "No configuration has a random-sampling twin with the other axes equal: nothing to pair.")
        ]
    header = ["Configurations", "metric", REFERENCE, "other", f"other − {REFERENCE} [{level.percent} CI]"]
    header += ["p", "test", "verdict"]
    rows, lines = [], []
    for ref, other in pairs:
        found = [c for m in METRICS if (c := compare(other, ref, m, level)) is not None]
        for c in found:
            rows.append(_row(ref, other, c, level))
        lines.append(_answer(ref, other, found))
    out.append(("table", header, rows))
    out += [("p", text) for text in lines]
    out.append(("p", _complexity(exp_dir, [c for pair in pairs for c in pair])))
    return out


def _about(level: Level) -> str:
    return (
        "Stratified sampling draws the training items round-robin from the corpus's cyclomatic-complexity "
        "quartiles; random sampling takes them as shuffled. Each stratified configuration is paired with the "
        "random one that has the same other settings (same test items, same benchmark tasks): pass@1 over "
        "benchmark tasks (exact McNemar test with one greedy sample per task and one seed, else the paired "
        "bootstrap), BLEU/CodeBLEU/syntax over the corpus test items (paired bootstrap); intervals "
        f"{level.percent}. A difference is stated only where its test is significant."
    )


def _pairs(exp: Experiment) -> list[tuple[Config, Config]]:
    """(random configuration, other configuration) for each group that differs only in data.sampling,
    ordered by the other axes' values."""
    others = [a for a in exp.axes if a != AXIS]
    groups: dict[str, list[Config]] = {}
    for c in exp.trained:
        groups.setdefault(repr([c.axis_value(a) for a in others]), []).append(c)
    out = []
    for group in sorted(groups.values(), key=lambda g: [sort_key(g[0].axis_value(a)) for a in others]):
        refs = [c for c in group if c.axis_value(AXIS) == REFERENCE]
        if len(refs) == 1:
            out += [(refs[0], c) for c in group if c is not refs[0]]
    return out


def _row(ref: Config, other: Config, c: Comparison, level: Level) -> list[str]:
    verdict = "significant" if c.significant else f"not significant at this sample size (n={c.n})"
    return [
        f"{other.label} vs {ref.label}",
        NAMES.get(c.metric, c.metric),
        fmt_value(config_value(ref, c.metric, level)),
        fmt_value(config_value(other, c.metric, level)),
        f"{c.diff:+.2f} [{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]",
        fmt_p(c.p_value),
        c.test + (f" ({c.effect})" if c.effect else ""),
        verdict,
    ]


def _answer(ref: Config, other: Config, found: list[Comparison]) -> str:
    """One paragraph per pair: pass@1 first (or why it is missing), then the other metrics."""
    head = f"{other.label} vs {ref.label}: "
    by_metric = {c.metric: c for c in found}
    p1 = by_metric.get("pass@1")
    if p1 is None:
        why = other.pass_note() or ref.pass_note() or "no per-task results on both sides"
        text = head + f"pass@1 not compared ({why})."
    else:
        verb = "differ" if p1.significant else "do not differ significantly"
        text = head + f"the samples {verb} in pass@1 ({describe(p1)})."
    sig = [describe(c) for c in found if c.metric != "pass@1" and c.significant]
    rest = [NAMES.get(c.metric, c.metric) for c in found if c.metric != "pass@1" and not c.significant]
    if sig:
        text += " Significant elsewhere: " + "; ".join(sig) + "."
    if rest:
        text += f" No significant difference in {', '.join(rest)}."
    return text


def _complexity(exp_dir: Path, configs: list[Config]) -> str:
    """Mean cyclomatic complexity of each configuration's training items (its first run's train.jsonl)."""
    from codetune.io import read_jsonl

    parts = []
    seen: set[str] = set()
    for c in configs:
        if c.label in seen:
            continue
        seen.add(c.label)
        rd = RunDir(Path(exp_dir) / c.runs[0].dirname)
        values = [
            float(rec.get("complexity", {}).get("cyclomatic", 1))
            for rec in read_jsonl(rd.train_split, missing_ok=True)
        ]
        if values:
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            parts.append(f"{c.label} {fmt(statistics.fmean(values))} ± {fmt(sd)} (n={len(values)})")
        else:
            parts.append(f"{c.label} n/a (no train.jsonl)")
    return "Training items' cyclomatic complexity, mean ± sd: " + "; ".join(parts) + "."
