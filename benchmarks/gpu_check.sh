#!/usr/bin/env bash
# One call on a machine with a CUDA GPU: the `quick` preset on CUDA (the base model and LoRA ranks 4 and 16,
# each executed on 48 HumanEval tasks), then per run: device, precision, forward, train tokens/s, generation
# tokens/s and pass@1. Also runs the CUDA tests (tests/unit/training/test_cuda.py). Meant to take well under
# 5 minutes on one recent GPU; the whole check is capped at that.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]      (codetune installed with a CUDA build of torch)
#
# Exits non-zero when no CUDA device is visible, a CUDA test fails or the run does not finish in time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${1:-$(mktemp -d -t codetune-gpu-XXXXXX)}
LIMIT_S=${GPU_CHECK_LIMIT_S:-300}
start=$(date +%s)

"$PY" - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"no CUDA device visible to torch {torch.__version__} (a CPU build?); nothing to check")
p = torch.cuda.get_device_properties(0)
print(f"gpu: {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}; torch {torch.__version__}")
EOF

echo "== CUDA tests"
timeout "$LIMIT_S" "$PY" -m pytest -q -p no:cacheprovider tests/unit/training/test_cuda.py

echo "== codetune run quick device=cuda (out: $OUT)"
left=$(( LIMIT_S - ($(date +%s) - start) ))
timeout "$left" "$PY" -c 'import sys; from codetune.cli import main; sys.exit(main(sys.argv[1:]))' \
    run quick device=cuda --out "$OUT" --no-progress 2>&1 | grep -v "^\s*$" | tail -n 40

"$PY" - "$OUT/quick/results.csv" <<'EOF'
import csv
import sys

def num(row, key):
    try:
        return float(row.get(key) or "nan")
    except ValueError:
        return float("nan")

with open(sys.argv[1]) as f:
    rows = list(csv.DictReader(f))
print(f"{'run':<14} {'device':<22} {'prec':<5} {'forward':<8} {'train tok/s':>11} {'gen tok/s':>9} {'pass@1 %':>8}")
for r in rows:
    gen_tok_s = num(r, "benchmark_new_tokens") / num(r, "benchmark_gen_time_s")
    train = "-" if r["baseline"] == "True" else f"{num(r, 'train_tokens_per_s'):.0f}"
    print(
        f"{r['Configuration']:<14} {r.get('device_name') or r['device']:<22} {r['precision']:<5} "
        f"{r.get('train_forward') or '-':<8} {train:>11} {gen_tok_s:>9.0f} {num(r, 'pass@1'):>8.1f}"
    )
EOF
echo "gpu_check: $(( $(date +%s) - start )) s"
