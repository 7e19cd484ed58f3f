"""Fabricated experiment directories for report tests: real scoring of hand-written completions, no model.

`make_experiment` scores chosen completions with `codetune.evaluation.scoring.score_run` (so metrics.json
and generations.jsonl are exactly what a real run writes), writes each run's config.yaml and, given a
grid, the experiment's experiment.yaml as the runner does, and results.csv with `write_results`.
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


def make_run(
    exp_dir: Path,
    label: str,
    kinds: list[str],
    overrides: dict,
    exec_statuses: list[str] | None = None,
    n_boot: int = 200,
    ci_level: float = 0.95,
) -> SimpleNamespace:
    """One finished run whose item i gets completion KINDS[kinds[i]]; returns a spec-like object."""
    cfg = RunConfig.model_validate({"eval": {"n_boot": n_boot, "ci_level": ci_level}, **overrides})
    items = test_set(len(kinds), cfg.data.language)
    spec = RunSpec(run_id=cfg.run_id(), label=label, axes={}, config=cfg)
    run_dir = Path(exp_dir) / spec.dirname
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(dump_yaml(cfg), encoding="utf-8")
    gens = []
    for i, k in enumerate(kinds):
        body = KINDS[k].replace("x * a", f"x * a + {i}") if k == "good" else KINDS[k]
        g = {"index": i, "sample": 0, "completion": body, "stop": "function_end", "n_new_tokens": 9}
        if exec_statuses is not None:
            g["exec_status"] = exec_statuses[i]
        gens.append(g)
    tres = SimpleNamespace(
        train_time_s=1.5, tokens_per_s=100.0, steps=4, losses=[2.0, 1.5, 1.2, 1.1], forward="fused", workers=2
    )
    from codetune.evaluation.scoring import score_run

    metrics = score_run(cfg, spec, items, gens, tres, run_dir)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    return SimpleNamespace(dirname=spec.dirname)


def make_experiment(
    exp_dir: Path,
    runs: list[tuple[str, list[str], dict]],
    exec_statuses=None,
    grid: dict | None = None,
    **run_kw,
) -> Path:
    """runs: (label, per-item kinds, config overrides) per run; writes results.csv, and experiment.yaml
    when a grid (dotted key -> values) is given. run_kw (n_boot, ci_level) goes to every `make_run`."""
    from codetune.reporting.results import write_results

    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    if grid is not None:
        exp = ExperimentConfig(name=exp_dir.name, grid=grid)
        (exp_dir / "experiment.yaml").write_text(dump_yaml(exp), encoding="utf-8")
    specs = [make_run(exp_dir, label, kinds, ov, exec_statuses, **run_kw) for label, kinds, ov in runs]
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
            runs.append((f"Rank {r}", kinds, {"lora": {"r": r}, "seed": seed}))
    grid = {"lora.r": [4, 16, 64], "seed": list(seeds)}
    if not with_exec:
        return make_experiment(exp_dir, runs, grid=grid, **run_kw)
    statuses = {"good": "passed", "close": "failed", "stub": "failed", "broken": "compile_error"}
    exp_dir = make_experiment(exp_dir, [], grid=grid)
    from codetune.reporting.results import write_results

    specs = [make_run(exp_dir, lab, k, ov, [statuses[x] for x in k], **run_kw) for lab, k, ov in runs]
    write_results(exp_dir, specs)
    return exp_dir
