"""Fabricated experiment directories for report tests: real scoring of hand-written completions, no model.

`make_experiment` scores chosen completions with `codetune.evaluation.scoring.score_run` (so metrics.json
and generations.jsonl are exactly what a real run writes), writes each run's config.yaml and, given a
grid, the experiment's experiment.yaml as the runner does, and results.csv with `write_results`.
`write_benchmark` adds a run's benchmark stage (benchmark/results.jsonl and the metrics.json fields the
runner writes, per the issue-17 contract) from chosen per-task outcomes; `make_run(baseline=True)` is a
base-model row.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from codetune.config import ExperimentConfig, RunConfig, RunSpec, dump_yaml
from codetune.data.records import CodeSample

REFERENCE = "    if a > b:\n        return a - b\n    total = 0\n    for x in range(b):\n        total += x * a\n    return total\n"
GOOD = REFERENCE
CLOSE = "    if a > b:\n        return a - b\n    return a * b\n"
STUB = "    pass\n"
BROKEN = "    if a > b:\n        return (a -\n"
KINDS = {"good": GOOD, "close": CLOSE, "stub": STUB, "broken": BROKEN}


def test_set(n_items: int, language: str = "python") -> list[CodeSample]:
    return [
        CodeSample(
            id=f"item{i:03d}",
            language=language,
            prompt=f'def f{i}(a, b):\n    """Combine a and b, case {i}."""\n',
            target=REFERENCE.replace("x * a", f"x * a + {i}"),
            source="fabricated.py",
            line=1 + 10 * i,
            name=f"f{i}",
            complexity={},
        )
        for i in range(n_items)
    ]


# A benchmark task's canonical solution, and what a sample of each outcome completes it with.
CANONICAL = "    return sorted(set(xs))[-k:] if k else []\n"
SAMPLE_OF = {
    "passed": CANONICAL,
    "wrong_answer": "    return sorted(xs)[:k]\n",
    "syntax_error": "    return sorted(set(xs)[-k:\n",
    "compile_error": "    return sorted(set(xs))[-k:] if k else [];;\n",
    "runtime_error": "    return xs.sorted()\n",
    "timeout": "    while True:\n        pass\n",
    "resource_limit": "    return [0] * 10**12\n",
    "unavailable": CANONICAL,
}
STATUS_OF = {
    "passed": "passed",
    "wrong_answer": "failed",
    "syntax_error": "runtime_error",
    "compile_error": "compile_error",
    "runtime_error": "runtime_error",
    "timeout": "timeout",
    "resource_limit": "runtime_error",
    "unavailable": "unavailable",
}
# Per-item kinds of the corpus completions -> the benchmark outcome a run with them gets on task i.
OUTCOME_OF_KIND = {"good": "passed", "close": "wrong_answer", "stub": "wrong_answer", "broken": "syntax_error"}


def write_benchmark(
    run_dir: Path,
    outcomes: list,
    *,
    name: str = "humaneval",
    plus: list | None = None,
    bleu: bool = True,
    categories: bool = True,
    keep_results: bool = True,
) -> dict:
    """Give a finished run a benchmark stage: outcomes[t] is task t's category, or a list (n samples).

    plus[t] (same shape) says whether each sample also passes HumanEval+'s extra tests. Writes
    benchmark/results.jsonl (without `bleu_stats` when not `bleu`, without `category` when not
    `categories`; not at all when not `keep_results`) and updates metrics.json as the runner does.
    """
    from codetune.evaluation.programs import STATUSES
    from codetune.evaluation.uncertainty import bleu_item_stats
    from codetune.stats.bootstrap import bootstrap_ci

    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    per_task = [o if isinstance(o, list) else [o] for o in outcomes]
    plus_task = None if plus is None else [p if isinstance(p, list) else [p] for p in plus]
    results, rates, plus_rates = [], [], []
    for t, cats in enumerate(per_task):
        for j, cat in enumerate(cats):
            r = {
                "index": len(results),
                "task_id": f"HumanEval/{t}",
                "language": "python",
                "status": STATUS_OF[cat],
            }
            r |= {"detail": "", "returncode": 0, "wall_s": 0.01, "stdout": "", "stderr": "", "isolation": {}}
            r |= {"sample": j, "n_new_tokens": 12}
            if categories:
                r["category"] = cat
            if bleu:
                r["bleu_stats"] = [int(x) for x in bleu_item_stats([SAMPLE_OF[cat]], [CANONICAL])[0][0]]
            if plus_task is not None:
                ok = plus_task[t][j]
                r["plus_status"] = "passed" if ok else "failed"
                r["plus_category"] = "passed" if ok else "wrong_answer"
            results.append(r)
        rates.append(100.0 * sum(c == "passed" for c in cats) / len(cats))
        if plus_task is not None:
            both = [c == "passed" and ok for c, ok in zip(cats, plus_task[t])]
            plus_rates.append(100.0 * sum(both) / len(both))
    bench = run_dir / "benchmark"
    bench.mkdir(exist_ok=True)
    if keep_results:
        (bench / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    (bench / "summary.json").write_text(json.dumps({"benchmark": name, "n_tasks": len(per_task)}))
    level = {"n_boot": metrics.get("n_boot", 200), "alpha": 1 - metrics.get("ci_level", 0.95)}
    lo, hi = bootstrap_ci(rates, **level, seed=0)
    metrics |= {
        "benchmark": name,
        "benchmark_tasks": len(per_task),
        "benchmark_samples_per_task": max(len(c) for c in per_task),
        "benchmark_note": None,
        "pass@1": sum(rates) / len(rates),
        "pass@1_ci_low": lo,
        "pass@1_ci_high": hi,
    }
    all_cats = [c for cats in per_task for c in cats]
    metrics |= {f"exec_{s}": sum(STATUS_OF[c] == s for c in all_cats) for s in STATUSES} | {"exec_missing": 0}
    metrics |= {f"cat_{c}": all_cats.count(c) for c in STATUS_OF}
    if plus_task is not None:
        lo, hi = bootstrap_ci(plus_rates, **level, seed=0)
        metrics |= {"pass@1_plus": sum(plus_rates) / len(plus_rates), "pass@1_plus_ci_low": lo}
        metrics |= {"pass@1_plus_ci_high": hi}
        metrics["benchmark_base_pass_plus_fail"] = sum(
            c == "passed" and not ok for cats, oks in zip(per_task, plus_task) for c, ok in zip(cats, oks)
        )
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def write_no_benchmark(run_dir: Path, note: str, name: str | None = None) -> None:
    """The runner's record of a benchmark that could not run: pass@1 null with the reason."""
    path = Path(run_dir) / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics |= {"benchmark": name, "benchmark_note": note, "pass@1": None, "pass@1_ci_low": None}
    metrics |= {"pass@1_ci_high": None, "benchmark_tasks": 0}
    path.write_text(json.dumps(metrics, indent=1))


