"""`--dry-run`: the runs an experiment would do, with ids and a rough cost estimate."""

from __future__ import annotations

from pathlib import Path

from codetune.config import ExperimentConfig, expand_grid

# Rough planning figures for the bundled 135M model on a 2-core AVX-512 CPU (bf16), seen in `make run`
# and the rank preset (2026-11-26: ~300 train tok/s; ~40 generated tok/s in batches); other models
# scale roughly with parameter count. Estimates, not promises.
TRAIN_TOKENS_PER_S = 300.0
GEN_TOKENS_PER_S = 40.0
MEAN_TOKENS_PER_SAMPLE = 120.0


def describe_plan(exp: ExperimentConfig, out_root: Path) -> str:
    specs = expand_grid(exp)
    lines = [f"experiment '{exp.name}': {len(specs)} runs -> {Path(out_root) / exp.name}"]
    total = 0.0
    for s in specs:
        c = s.config
        train_tok = c.data.train_size * MEAN_TOKENS_PER_SAMPLE * c.train.epochs
        gen_tok = c.data.test_size * c.generate.n_samples * c.generate.max_new_tokens * 0.6
        est = train_tok / TRAIN_TOKENS_PER_S + gen_tok / GEN_TOKENS_PER_S
        total += est
        done = (Path(out_root) / exp.name / s.dirname / "metrics.json").is_file()
        lines.append(
            f"  {s.run_id}  {s.label:<24} train {c.data.train_size} x {c.train.epochs:g} ep, test {c.data.test_size}"
            f"  ~{train_tok / 1000:.0f}k train tokens, ~{est / 60:.1f} min{'  [done]' if done else ''}"
        )
    lines.append(f"estimated total: ~{total / 60:.1f} min on a 2-core CPU with the 135M default model")
    return "\n".join(lines)
