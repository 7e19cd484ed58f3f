"""What each configuration bought for what it cost: pass@1 (with its CI) against the cost of training.

One panel per cost (training seconds, training tokens, trainable parameters, training examples), base
model at cost 0, and the Pareto front (highest pass@1 for the least cost) marked in each. The front is
drawn on point estimates: two configurations whose intervals overlap are not shown apart by it. Where
no configuration has pass@1, BLEU stands in, and the figure says so.
"""

from __future__ import annotations

import math
from pathlib import Path

from codetune.io import atomic_path
from codetune.reporting.analysis import Config, Experiment, Level, config_value
from codetune.reporting.wording import NAMES, fmt, fmt_value

# (metrics.json key, axis label)
COSTS = (
    ("train_time_s", "training time (s)"),
    ("train_tokens", "training tokens"),
    ("trainable_params", "trainable parameters"),
    ("n_train", "training examples"),
)


def cost_of(config: Config, key: str) -> float | None:
    """Mean cost over the configuration's runs; 0 for a base model; None where a run did not record it."""
    if config.baseline:
        return 0.0
    vals = []
    for r in config.runs:
        m = r.metrics
        v = m.get(key)
        if v is None and key == "train_tokens" and m.get("train_tokens_per_s") is not None:
            # Runs that recorded only the rate: tokens = rate x time (the rate is real tokens / train time).
            v = float(m["train_tokens_per_s"]) * float(m.get("train_time_s") or 0.0)
        if v is None and key == "n_train":
            v = m.get("train_size")
        if v is None:
            return None
        vals.append(float(v))
    return sum(vals) / len(vals)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates (cost x no higher and value y no lower, one strictly).

    Points are (cost, value): the front is what minimises cost and maximises value. Equal points are
    both on it. Returned in increasing cost.
    """
    front = []
    for i, (xi, yi) in enumerate(points):
        dominated = any(
            xj <= xi and yj >= yi and (xj < xi or yj > yi) for j, (xj, yj) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def cost_metric(exp: Experiment) -> str:
    """pass@1 where any configuration measured it, else BLEU."""
    return "pass@1" if any(config_value(c, "pass@1", exp.level) for c in exp.configs) else "BLEU"


def cost_table(exp: Experiment, level: Level) -> dict:
    """Per configuration: its value of the cost metric, each cost, and the costs it is Pareto-optimal on."""
    metric = cost_metric(exp)
    values = {c.label: config_value(c, metric, level) for c in exp.configs}
    optimal: dict[str, list[str]] = {c.label: [] for c in exp.configs}
    for key, _ in COSTS:
        pts = _points(exp.configs, values, key)
        for i in pareto_front([(x, y) for _, x, y in pts]):
            optimal[pts[i][0].label].append(key)
    return {"metric": metric, "values": values, "optimal": optimal}


def _points(configs: list[Config], values: dict, key: str) -> list[tuple[Config, float, float]]:
    """(configuration, cost, value) where both are known; [] when no trained configuration recorded the
    cost (the base row's 0 alone says nothing about it)."""
    out = []
    for c in configs:
        x, v = cost_of(c, key), values.get(c.label)
        if x is not None and v is not None and not math.isnan(v["value"]):
            out.append((c, x, v["value"]))
    return out if any(not c.baseline for c, _, _ in out) else []


def plot_cost(exp: Experiment, out: Path, level: Level) -> Path | None:
    """Write cost.png (atomic): a panel per cost with the Pareto front; None when no configuration has a value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = cost_table(exp, level)
    metric, values = table["metric"], table["values"]
    if all(v is None for v in values.values()):
        return None
    fig, axes = plt.subplots(1, len(COSTS), figsize=(4.0 * len(COSTS), 3.8), squeeze=False)
    for ax, (key, name) in zip(axes[0], COSTS):
        pts = _points(exp.configs, values, key)
        if not pts:
            ax.text(0.5, 0.5, f"{name}: not recorded", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        for c, x, y in pts:
            ci = values[c.label]["ci"]
            # Clipped: a mean over seeds can sit outside the interval of their pooled items.
            err = [[max(0.0, y - ci[0])], [max(0.0, ci[1] - y)]] if ci else None
            style = {"color": "#8C8C8C", "marker": "s"} if c.baseline else {"color": "#4C72B0", "marker": "o"}
            ax.errorbar([x], [y], yerr=err, capsize=3, linestyle="none", **style)
            ax.annotate(c.label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        front = [pts[i] for i in pareto_front([(x, y) for _, x, y in pts])]
        ax.step([x for _, x, _ in front], [y for _, _, y in front], where="post", color="#C44E52", linewidth=1.2)
        ax.scatter(
            [x for _, x, _ in front], [y for _, _, y in front], s=90, facecolors="none", edgecolors="#C44E52"
        )
        ax.set_xlabel(name, fontsize=9)
        ax.set_ylabel(NAMES[metric], fontsize=9)
    title = (
        f"{NAMES[metric]} ({level.percent} CI) against training cost; red: Pareto front, grey square: base model"
    )
    if metric != "pass@1":
        title = "pass@1 not measured: BLEU shown instead. " + title.replace(f"{NAMES[metric]} (", "BLEU (")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
    return out


def cost_section(exp: Experiment, level: Level, png: Path | None, b64: str | None) -> list[tuple]:
    """Report blocks: the figure (embedded; linked from report.md) and the Pareto-optimal configurations."""
    out: list[tuple] = [("h2", "Cost")]
    table = cost_table(exp, level)
    metric = table["metric"]
    if png is None or b64 is None:
        return out + [("p", "No configuration has pass@1 or BLEU: nothing to put against cost.")]
    lead = (
        f"{NAMES[metric]} with its {level.percent} CI against what each configuration cost to train (base model "
        "at 0). The Pareto front joins the configurations no other one beats on both (higher value, lower "
        "cost); it is drawn on point estimates, so configurations with overlapping intervals may not differ."
    )
    if metric != "pass@1":
        lead = "pass@1 was not measured in any run, so BLEU stands in. " + lead
    out += [("p", lead), ("img", f"{NAMES[metric]} against training cost, Pareto front marked", b64, png.name)]
    header = ["Configuration", NAMES[metric]] + [name for _, name in COSTS] + ["Pareto-optimal on"]
    rows = []
    for c in exp.configs:
        on = table["optimal"][c.label]
        if on:
            names = [name for key, name in COSTS if key in on]
            rows.append(
                [c.label, fmt_value(table["values"][c.label])]
                + [_cost(c, k) for k, _ in COSTS]
                + [", ".join(names)]
            )
    out += [("h3", "Pareto-optimal configurations"), ("table", header, rows)]
    return out


def _cost(c: Config, key: str) -> str:
    v = cost_of(c, key)
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if key != "train_time_s" else fmt(v, 1)
