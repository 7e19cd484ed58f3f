"""Figures: one panel per metric, a bar per configuration, error bars where CIs were measured."""

from __future__ import annotations

import math
from pathlib import Path

from codetune.io import atomic_path

_PANELS = [
    ("BLEU", "BLEU"),
    ("Syntax_Pass_Rate", "Syntax pass rate (%)"),
    ("pass@1", "pass@1 (%)"),
    ("CodeBLEU", "CodeBLEU"),
]


def plot_results(rows: list[dict], out: Path, title: str = "", ci_level: float | None = None) -> Path:
    """Write a PNG with a panel per metric present in `rows` (atomic).

    Error bars are the rows' own intervals; their level is `ci_level`, else the one the rows recorded
    (0.95 for rows that predate the `ci_level` field).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, name) for k, name in _PANELS if any(r.get(k) not in (None, "") for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.2 * max(1, len(panels)), 3.6), squeeze=False)
    labels = _group_labels(rows)
    percent = _percent(rows, ci_level)
    for ax, (key, name) in zip(axes[0], panels):
        means, lows, highs = [], [], []
        for lab in labels:
            vals = [float(r[key]) for r in rows if r["Configuration"] == lab and r.get(key) not in (None, "")]
            m = sum(vals) / len(vals) if vals else math.nan
            means.append(m)
            lo = [
                float(r[f"{key}_ci_low"])
                for r in rows
                if r["Configuration"] == lab and r.get(f"{key}_ci_low") not in (None, "")
            ]
            hi = [
                float(r[f"{key}_ci_high"])
                for r in rows
                if r["Configuration"] == lab and r.get(f"{key}_ci_high") not in (None, "")
            ]
            lows.append(m - min(lo) if lo else 0.0)
            highs.append(max(hi) - m if hi else 0.0)
        x = range(len(labels))
        has_err = any(lows) or any(highs)
        ax.bar(x, means, color="#4C72B0", yerr=[lows, highs] if has_err else None, capsize=4)
        for xi, m in zip(x, means):
            if not math.isnan(m):
                # Inside the bar's foot, so the label never collides with the error bar.
                ax.text(xi, 0, f"{m:.1f}", ha="center", va="bottom", fontsize=8, color="white", fontweight="bold")
        ax.set_xticks(list(x), labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(name + (f" ({percent} CI)" if has_err else ""), fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return out


def _group_labels(rows: list[dict]) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r["Configuration"] not in seen:
            seen.append(r["Configuration"])
    return seen


def _percent(rows: list[dict], ci_level: float | None) -> str:
    if ci_level is None:
        recorded = [r.get("ci_level") for r in rows if r.get("ci_level") not in (None, "")]
        ci_level = float(recorded[0]) if recorded else 0.95
    return f"{round(100.0 * ci_level, 6):g}%"