def make_run(
    exp_dir: Path,
    label: str,
    kinds: list[str],
    overrides: dict,
    bench: list | None = None,
    n_boot: int = 200,
    ci_level: float = 0.95,
    baseline: bool = False,
    cost: dict | None = None,
) -> SimpleNamespace:
    """One finished run whose item i gets completion KINDS[kinds[i]]; returns a spec-like object.

    `bench`: per-task outcomes for `write_benchmark`. `baseline`: a base-model row (no training: zero
    cost). `cost`: metrics.json fields to set (train_time_s, train_tokens, trainable_params, n_train).
    """
    extra = {"baseline": True} if baseline else {}
    cfg = RunConfig.model_validate({"eval": {"n_boot": n_boot, "ci_level": ci_level}, **overrides, **extra})
    items = test_set(len(kinds), cfg.data.language)
    spec = RunSpec(run_id=cfg.run_id(), label=label, axes={}, config=cfg)
    run_dir = Path(exp_dir) / spec.dirname
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(dump_yaml(cfg), encoding="utf-8")
    gens = []
    for i, k in enumerate(kinds):
        body = KINDS[k].replace("x * a", f"x * a + {i}") if k == "good" else KINDS[k]
        gens.append({"index": i, "sample": 0, "completion": body, "stop": "function_end", "n_new_tokens": 9})
    tres = SimpleNamespace(
        train_time_s=0.0 if baseline else 1.5,
        tokens_per_s=0.0 if baseline else 100.0,
        steps=0 if baseline else 4,
        losses=[] if baseline else [2.0, 1.5, 1.2, 1.1],
        forward="none" if baseline else "fused",
        workers=2,
        real_tokens=0,
        trainable_params=0,
    )
    from codetune.evaluation.scoring import score_run

    metrics = score_run(cfg, spec, items, gens, tres, run_dir)
    metrics["baseline"] = baseline
    for key in ("train_tokens", "trainable_params"):  # as a run recorded before they were: `cost` sets them
        metrics.pop(key, None)
    if baseline:
        metrics |= {"train_time_s": 0.0, "trainable_params": 0, "train_size": 0, "n_train": 0, "train_tokens": 0}
    metrics |= cost or {}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    if bench is not None:
        write_benchmark(run_dir, bench)
    return SimpleNamespace(dirname=spec.dirname)


