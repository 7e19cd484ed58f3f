"""Figures: one panel per metric, a bar per configuration, error bars where CIs were measured.

Base-model rows (`baseline: true`) are grey and hatched; given each configuration's paired difference
from its base row, the bar carries it (Δ and p). A configuration without pass@1 says "not measured" on
its pass@1 bar's place, never a bar at 0; infilling pass@1 (`eval.infilling`) gets its own panel likewise.
"""

from __future__ import annotations

import math
from pathlib import Path

from codetune.io import atomic_path

_PANELS = [
    ("pass@1", "pass@1 (%)"),
    ("infill_pass@1", "infilling pass@1 (%)"),
    ("BLEU", "BLEU"),
    ("CodeBLEU", "CodeBLEU"),
    ("Syntax_Pass_Rate", "Syntax pass rate (%)"),
]
_BAR, _BASE = "#4C72B0", "#8C8C8C"


def plot_results(
    rows: list[dict],
    out: Path,
    title: str = "",
    ci_level: float | None = None,
    deltas: dict[str, dict[str, tuple[float, float]]] | None = None,
) -> Path:
    """Write a PNG with a panel per metric present in `rows` (atomic).

    Error bars are the rows' own intervals; their level is `ci_level`, else the one the rows recorded
    (0.95 for rows that predate the `ci_level` field). `deltas` maps a configuration to
    {metric: (difference from its base row, p-value)} (`baseline.plot_annotations`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, name) for k, name in _PANELS if any(r.get(k) not in (None, "") for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.2 * max(1, len(panels)), 3.9), squeeze=False)
    labels = _group_labels(rows)
    percent = _percent(rows, ci_level)
    base = {lab for lab in labels if any(_is_base(r) for r in rows if r["Configuration"] == lab)}
    for ax, (key, name) in zip(axes[0], panels):
        means, lows, highs = _bars(rows, labels, key)
        x = list(range(len(labels)))
        has_err = any(lows) or any(highs)
        colors = [_BASE if lab in base else _BAR for lab in labels]
        bars = ax.bar(x, means, color=colors, yerr=[lows, highs] if has_err else None, capsize=4)
        for bar, lab in zip(bars, labels):
            if lab in base:
                bar.set_hatch("//")
        top = max([m + h for m, h in zip(means, highs) if not math.isnan(m)], default=0.0) or 1.0
        for xi, m, h, lab in zip(x, means, highs, labels):
            if math.isnan(m):
                ax.text(xi, 0, "not\nmeasured", ha="center", va="bottom", fontsize=7, color="#444444")
                continue
            # Inside the bar's foot, so the label never collides with the error bar.
            ax.text(xi, 0, f"{m:.1f}", ha="center", va="bottom", fontsize=8, color="white", fontweight="bold")
            d = (deltas or {}).get(lab, {}).get(key)
            if d is not None:
                p = "p<0.001" if d[1] < 0.001 else f"p={d[1]:.3f}"
                ax.text(xi, m + h + 0.02 * top, f"Δ{d[0]:+.1f}\n{p}", ha="center", va="bottom", fontsize=7)
        if deltas:
            ax.set_ylim(0, top * 1.25)
        ax.set_xticks(
            x, [f"{lab} (base)" if lab in base else lab for lab in labels], rotation=20, ha="right", fontsize=8
        )
        ax.set_title(name + (f" ({percent} CI)" if has_err else ""), fontsize=10)
    if deltas:
        title = (title + "\n" if title else "") + "Δ: paired difference from the base model (grey), with its p"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return out


def _bars(rows: list[dict], labels: list[str], key: str) -> tuple[list[float], list[float], list[float]]:
    """Mean value and error-bar extents per configuration (NaN where no run measured `key`)."""
    means, lows, highs = [], [], []
    for lab in labels:
        mine = [r for r in rows if r["Configuration"] == lab]
        vals = [float(r[key]) for r in mine if r.get(key) not in (None, "")]
        m = sum(vals) / len(vals) if vals else math.nan
        lo = [float(r[f"{key}_ci_low"]) for r in mine if r.get(f"{key}_ci_low") not in (None, "")]
        hi = [float(r[f"{key}_ci_high"]) for r in mine if r.get(f"{key}_ci_high") not in (None, "")]
        means.append(m)
        lows.append(m - min(lo) if lo and vals else 0.0)
        highs.append(max(hi) - m if hi and vals else 0.0)
    return means, lows, highs


def _group_labels(rows: list[dict]) -> list[str]:
    """Configurations in row order, base-model rows first."""
    seen: list[str] = []
    for r in sorted(rows, key=lambda r: not _is_base(r)):
        if r["Configuration"] not in seen:
            seen.append(r["Configuration"])
    return seen


def _is_base(row: dict) -> bool:
    """A base-model row, from metrics.json (a bool) or a CSV cell (text)."""
    return row.get("baseline") in (True, 1, "True", "true", "1")


def _percent(rows: list[dict], ci_level: float | None) -> str:
    if ci_level is None:
        recorded = [r.get("ci_level") for r in rows if r.get("ci_level") not in (None, "")]
        ci_level = float(recorded[0]) if recorded else 0.95
    return f"{round(100.0 * ci_level, 6):g}%"
