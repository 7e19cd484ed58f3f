"""A run's benchmark stage as the report reads it: per-task pass counts, error taxonomy, per-sample BLEU.

The benchmark's tasks (HumanEval and the like) are not the corpus test items: pass@1 is paired per
benchmark task id, BLEU/CodeBLEU per corpus item. `<run>/benchmark/results.jsonl` holds one verdict per
sample (several per task when the run sampled); a task's pass rate is c/n, and pass@1 is their mean. A
run without that file (older runs, or a benchmark that was unavailable: `benchmark_note`) has pass@1
*not measured*, with the reason, never 0.

A run with `eval.infilling` has a second such set, `<run>/infilling/` (`load_infilling`): one verdict per
infilling item (a masked line or block of a task's canonical body), so infilling pass@1 is paired per item
id, and summary.json says which items' middles matched the canonical ones exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codetune.evaluation.taxonomy import CATEGORIES  # `ExecResult.category`, in the harness's order
from codetune.io import read_jsonl
from codetune.rundir import RunDir

FAILURES = CATEGORIES[1:]


@dataclass
class Benchmark:
    """One run's benchmark verdicts, grouped by task (tasks in the order of their first sample)."""

    name: str | None
    samples: list[dict]  # results.jsonl as written ([] without the file)
    note: str | None  # why pass@1 is not measured; None when it is
    task_ids: list[str] = field(default_factory=list)
    n: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n_tasks,) samples per task
    c: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n_tasks,) passing samples per task
    exact: dict[str, bool] = field(default_factory=dict)  # infilling: item id -> middle matched exactly

    @property
    def measured(self) -> bool:
        return self.note is None

    @property
    def samples_per_task(self) -> int:
        return int(self.n.max()) if self.n.size else 0

    def pass_stats(self) -> np.ndarray | None:
        """Per-task pass rates as additive rate statistics, (n_tasks, 2) rows of (c/n, 1); None unmeasured.

        With one sample per task (greedy) the first column is the task's pass/fail flag (McNemar's input);
        with n samples it is the task's pass rate, so a bootstrap over tasks resamples whole tasks.
        """
        if not self.measured or not self.task_ids:
            return None
        return np.column_stack([self.c / self.n, np.ones(len(self.n))])

    def exact_stats(self) -> np.ndarray | None:
        """Infilling: per-item exact-match flags as rate statistics (n_items, 2), in `task_ids` order; None
        when unmeasured or when an item has no flag."""
        if not self.measured or not self.task_ids or any(t not in self.exact for t in self.task_ids):
            return None
        return np.column_stack([[float(self.exact[t]) for t in self.task_ids], np.ones(len(self.task_ids))])


def load_benchmark(rd: RunDir, metrics: dict[str, Any]) -> Benchmark:
    """The run's benchmark verdicts and whether pass@1 was measured (see `not_measured_note`)."""
    samples = read_jsonl(rd.benchmark.results, missing_ok=True)
    return _counted(Benchmark(metrics.get("benchmark"), samples, not_measured_note(metrics, samples)))


def load_infilling(rd: RunDir, metrics: dict[str, Any]) -> Benchmark | None:
    """The run's infilling verdicts (one per item) and exact-match flags; None for a run without infilling
    (no `infill_kind` in metrics.json). Not measured, with the run's reason, when `infill_pass@1` is null."""
    kind = metrics.get("infill_kind")
    if kind is None:
        return None
    samples = read_jsonl(rd.infilling.results, missing_ok=True)
    note = None
    if metrics.get("infill_pass@1") is None:
        note = str(metrics.get("infill_note") or "the run recorded no infilling pass@1")
    elif not samples:
        note = f"no per-item infilling results ({rd.infilling.results} is missing)"
    bench = _counted(Benchmark(f"{kind} infilling", samples, note))
    if bench.measured and rd.infilling.summary.is_file():
        per_item = rd.infilling.read_summary().get("exact_match_per_item") or {}
        bench.exact = {str(k): bool(v) for k, v in per_item.items()}
    return bench


def _counted(bench: Benchmark) -> Benchmark:
    """`bench` with its samples counted per task (tasks in the order of their first sample)."""
    counts: dict[str, list[int]] = {}
    for s in bench.samples:
        nc = counts.setdefault(str(s.get("task_id")), [0, 0])
        nc[0] += 1
        nc[1] += s.get("status") == "passed"
    bench.task_ids = list(counts)
    bench.n = np.array([n for n, _ in counts.values()], dtype=float)
    bench.c = np.array([c for _, c in counts.values()], dtype=float)
    return bench


def not_measured_note(metrics: dict[str, Any], samples: list[dict]) -> str | None:
    """Why pass@1 is not measured for a run, in one line; None when it is.

    The runner's verdict (`pass@1` null with `benchmark_note`) decides; a run that predates the field is
    measured when every sample of its results.jsonl was executed.
    """
    note = metrics.get("benchmark_note")
    if metrics.get("pass@1") is not None:
        return None
    if note:
        return str(note)
    unavailable = sum(s.get("status") == "unavailable" for s in samples)
    if unavailable:
        return f"{unavailable} of {len(samples)} benchmark samples could not be executed (status unavailable)"
    if samples and "pass@1" not in metrics:
        return None
    if "benchmark" not in metrics:
        return "the run has no benchmark stage: it was written before runs executed a benchmark"
    if metrics.get("benchmark") is None:
        return "no benchmark was run (eval.benchmark: none)"
    return "the run recorded no pass@1 and no per-sample results (benchmark/results.jsonl)"


