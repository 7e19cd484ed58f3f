"""`--dry-run`: the runs an experiment would do, with ids, sizes and a rough cost estimate.

Costs come from runs this machine finished: every metrics.json under the output root records how long each
stage took and on how much (training seconds and tokens, corpus generation seconds per test item, benchmark
generation and execution seconds per sample, infilling seconds per item). The estimate takes the median
per-unit time of each stage over those runs, so it follows the hardware, the code and the model's own
habits (how long its completions run before they stop) instead of a figure written into the source. A stage
no finished run measured has no time: the plan says which, and gives sizes only.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codetune.config import ExperimentConfig, RunConfig, expand_grid
from codetune.rundir import RunDir

# Planning guess of a training example's tokens (prompt + body) when no finished run measured it.
MEAN_TOKENS_PER_SAMPLE = 120.0
# Tasks of a benchmark named by its setting, for planning (a file's count is known once it is loaded).
HUMANEVAL_TASKS = 164
STAGES = ("train", "generate", "benchmark", "infilling")


@dataclass
class Rates:
    """Median per-unit seconds of each stage over finished runs (None: no run measured that stage).

    Attributes:
        train_s_per_token, tokens_per_example: training seconds per token; tokens per example and epoch.
        gen_s_per_item: corpus generation seconds per test item and sample.
        bench_s_per_sample: benchmark generation + execution seconds per task and sample.
        infill_s_per_item: infilling generation + execution seconds per item.
    """

    train_s_per_token: float | None = None
    tokens_per_example: float | None = None
    gen_s_per_item: float | None = None
    bench_s_per_sample: float | None = None
    infill_s_per_item: float | None = None
    n_runs: int = 0


def _ratio(m: dict[str, Any], seconds: tuple[str, ...], units: float) -> float | None:
    total = sum(float(m.get(k) or 0) for k in seconds)
    return total / units if total > 0 and units > 0 else None


def _run_rates(m: dict[str, Any], generations: int) -> dict[str, float | None]:
    """One finished run's per-unit seconds, from its metrics.json and its count of corpus generations."""
    examples = float(m.get("n_train") or 0) * float(m.get("epochs") or 0)
    tokens = float(m.get("train_tokens") or 0)
    bench = float(m.get("benchmark_tasks") or 0) * float(m.get("benchmark_samples_per_task") or 1)
    return {
        "train_s_per_token": _ratio(m, ("train_time_s",), tokens),
        "tokens_per_example": tokens / examples if tokens and examples else None,
        "gen_s_per_item": _ratio(m, ("gen_time_s",), generations),
        "bench_s_per_sample": _ratio(m, ("benchmark_gen_time_s", "exec_seconds"), bench),
        "infill_s_per_item": _ratio(
            m, ("infill_gen_time_s", "infill_exec_seconds"), float(m.get("infill_n") or 0)
        ),
    }


def measured_rates(out_root: Path, model: str | None = None) -> Rates:
    """Median per-unit stage times over the finished runs under `out_root` (of `model` if given)."""
    seen: dict[str, list[float]] = {}
    n = 0
    for metrics_path in sorted(Path(out_root).glob(f"*/*/{RunDir.METRICS}")):
        try:
            m = RunDir(metrics_path.parent).read_metrics()
        except Exception:  # an unreadable run tells nothing about speed; the report will flag it
            continue
        if not isinstance(m, dict) or (model and m.get("model") != model):
            continue
        n += 1
        for key, value in _run_rates(m, _count_generations(metrics_path.parent)).items():
            if value is not None:
                seen.setdefault(key, []).append(value)
    return Rates(**{k: statistics.median(v) for k, v in seen.items()}, n_runs=n)


def _count_generations(run_dir: Path) -> int:
    try:
        return len(RunDir(run_dir).read_generations())
    except Exception:  # no generations file: the corpus stage's rate is then not measured by this run
        return 0


def _benchmark_tasks(c: RunConfig) -> int:
    """Planning count of the run's benchmark tasks: HumanEval's for the bundled default, else a guess of
    the same size (HumanEval-X and HumanEval+ have HumanEval's 164 problems)."""
    if c.eval.benchmark == "none":
        return 0
    return min(HUMANEVAL_TASKS, c.eval.benchmark_limit or HUMANEVAL_TASKS)


