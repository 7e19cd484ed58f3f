"""The report's infilling section: infilling pass@1 per configuration, and what FIM training costs and buys.

A run with `eval.infilling` also fills in masked lines (or blocks) of the benchmark's canonical bodies,
given the code before and after them (`codetune.experiments.infilling`). The section sets, per
configuration, infilling pass@1 and exact match beside left-to-right pass@1, and then asks the question of
Bavarian et al. 2022 for the grid's `data.fim_rate` axis: between two FIM rates (the other axes held fixed)
and against the base model, the paired difference in left-to-right pass@1 (per benchmark task) and in
infilling pass@1 (per infilling item), each with the exact McNemar test where both sides have one greedy
sample per item and one seed (`codetune.reporting.comparison`).
"""

from __future__ import annotations

import itertools

from codetune.reporting.analysis import Config, Experiment, Level, config_value
from codetune.reporting.baseline import BaseDiff
from codetune.reporting.comparison import Comparison, compare
from codetune.reporting.wording import describe, diff_ci, fmt_p, fmt_value, lookup, sort_key

FIM_AXIS = "data.fim_rate"
QUESTION_METRICS = (("pass@1", "left-to-right pass@1 %"), ("infill_pass@1", "infilling pass@1 %"))
_FIM_TOKENS = {
    "trained": "trained (the adapter's rows)",
    "added_untrained": "added, untrained (mean of the other rows)",
    "native": "the tokenizer's own",
}


def infilling_section(exp: Experiment, comparisons: list[Comparison], diffs: list[BaseDiff], level: Level) -> list:
    """Report blocks for the infilling benchmark; [] when no run had `eval.infilling` on."""
    configs = [c for c in exp.configs if c.infilling]
    if not configs:
        return []
    out: list[tuple] = [("h2", "Infilling"), ("p", _about(configs))]
    header = ["Configuration", "FIM rate", "FIM tokens", "items", f"infilling pass@1 % [{level.percent} CI]"]
    header += [f"exact match % [{level.percent} CI]", f"left-to-right pass@1 % [{level.percent} CI]"]
    rows = [
        [
            c.label,
            "-" if c.baseline else _rate_text(c),
            _tokens(c),
            _items(c),
            _value(c, "infill_pass@1", level, c.infill_note()),
            _value(c, "infill_exact_match", level, c.infill_note()),
            _value(c, "pass@1", level, c.pass_note()),
        ]
        for c in configs
    ]
    out.append(("table", header, rows))
    out += _fim_question(exp, [c for c in configs if not c.baseline], comparisons, diffs, level)
    return out


def _about(configs: list[Config]) -> str:
    runs = [r for c in configs for r in c.runs]
    kinds = sorted({str(r.metrics.get("infill_kind")) for r in runs})
    tasks = sorted({int(r.metrics.get("infill_tasks") or 0) for r in runs if r.metrics.get("infill_tasks")})
    benches = sorted({str(r.metrics.get("benchmark")) for r in runs if r.metrics.get("benchmark")})
    where = f"{'/'.join(kinds)} infilling of {', '.join(benches) or 'the benchmark'}"
    if tasks:
        where += f" (items from its first {', '.join(map(str, tasks))} tasks)"
    return (
        f"{where}: each item masks one line (single_line) or a block of lines (multi_line) of a task's "
        "canonical body; the model gets the prompt and the lines before as prefix, the lines after as suffix "
        "(FIM layout PSM, greedy) and writes the middle. An item passes when prefix + middle + suffix passes the "
        "task's tests in the sandbox; exact match: the middle equals the canonical one, trailing whitespace "
        "aside. Intervals resample items. FIM tokens: how the model got <fim_prefix>/<fim_suffix>/<fim_middle> "
        "(a model that never trained them has rows set to the mean of its other rows, so its infilling shows "
        "what the prompt layout alone does)."
    )


def _rate_text(c: Config) -> str:
    v = c.axis_value(FIM_AXIS)
    return "0" if v in (None, 0, 0.0) else f"{v:g}"


def _tokens(c: Config) -> str:
    vals = [str(r.metrics.get("fim_tokens")) for r in c.runs if r.metrics.get("fim_tokens")]
    return ", ".join(_FIM_TOKENS.get(v, v) for v in dict.fromkeys(vals)) or "n/a"


def _items(c: Config) -> str:
    ns = sorted({len(r.infill.task_ids) for r in c.runs if r.infill is not None and r.infill.task_ids})
    return ", ".join(map(str, ns)) or "0"


