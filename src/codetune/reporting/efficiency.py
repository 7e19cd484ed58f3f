"""The report's efficiency section: how fast and how lean the passing samples are, against the canonical
solutions, for the runs with `eval.efficiency` on (`codetune.evaluation.efficiency` measures them).

One row per run (a configuration with several seeds has one row per seed: the ratios are over different
samples): passing samples timed, the geometric-mean CPU-time ratio with its CI over tasks, the tasks where
a sample is more than 10x slower, the memory ratio, and the noise the ratios must be read against (the
canonical solution timed against itself, and the repeat spread).
"""

from __future__ import annotations

from typing import Any

from codetune.reporting.analysis import Experiment, Level
from codetune.reporting.wording import fmt

_SLOW_LISTED = 8  # task ids named in a cell; the rest counted


def efficiency_section(exp: Experiment, level: Level) -> list[tuple]:
    """Report blocks for the efficiency measurements; [] when no run had `eval.efficiency` on."""
    runs = [r for c in exp.configs for r in c.runs if _measured(r.metrics)]
    if not runs:
        return []
    header = [
        "Run",
        "passing samples timed",
        "tasks",
        f"CPU-time ratio (geo. mean) [{level.percent} CI]",
        "tasks with a sample > 10x slower",
        f"peak-memory ratio [{level.percent} CI]",
        f"canonical vs itself [{level.percent} CI]; 95% of tasks within",
        "repeat spread (IQR/median)",
        "timeouts / errors / wrong on heavy inputs",
    ]
    rows = [_row(_name(r), r.metrics) for r in runs]
    return [("h2", "Efficiency of passing code"), ("p", _about(runs)), ("table", header, rows)]


def _measured(m: dict[str, Any]) -> bool:
    return "eff_samples" in m or "eff_note" in m


def _name(run: Any) -> str:
    seed = run.metrics.get("seed")
    return run.label if seed is None else f"{run.label} (seed {seed})"


def _ci(m: dict[str, Any], key: str) -> str:
    if m.get(key) is None:
        return "n/a"
    low, high = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    return f"{fmt(m[key])}" + ("" if low is None else f" [{fmt(low)}, {fmt(high)}]")


def _slow(m: dict[str, Any]) -> str:
    ids = str(m.get("eff_slow_task_ids") or "").split()
    if not ids:
        return "0"
    named = ", ".join(ids[:_SLOW_LISTED]) + (
        f" and {len(ids) - _SLOW_LISTED} more" if len(ids) > _SLOW_LISTED else ""
    )
    return f"{len(ids)}: {named}"


def _row(name: str, m: dict[str, Any]) -> list[str]:
    if "eff_samples" not in m:
        return [name, "n/a", "n/a", m.get("eff_note") or "not measured", "", "", "", "", ""]
    band = m.get("eff_self_band_low"), m.get("eff_self_band_high")
    noise = _ci(m, "eff_self_ratio") + ("" if band[0] is None else f"; {fmt(band[0])}-{fmt(band[1])}")
    spread = f"{fmt(m.get('eff_spread'), 3)} (canonical {fmt(m.get('eff_self_spread'), 3)})"
    timed = f"{m.get('eff_timed', 0)} of {m.get('eff_samples', 0)}"
    if m.get("eff_unmeasured"):
        timed += f" ({m['eff_unmeasured']} not measurable)"
    bad = f"{m.get('eff_timeouts', 0)} / {m.get('eff_errors', 0)} / {m.get('eff_disagree', 0)}"
    ratio, mem = _ci(m, "eff_ratio"), _ci(m, "eff_mem_ratio")
    return [name, timed, str(m.get("eff_tasks", 0)), ratio, _slow(m), mem, noise, spread, bad]


def _about(runs: list[Any]) -> str:
    settings = sorted({str(r.metrics["eff_settings"]) for r in runs if r.metrics.get("eff_settings")})
    text = (
        "Each sample that passed the benchmark's tests, timed against the task's canonical solution on the task's "
        "heaviest inputs (its tests' and extra inputs ranked by size), in one sandbox run, each program in a "
        "process of its own: process CPU time per call, rounds alternating sample and canonical, the ratio the "
        "median over rounds of sample / canonical (> 1: slower). Ratios are averaged geometrically, first within "
        "a task, then over tasks (each task weighs the same); intervals resample tasks. A sample that ran past the "
        "timeout on an input counts at the timeout's factor (a lower bound). Peak memory: tracemalloc's peak of "
        "one call (floor 1 KiB). The canonical solution timed against itself is the noise: a ratio inside its "
        "range says nothing."
    )
    if settings:
        text += f" Settings: {'; '.join(settings)}."
    return text
