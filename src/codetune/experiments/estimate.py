"""`--dry-run`: the runs an experiment would do, with ids, sizes and a rough cost estimate.

Speeds come from runs this machine finished (every metrics.json under the output root records the
training tokens/s and generation time it had), so the estimate follows the hardware and the code
instead of a figure written into the source. With no finished run yet there is nothing to measure
from: the plan says so and gives sizes only.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from codetune.config import ExperimentConfig, RunConfig, expand_grid
from codetune.rundir import RunDir

# Planning guesses of the token counts (not speeds): the mean prompt+body length of a corpus function,
# and the share of the max_new_tokens cap a generation uses before it stops at the function's end.
MEAN_TOKENS_PER_SAMPLE = 120.0
GEN_SHARE_OF_CAP = 0.6
# Tasks of a benchmark named by its setting, for planning (a file's count is known once it is loaded).
HUMANEVAL_TASKS = 164


@dataclass
class Speeds:
    """Median speeds of finished runs under an output root (None: nothing to measure from)."""

    train_tokens_per_s: float | None
    gen_tokens_per_s: float | None
    n_runs: int


def measured_speeds(out_root: Path, model: str | None = None) -> Speeds:
    """Median training and generation speed over the finished runs under `out_root` (of `model` if any)."""
    train, gen = [], []
    for metrics_path in sorted(Path(out_root).glob(f"*/*/{RunDir.METRICS}")):
        try:
            m = RunDir(metrics_path.parent).read_metrics()
        except Exception:  # an unreadable run tells nothing about speed; the report will flag it
            continue
        if not isinstance(m, dict) or (model and m.get("model") != model):
            continue
        if m.get("train_tokens_per_s"):
            train.append(float(m["train_tokens_per_s"]))
        new_tokens = _generated_tokens(metrics_path.parent) + int(m.get("benchmark_new_tokens") or 0)
        seconds = float(m.get("gen_time_s") or 0) + float(m.get("benchmark_gen_time_s") or 0)
        if seconds and new_tokens:
            gen.append(new_tokens / seconds)
    return Speeds(statistics.median(train) if train else None, statistics.median(gen) if gen else None, len(train))


def _generated_tokens(run_dir: Path) -> int:
    try:
        return sum(int(r.get("n_new_tokens") or 0) for r in RunDir(run_dir).read_generations())
    except Exception:
        return 0


def _sizes(c: RunConfig) -> tuple[float, float]:
    train_tok = 0.0 if c.baseline else c.data.train_size * MEAN_TOKENS_PER_SAMPLE * c.train.epochs
    gen_tok = c.data.test_size * c.generate.n_samples * c.generate.max_new_tokens * GEN_SHARE_OF_CAP
    tasks = _benchmark_tasks(c)
    gen_tok += tasks * c.generate.n_samples * c.eval.benchmark_max_new_tokens * GEN_SHARE_OF_CAP
    return train_tok, gen_tok


def _benchmark_tasks(c: RunConfig) -> int:
    """Planning count of the run's benchmark tasks: HumanEval's for the bundled default, else a guess of
    the same size (HumanEval-X and HumanEval+ have HumanEval's 164 problems)."""
    if c.eval.benchmark == "none":
        return 0
    return min(HUMANEVAL_TASKS, c.eval.benchmark_limit or HUMANEVAL_TASKS)


def describe_plan(exp: ExperimentConfig, out_root: Path) -> str:
    specs = expand_grid(exp)
    lines = [f"experiment '{exp.name}': {len(specs)} runs -> {Path(out_root) / exp.name}"]
    speeds = measured_speeds(Path(out_root), exp.base.model.name)
    total, timed = 0.0, speeds.train_tokens_per_s is not None and speeds.gen_tokens_per_s is not None
    for s in specs:
        c = s.config
        train_tok, gen_tok = _sizes(c)
        cost = ""
        if timed:
            est = train_tok / speeds.train_tokens_per_s + gen_tok / speeds.gen_tokens_per_s
            total += est
            cost = f", ~{est / 60:.1f} min"
        done = RunDir(Path(out_root) / exp.name / s.dirname).is_finished()
        what = "no training" if c.baseline else f"train {c.data.train_size} x {c.train.epochs:g} ep"
        bench = f", benchmark {c.eval.benchmark}" + (
            f"[:{c.eval.benchmark_limit}]" if c.eval.benchmark_limit else ""
        )
        lines.append(
            f"  {s.run_id}  {s.label:<24} {what}, test {c.data.test_size}{bench}"
            f"  ~{train_tok / 1000:.0f}k train tokens{cost}{'  [done]' if done else ''}"
        )
    if timed:
        lines.append(
            f"estimated total: ~{total / 60:.1f} min at the median speed of {speeds.n_runs} finished runs of "
            f"{exp.base.model.name} under {out_root} ({speeds.train_tokens_per_s:.0f} train tok/s, "
            f"{speeds.gen_tokens_per_s:.0f} generated tok/s)"
        )
    else:
        lines.append(
            f"estimated total: unknown: no finished run of {exp.base.model.name} under {out_root} to measure "
            "speed from (sizes above are planning guesses; finish one run, e.g. `codetune run quick`, for times)"
        )
    return "\n".join(lines)
