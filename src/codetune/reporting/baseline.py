"""Each configuration against the base model it started from: the paired difference and its test.

A base-model row (`baseline: true`: no adapter) was scored on the same corpus test items, the same
benchmark tasks and with the same generation settings as the cells it stands for; the runner adds one
per group of cells that differ only in training (one per language when the grid varies data.language).
A configuration is matched to the base row whose config.yaml agrees with its own on everything but
training (lora.*, train.*, data.train_size/sampling/order, the seed, execution fields); runs without a
config.yaml match on language and model. pass@1 is then paired per benchmark task (exact McNemar on
pass/fail when both sides have one sample per task and one seed), infilling pass@1 per infilling item
(the same tests), BLEU and CodeBLEU per corpus item (paired bootstrap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codetune.reporting.analysis import Config, Experiment, Level, config_value
from codetune.reporting.comparison import Comparison, compare
from codetune.reporting.wording import NAMES, describe, diff_ci, fmt_p, fmt_value

BASE_METRICS = ("pass@1", "BLEU", "CodeBLEU", "infill_pass@1")
# Config fields that shape only training: a base row ignores them (as config.baseline_specs does).
_IGNORED = ("data.train_size", "data.sampling", "data.order", "data.fim_rate", "data.fim_mode", "data.fim_split")
# Fields newer than some runs' config.yaml: at these values they match a config.yaml that lacks them.
_ABSENT_MEANS = {"eval.infilling": "none", "eval.infilling_limit": None}
_SECTIONS = ("model", "data", "generate", "eval")


@dataclass
class BaseDiff:
    """One configuration minus its base row, per metric (no entry where a side lacks the metric)."""

    config: Config
    base: Config | None
    comparisons: dict[str, Comparison] = field(default_factory=dict)


def match_base(config: Config, bases: list[Config]) -> Config | None:
    """The base row that shares `config`'s test items, benchmark and generation settings (None: none does)."""
    key = _test_set_key(config)
    exact = [b for b in bases if key is not None and _test_set_key(b) == key]
    if exact:
        return exact[0]
    same = [
        b
        for b in bases
        if all(repr(b.axis_value(k)) == repr(config.axis_value(k)) for k in ("data.language", "model.name"))
    ]
    return same[0] if len(same) == 1 else None


def _test_set_key(config: Config) -> str | None:
    """What a base row must share with a cell, as text; None for a run without config.yaml."""
    from codetune.config import execution_keys

    cfg = config.runs[0].config
    if cfg is None:
        return None
    flat = _flatten({k: cfg.get(k) for k in _SECTIONS})
    for key in (*_IGNORED, *execution_keys()):
        flat.pop(key, None)
    for key, value in _ABSENT_MEANS.items():
        if key in flat and flat[key] == value:
            del flat[key]
    return repr(sorted(flat.items()))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def base_differences(exp: Experiment, level: Level | None = None) -> list[BaseDiff]:
    """Every trained configuration against its base row on pass@1, BLEU, CodeBLEU and infilling pass@1."""
    level = level or exp.level
    out = []
    for c in exp.trained:
        base = match_base(c, exp.bases)
        diff = BaseDiff(c, base)
        if base is not None:
            # A base row of greedy generation has one run whatever the seeds: pool the cell's seeds against it.
            pool = len(base.runs) == 1
            for m in BASE_METRICS:
                cmp = compare(c, base, m, level, pool_seeds=pool)
                if cmp is not None:
                    diff.comparisons[m] = cmp
        out.append(diff)
    return out


def plot_annotations(diffs: list[BaseDiff]) -> dict[str, dict[str, tuple[float, float]]]:
    """{configuration label: {metric: (difference from its base row, p-value)}} for results.png."""
    return {d.config.label: {m: (c.diff, c.p_value) for m, c in d.comparisons.items()} for d in diffs}


