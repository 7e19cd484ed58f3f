"""Syntax-check throughput per language and level: the batch checker vs one process per snippet.

Snippets are real code and mutated copies (benchmarks/syntax_agreement_lib.py.build_corpus), cycled to
the batch size. "batch" counts everything from opening the checker (helper start-up, JIT warm-up,
canary) to the last result; "steady" times a second pass through the same open checker. "per-snippet"
runs a fresh toolchain process for each of a small sample (python -c ast.parse / py_compile,
javac, node --check, gcc -fsyntax-only), one at a time, as a naive checker would.

C is measured twice: on the whole corpus, and without the snippets that include SIMD intrinsics headers
(`<immintrin.h>` and friends, from numpy's CPU-feature checks): gcc spends far longer parsing those
headers than the rest of a snippet, so a handful of them set the average; generated code does not include
them.

    .venv/bin/python benchmarks/syntax_bench.py [--lang java ...] [--scale 0.5]
"""

from __future__ import annotations

import argparse
import os
import time

from syntax_agreement_lib import build_corpus, reference_check

from codetune.evaluation.syntax import open_checker

# (batch size, per-snippet sample size) per language
SIZES = {"python": (10000, 40), "java": (800, 8), "javascript": (10000, 40), "c": (200, 30), "cpp": (24, 6)}


def _workloads(lang: str, corpus) -> list[tuple[str, list]]:
    if lang != "c":
        return [(lang, corpus)]
    plain = [it for it in corpus if "intrin.h>" not in it.code]
    return [("c (all)", corpus), ("c (no SIMD)", plain)]


def bench(lang: str, level: str, n_batch: int, n_single: int, corpus) -> dict:
    codes = [corpus[i % len(corpus)].code for i in range(n_batch)]
    t0 = time.perf_counter()
    with open_checker(lang, level) as checker:
        first = checker.check_many(codes)
        t1 = time.perf_counter()
        checker.check_many(codes)
        t2 = time.perf_counter()
    assert all(r.status != "unavailable" for r in first), next(r for r in first if r.status == "unavailable")
    sample = corpus[:n_single]
    t3 = time.perf_counter()
    for item in sample:
        # C/C++ parse has no per-process counterpart (tree-sitter is in process): gcc stands in.
        reference_check(lang, level if lang not in ("c", "cpp") else "compile", item)
    t4 = time.perf_counter()
    batch, steady, single = n_batch / (t1 - t0), n_batch / (t2 - t1), n_single / (t4 - t3)
    return {"batch": batch, "steady": steady, "single": single}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lang", nargs="*", default=list(SIZES))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the batch sizes")
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    print(
        f"{'language':<11} {'level':<8} {'n':>6} {'batch/s':>9} {'steady/s':>9} {'per-snippet/s':>14} "
        f"{'ratio':>7} {'steady ratio':>12}"
    )
    for lang in args.lang:
        n_batch, n_single = SIZES[lang]
        n_batch = max(10, int(n_batch * args.scale))
        for name, corpus in _workloads(lang, build_corpus(lang, min(n_batch, 300))):
            for level in ("parse", "compile"):
                r = bench(lang, level, n_batch, n_single, corpus)
                print(
                    f"{name:<11} {level:<8} {n_batch:>6} {r['batch']:>9.1f} {r['steady']:>9.1f} "
                    f"{r['single']:>14.2f} {r['batch'] / r['single']:>6.0f}x {r['steady'] / r['single']:>11.0f}x",
                    flush=True,
                )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