def _infilling_items(c: RunConfig, cache: dict) -> int:
    """How many infilling items the run builds (0 with eval.infilling none), counted on the bundled
    HumanEval where the benchmark is the default; a benchmark file is counted as if it were HumanEval."""
    if c.eval.infilling == "none" or c.eval.benchmark == "none":
        return 0
    key = (c.eval.infilling, c.eval.infilling_limit)
    if key not in cache:
        from codetune.evaluation.benchmarks import load_tasks
        from codetune.experiments.infilling import infilling_items

        tasks = load_tasks("humaneval")[: c.eval.infilling_limit or None]
        cache[key] = len(infilling_items(tasks, c.eval.infilling))
    return cache[key]


def stage_costs(c: RunConfig, rates: Rates, cache: dict | None = None) -> dict[str, float | None]:
    """Seconds each stage of run `c` should take at `rates` (0: the run has no such stage; None: unknown)."""
    cache = {} if cache is None else cache
    tokens_per_example = rates.tokens_per_example or MEAN_TOKENS_PER_SAMPLE
    train_tok = 0.0 if c.baseline else c.data.train_size * c.train.epochs * tokens_per_example
    units = {
        "train": (train_tok, rates.train_s_per_token),
        "generate": (c.data.test_size * c.generate.n_samples, rates.gen_s_per_item),
        "benchmark": (_benchmark_tasks(c) * c.generate.n_samples, rates.bench_s_per_sample),
        "infilling": (_infilling_items(c, cache), rates.infill_s_per_item),
    }
    return {k: 0.0 if n == 0 else (None if rate is None else n * rate) for k, (n, rate) in units.items()}


def describe_plan(exp: ExperimentConfig, out_root: Path) -> str:
    specs = expand_grid(exp)
    lines = [f"experiment '{exp.name}': {len(specs)} runs -> {Path(out_root) / exp.name}"]
    rates = measured_rates(Path(out_root), exp.base.model.name)
    total, unknown, cache = 0.0, set(), {}
    for s in specs:
        c = s.config
        costs = stage_costs(c, rates, cache)
        missing = [k for k in STAGES if costs[k] is None]
        unknown.update(missing)
        est = sum(v for v in costs.values() if v is not None)
        total += est
        cost = ""
        if rates.n_runs:  # with nothing measured, sizes only
            cost = f", ~{est / 60:.1f} min" + (f" + unknown {'/'.join(missing)}" if missing else "")
        done = RunDir(Path(out_root) / exp.name / s.dirname).is_finished()
        what = "no training" if c.baseline else f"train {c.data.train_size} x {c.train.epochs:g} ep"
        bench = f", benchmark {c.eval.benchmark}" + (
            f"[:{c.eval.benchmark_limit}]" if c.eval.benchmark_limit else ""
        )
        infill = "" if c.eval.infilling == "none" else f", {_infilling_items(c, cache)} {c.eval.infilling} items"
        train_k = (
            c.data.train_size * c.train.epochs * (rates.tokens_per_example or MEAN_TOKENS_PER_SAMPLE)
        ) / 1000
        lines.append(
            f"  {s.run_id}  {s.label:<24} {what}, test {c.data.test_size}{bench}{infill}"
            f"  ~{0 if c.baseline else train_k:.0f}k train tokens{cost}{'  [done]' if done else ''}"
        )
    if rates.n_runs == 0:
        lines.append(
            f"estimated total: unknown: no finished run of {exp.base.model.name} under {out_root} to measure "
            "speed from (sizes above are planning guesses; finish one run, e.g. `codetune run quick`, for times)"
        )
        return "\n".join(lines)
    line = (
        f"estimated total: ~{total / 60:.1f} min at the median per-item stage times of {rates.n_runs} finished "
        f"runs of {exp.base.model.name} under {out_root}"
    )
    if unknown:
        line += f", not counting {', '.join(k for k in STAGES if k in unknown)} (no finished run measured it)"
    lines.append(line)
    return "\n".join(lines)