def make_experiment(
    exp_dir: Path,
    runs: list[tuple],
    grid: dict | None = None,
    **run_kw,
) -> Path:
    """runs: (label, per-item kinds, config overrides[, make_run keywords]) per run; writes results.csv, and
    experiment.yaml when a grid (dotted key -> values) is given. run_kw (n_boot, ci_level) goes to every
    `make_run`."""
    from codetune.reporting.results import write_results

    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    if grid is not None:
        exp = ExperimentConfig(name=exp_dir.name, grid=grid)
        (exp_dir / "experiment.yaml").write_text(dump_yaml(exp), encoding="utf-8")
    specs = [
        make_run(exp_dir, run[0], run[1], run[2], **(run_kw | (run[3] if len(run) > 3 else {}))) for run in runs
    ]
    write_results(exp_dir, specs)
    return exp_dir


def rank_experiment(
    exp_dir: Path, n: int = 24, seeds: tuple[int, ...] = (0,), with_exec: bool = False, **run_kw
) -> Path:
    """A rank axis (grid lora.r x seed): r=4 mostly stubs/broken, r=16 mostly good, r=64 like r=16."""
    weak = (["stub"] * 6 + ["broken"] * 4 + ["close"] * 2 + ["good"] * 12)[:n]
    strong = (["good"] * 18 + ["close"] * 4 + ["broken"] * 2)[:n]
    strong2 = (["good"] * 17 + ["close"] * 5 + ["broken"] * 2)[:n]
    runs = []
    for seed in seeds:
        for r, kinds in ((4, weak), (16, strong), (64, strong2)):
            bench = {"bench": [OUTCOME_OF_KIND[k] for k in kinds]} if with_exec else {}
            runs.append((f"Rank {r}", kinds, {"lora": {"r": r}, "seed": seed}, bench))
    grid = {"lora.r": [4, 16, 64], "seed": list(seeds)}
    return make_experiment(exp_dir, runs, grid=grid, **run_kw)


P, W, S = "passed", "wrong_answer", "syntax_error"
# Ten benchmark tasks. Against the base model, Rank 16 passes tasks 2, 3, 4, 5, 7, 8 that it fails
# (b = 6) and fails task 6 that it passes (c = 1): exact McNemar p = 2 * P(X <= 1 | 7, 1/2) = 16/128.
# Rank 4 only loses task 1 (b = 0, c = 1: p = 1).
BASE_TASKS = [P, P, W, W, S, W, P, W, W, W]
R16_TASKS = [P, P, P, P, P, P, W, P, P, W]
R4_TASKS = [P, W, W, W, S, W, P, W, W, W]
# HumanEval+ for Rank 16: of its 8 passing samples, tasks 1 and 3 fail the extra tests (plus pass@1 6/10).
R16_PLUS = [True, False, True, False, True, True, False, True, True, False]


def base_experiment(exp_dir: Path) -> Path:
    """A base row, Rank 4 and Rank 16 (benchmark, costs) and Rank 64 (no benchmark stage) on 8 corpus items."""
    base = make_run(exp_dir, "Base model", ["stub"] * 5 + ["good"] * 3, {}, BASE_TASKS, baseline=True)
    r4 = make_run(
        exp_dir,
        "Rank 4",
        ["stub"] * 4 + ["good"] * 4,
        {"lora": {"r": 4}},
        R4_TASKS,
        cost={"train_time_s": 1.0, "train_tokens": 500, "trainable_params": 4000, "n_train": 50},
    )
    r16 = make_run(
        exp_dir,
        "Rank 16",
        ["good"] * 7 + ["close"],
        {"lora": {"r": 16}},
        cost={"train_time_s": 2.0, "train_tokens": 500, "trainable_params": 16000, "n_train": 100},
    )
    write_benchmark(Path(exp_dir) / r16.dirname, R16_TASKS, plus=R16_PLUS)
    r64 = make_run(exp_dir, "Rank 64", ["good"] * 8, {"lora": {"r": 64}})
    exp = ExperimentConfig(name=Path(exp_dir).name, grid={"lora.r": [4, 16, 64]})
    (Path(exp_dir) / "experiment.yaml").write_text(dump_yaml(exp), encoding="utf-8")
    from codetune.reporting.results import write_results

    write_results(exp_dir, [base, r4, r16, r64])
    return Path(exp_dir)