def taxonomy(benches: Sequence[Benchmark], metrics: Sequence[dict[str, Any]]) -> tuple[dict[str, int], str] | None:
    """Samples per category summed over runs, and where the counts came from; None when nothing says.

    From results.jsonl's `category` when every sample carries one, else from metrics.json's
    `cat_<category>` counts (a run whose results were not kept).
    """
    out = dict.fromkeys(CATEGORIES, 0)
    sources = set()
    for bench, m in zip(benches, metrics):
        if bench.samples and all(s.get("category") in CATEGORIES for s in bench.samples):
            for s in bench.samples:
                out[s["category"]] += 1
            sources.add("results.jsonl")
        elif any(m.get(f"cat_{c}") is not None for c in CATEGORIES):
            for c in CATEGORIES:
                out[c] += int(m.get(f"cat_{c}") or 0)
            sources.add("metrics.json")
        else:
            return None
    if not sources:
        return None
    return out, " + ".join(sorted(sources))


def sample_bleu(bench: Benchmark) -> np.ndarray | None:
    """Sentence BLEU of each sample's completion vs the task's canonical solution (None without `bleu_stats`)."""
    from codetune.evaluation.uncertainty import sentence_bleu_from_stats

    rows = [s.get("bleu_stats") for s in bench.samples]
    if not rows or any(not isinstance(r, list) or len(r) != 10 for r in rows):
        return None
    return np.array([sentence_bleu_from_stats(np.array(r, dtype=float)) for r in rows])


def bleu_vs_pass(benches: Sequence[Benchmark], alpha: float = 0.05) -> dict[str, Any]:
    """Per benchmark sample, sentence BLEU against pass/fail, pooled over `benches` (one configuration).

    Returns:
        dict with `status`: "ok" (with `r`, `p_value`, `n`, `n_tasks`, `pass_bleu`, `fail_bleu`, `n_pass`,
        `n_fail`, `per_task_samples`, `significant`), "no_bleu" (results carry no `bleu_stats`),
        "not_measured" or "constant" (every sample passed, or failed, or has one BLEU).
    """
    from scipy import stats as sps

    measured = [b for b in benches if b.measured and b.samples]
    if not measured:
        return {"status": "not_measured"}
    xs, ys = [], []
    for b in measured:
        bleu = sample_bleu(b)
        if bleu is None:
            return {"status": "no_bleu"}
        xs += list(bleu)
        ys += [float(s.get("status") == "passed") for s in b.samples]
    x, y = np.array(xs), np.array(ys)
    out: dict[str, Any] = {
        "n": len(x),
        "n_tasks": len({s.get("task_id") for b in measured for s in b.samples}),
        "per_task_samples": max(b.samples_per_task for b in measured),
        "n_pass": int(y.sum()),
        "n_fail": int(len(y) - y.sum()),
        "pass_bleu": float(x[y == 1].mean()) if y.any() else math.nan,
        "fail_bleu": float(x[y == 0].mean()) if (y == 0).any() else math.nan,
    }
    if len(set(ys)) < 2 or len(set(xs)) < 2 or len(x) < 3:
        return out | {"status": "constant"}
    res = sps.pearsonr(x, y)  # Pearson with a 0/1 variable is the point-biserial correlation
    p = float(res.pvalue)
    return out | {"status": "ok", "r": float(res.statistic), "p_value": p, "significant": p < alpha}


def plus_summary(benches: Sequence[Benchmark], metrics: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """HumanEval+ (or other extra tests) for one configuration: plus pass@1 and the samples that pass the
    base tests only.

    `pass@1_plus` (with its CI) from metrics.json where the run wrote it, else from results.jsonl (a
    sample passes plus when it passes the base tests and the extra ones). None without HumanEval+ data.
    """
    have = [
        (b, m)
        for b, m in zip(benches, metrics)
        if any("plus_status" in s for s in b.samples) or m.get("pass@1_plus") is not None
    ]
    if not have:
        return None
    vals, lows, highs, only_base, base_passed = [], [], [], 0, 0
    for b, m in have:
        plus_samples = [s for s in b.samples if "plus_status" in s]
        passed = sum(s.get("status") == "passed" for s in plus_samples)
        base_passed += passed if plus_samples else int(m.get("exec_passed") or 0)
        if m.get("pass@1_plus") is not None:
            vals.append(float(m["pass@1_plus"]))
            if m.get("pass@1_plus_ci_low") is not None:
                lows.append(float(m["pass@1_plus_ci_low"]))
                highs.append(float(m["pass@1_plus_ci_high"]))
        else:
            vals.append(_plus_rate(plus_samples))
        if plus_samples:
            only_base += sum(
                s.get("status") == "passed" and s.get("plus_status") != "passed" for s in plus_samples
            )
        else:
            only_base += int(m.get("benchmark_base_pass_plus_fail") or 0)
    ci = (min(lows), max(highs)) if len(lows) == len(have) == 1 else None
    kinds = sorted({str(m.get("benchmark_extra_tests") or "HumanEval+") for _, m in have})
    return {
        "value": sum(vals) / len(vals),
        "ci": ci,
        "base_pass_plus_fail": only_base,
        "base_passed": base_passed,  # samples passing the base tests (the share's denominator)
        "kinds": kinds,  # what the extra tests are: "HumanEval+", "generated tests (N per task, seed S)"
        "n_runs": len(have),
    }


def _plus_rate(samples: list[dict]) -> float:
    """Mean over tasks of the share of samples passing base and plus tests (percent)."""
    per: dict[str, list[int]] = {}
    for s in samples:
        nc = per.setdefault(str(s.get("task_id")), [0, 0])
        nc[0] += 1
        nc[1] += s.get("status") == "passed" and s.get("plus_status") == "passed"
    return 100.0 * sum(c / n for n, c in per.values()) / len(per) if per else math.nan