def _value(c: Config, metric: str, level: Level, note: str | None) -> str:
    v = config_value(c, metric, level)
    if v is not None:
        return fmt_value(v)
    return f"not measured ({note})" if note else "not measured"


def _fim_question(
    exp: Experiment, trained: list[Config], comparisons: list[Comparison], diffs: list[BaseDiff], level: Level
) -> list[tuple]:
    """Between FIM rates (the other axes fixed) and against the base model: left-to-right and infilling
    pass@1, paired."""
    out: list[tuple] = [("h3", "What FIM training costs left to right, and what it buys in infilling")]
    pairs = _rate_pairs(trained, exp.axes)
    base_pairs = [(d.config, d.base) for d in diffs if d.base is not None and d.config.infilling]
    if not pairs and not base_pairs:
        return out + [
            (
                "p",
                f"The experiment does not vary `{FIM_AXIS}` and has no base-model row: there is nothing to set "
                "the infilling pass@1 above against.",
            )
        ]
    out.append(
        (
            "p",
            "A − B, paired on the same items: left-to-right pass@1 over the benchmark's tasks, infilling pass@1 "
            f"over the infilling items; {level.percent} paired bootstrap interval, and the exact McNemar test "
            "where each side has one sample per item and one seed (b: items only A passes, c: only B). Pairs "
            f"differ in `{FIM_AXIS}` only (higher rate first), then each configuration against its base-model "
            "row. p-values are not adjusted for the number of comparisons.",
        )
    )
    header = ["A", "B", "metric", "A value", "B value", f"A − B [{level.percent} CI]", "b", "c", "p", "test"]
    header += ["n", "verdict"]
    rows, sentences = [], []
    for a, b, is_base in [*((a, b, False) for a, b in pairs), *((a, b, True) for a, b in base_pairs)]:
        for metric, name in QUESTION_METRICS:
            c = _comparison(comparisons, a, b, metric, level, is_base)
            if c is None:
                why = "no test: not measured on both sides"
                rows.append([a.label, b.label, name, _plain(a, metric, level), _plain(b, metric, level)])
                rows[-1] += ["", "", "", "", "", "", why]
                continue
            rows.append(_row(c, a, b, name, level))
            if not is_base:
                sentences.append(describe(c) + ".")
    out.append(("table", header, rows))
    if not pairs:
        out.append(("p", f"The experiment does not vary `{FIM_AXIS}`: only the base-model rows to compare with."))
    out += [("p", s) for s in sentences]
    return out


def _rate_pairs(trained: list[Config], axes: list[str]) -> list[tuple[Config, Config]]:
    """Every pair of configurations that differ only in the FIM rate, as (higher rate, lower rate)."""
    if FIM_AXIS not in axes:
        return []
    groups: dict[str, list[Config]] = {}
    for c in trained:
        rest = repr([c.axis_value(a) for a in axes if a != FIM_AXIS])
        groups.setdefault(rest, []).append(c)
    pairs = []
    for group in groups.values():
        ordered = sorted(group, key=lambda c: sort_key(c.axis_value(FIM_AXIS) or 0.0))
        pairs += [(hi, lo) for lo, hi in itertools.combinations(ordered, 2)]
    return pairs


def _comparison(
    comparisons: list[Comparison], a: Config, b: Config, metric: str, level: Level, is_base: bool
) -> Comparison | None:
    if not is_base:
        found = lookup(comparisons, a.label, b.label, metric)
        return found if found is not None else compare(a, b, metric, level)
    # A base row of greedy generation has one run whatever the seeds: pool the cell's seeds against it.
    return compare(a, b, metric, level, pool_seeds=len(b.runs) == 1)


def _plain(c: Config, metric: str, level: Level) -> str:
    v = config_value(c, metric, level)
    return "not measured" if v is None else fmt_value(v)


def _row(c: Comparison, a: Config, b: Config, name: str, level: Level) -> list[str]:
    bb, cc = ("", "") if c.discordant is None else (str(c.discordant[0]), str(c.discordant[1]))
    verdict = "significant" if c.significant else f"not significant at this sample size (n={c.n})"
    return [
        a.label,
        b.label,
        name,
        _plain(a, c.metric, level),
        _plain(b, c.metric, level),
        diff_ci(c),
        bb,
        cc,
        fmt_p(c.p_value),
        c.test,
        str(c.n),
        verdict,
    ]