def base_section(exp: Experiment, diffs: list[BaseDiff], level: Level) -> list[tuple]:
    """Report blocks: the "vs base model" table (base rows first) and one sentence per pass@1 difference."""
    out: list[tuple] = [("h2", "Differences from the base model")]
    if not exp.bases:
        return out + [
            (
                "p",
                "No base-model row in this experiment (its `baseline` switch was off, or the runs predate it): "
                "nothing says whether an adapter helped over the model it started from.",
            )
        ]
    out.append(
        (
            "p",
            "Each configuration minus its base-model row (no adapter; the same corpus test items, benchmark "
            "tasks and generation settings). pass@1: exact McNemar test on per-task pass/fail, where b counts "
            "the tasks only the configuration passes and c those only the base model passes (p = two-sided "
            f"exact binomial of b in b + c), with a paired {level.percent} bootstrap interval over tasks; with "
            "several samples per task or pooled seeds, the paired bootstrap over per-task pass rates alone. "
            "BLEU and CodeBLEU: paired bootstrap over corpus test items. p-values are not adjusted for the "
            "number of comparisons."
            + (
                " Infilling pass@1: the same exact McNemar test, over infilling items."
                if any(c.infilling for c in exp.configs)
                else ""
            ),
        )
    )
    header = ["Configuration", "base row", "metric", "value", "base value", f"Δ [{level.percent} CI]"]
    header += ["b", "c", "p", "test", "n", "verdict"]
    rows = []
    for base in exp.bases:
        for m in BASE_METRICS:
            if m == "pass@1" or config_value(base, m, level) is not None:
                rows.append([base.label, "(itself)", NAMES[m], _value(base, m, level)] + [""] * 7 + ["reference"])
    for d in diffs:
        rows += _diff_rows(d, level)
    out.append(("table", header, rows))
    out += [("p", _sentence(d.comparisons["pass@1"]) + ".") for d in diffs if "pass@1" in d.comparisons]
    unmatched = [d.config.label for d in diffs if d.base is None]
    if unmatched:
        out.append(
            (
                "p",
                f"No base row shares the test set of {', '.join(unmatched)} (different data or generation "
                "settings): those configurations are not compared with the base model.",
            )
        )
    return out


def _diff_rows(d: BaseDiff, level: Level) -> list[list[str]]:
    rows = []
    for m in BASE_METRICS:
        value = _value(d.config, m, level)
        if d.base is None:
            rows.append([d.config.label, "none", NAMES[m], value, "", "", "", "", "", "", "", "no base row"])
            continue
        base_value = _value(d.base, m, level)
        c = d.comparisons.get(m)
        if c is None:
            why = _why_untested(d, m)
            if why is None:
                continue  # neither side has the metric (CodeBLEU for a language it does not cover)
            rows.append([d.config.label, d.base.label, NAMES[m], value, base_value, "", "", "", "", "", "", why])
            continue
        b, cc = ("", "") if c.discordant is None else (str(c.discordant[0]), str(c.discordant[1]))
        verdict = "significant" if c.significant else f"not significant at this sample size (n={c.n})"
        rows.append(
            [
                d.config.label,
                d.base.label,
                NAMES[m],
                value,
                base_value,
                diff_ci(c),
                b,
                cc,
                fmt_p(c.p_value),
                c.test,
                str(c.n),
                verdict,
            ]
        )
    return rows


def _value(config: Config, metric: str, level: Level) -> str:
    v = config_value(config, metric, level)
    return "not measured" if v is None and metric == "pass@1" else fmt_value(v)


def _why_untested(d: BaseDiff, metric: str) -> str | None:
    if metric == "pass@1":
        notes = [f"{c.label}: {n}" for c in (d.config, d.base) if (n := c.pass_note())]
        return "no test: pass@1 not measured, " + "; ".join(notes) if notes else "no test: no per-task results"
    has = [any(r.stats.get(metric) is not None for r in c.runs) for c in (d.config, d.base)]
    return None if not any(has) else f"no test: {NAMES[metric]} missing on one side"


def _sentence(c: Comparison) -> str:
    text = describe(c)
    if c.discordant is not None:
        text += f"; tasks passed only by {c.a}: b={c.discordant[0]}, only by {c.b}: c={c.discordant[1]}"
    return text
