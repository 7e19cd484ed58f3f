"""Ray's overhead per cell: one 4-cell grid run with `--executor local` and with `--executor ray`, alternating.

Issue #20, "Measured". The grid is small on purpose (the bundled model, 4 training examples, one optimizer
step, 2 test items, one benchmark task, 8 new tokens), so a cell's own work is short and what Ray adds (a
Ray instance started for the grid, a worker process per task, the model loaded in each task where the local
executor keeps it loaded between cells) shows. Every run writes a fresh directory, so every cell runs.

Variants, run in the order L R1 R2 R2 R1 L (drift averages out):
* L   `--executor local`, torch on every core, cells one after another;
* R1  `--executor ray` with ray.num_cpus = every core: one cell at a time (the overhead alone);
* R2  `--executor ray` with ray.num_cpus=1 threads=1: as many cells at once as cores ("2 workers" here).

Printed: each variant's wall times and mean, and the overhead per cell, (mean R1 - mean L) / cells.

    .venv/bin/python benchmarks/ray_bench.py --out /tmp/ray_bench    # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTION = "ray_bench"
GRID = """
name: raybench
label: "Rank {lora.r}"
baseline: false
base:
  data: {language: python, train_size: 4, test_size: 2}
  train: {epochs: 1, batch_size: 4, checkpoint_every: 0}
  generate: {max_new_tokens: 8}
  eval: {benchmark: humaneval, benchmark_limit: 1, benchmark_max_new_tokens: 8, n_boot: 100}
grid:
  lora.r: [2, 4, 8, 16]
"""
CELLS = 4


def variant_args(name: str, cores: int) -> list[str]:
    if name == "L":
        return ["--executor", "local"]
    if name == "R1":
        return ["--executor", "ray", f"ray.num_cpus={cores}"]
    return ["--executor", "ray", "ray.num_cpus=1", "threads=1"]


def run_once(exp: Path, out: Path, args: list[str]) -> float:
    """Wall seconds of one `codetune run` in a fresh process (model conversion cached beforehand)."""
    cmd = [str(HERE.parent / ".venv" / "bin" / "codetune"), "run", str(exp), "--out", str(out), "--no-progress"]
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, env={**os.environ})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd + args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="keep the runs here (default: a temporary directory)")
    p.add_argument("--order", default="L,R1,R2,R2,R1,L", help="variants in the order run")
    p.add_argument("--no-results-md", action="store_true")
    args = p.parse_args(argv)
    root = Path(args.out or tempfile.mkdtemp(prefix="ray_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    exp = root / "raybench.yaml"
    exp.write_text(GRID)
    cores = os.cpu_count() or 1
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    log("[ray_bench] warm-up: one local run (converts the bundled model into the cache if needed)")
    run_once(exp, root / "warmup", ["--executor", "local"])
    walls: dict[str, list[float]] = {}
    for i, name in enumerate(args.order.split(",")):
        wall = run_once(exp, root / f"{i}-{name}", variant_args(name, cores))
        walls.setdefault(name, []).append(wall)
        log(f"[ray_bench] {name}: {wall:.1f}s")
    mean = {n: sum(w) / len(w) for n, w in walls.items()}
    lines = [
        f"grid: {CELLS} cells of the bundled model (4 examples, 1 step, 2 test items, 1 benchmark task); "
        f"{cores} cores; order {args.order}",
        "L = --executor local; R1 = ray, one cell at a time (ray.num_cpus=all cores); "
        "R2 = ray, ray.num_cpus=1 threads=1 (cells side by side)",
    ]
    for n, w in walls.items():
        lines.append(f"{n:3} wall s: {', '.join(f'{x:.1f}' for x in w)}  mean {mean[n]:.1f}")
    if "L" in mean and "R1" in mean:
        lines.append(
            f"Ray's overhead per cell, (R1 - L) / {CELLS}: {(mean['R1'] - mean['L']) / CELLS:+.1f}s "
            "(Ray start for the grid, a worker process and a model load per task)"
        )
    if "L" in mean and "R2" in mean:
        lines.append(f"ray with cells side by side vs local: {mean['R2'] / mean['L']:.2f}x the wall time")
    print("\n".join(lines))
    if not args.no_results_md:
        sys.path.insert(0, str(HERE))
        import results_md

        results_md.record_printed(SECTION, "benchmarks/ray_bench.py", lines, list(argv or sys.argv[1:]), None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
