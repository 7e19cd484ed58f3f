"""Agreement of codetune's batch syntax checkers with the real toolchain run one process per file.

Builds a corpus of real code (Python stdlib, JDK src.zip, npm lodash/async/validator, C examples shipped in
/usr/share/doc, HumanEval-X) plus mutated copies (see benchmarks/syntax_agreement_lib.py), checks it with
the batch checker and with one compiler process per file, and prints agreement per language and level.

    .venv/bin/python benchmarks/syntax_agreement.py                 # ~300 py, 160 java, 200 js, 120 c, 40 cpp
    .venv/bin/python benchmarks/syntax_agreement.py --scale 0.2     # a quick look
    .venv/bin/python benchmarks/syntax_agreement.py --dump corpus/  # also write each corpus as JSONL
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from syntax_agreement_lib import build_corpus, compare, dump_items, levels_for

SIZES = {"python": 300, "java": 160, "javascript": 200, "c": 120, "cpp": 40}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lang", nargs="*", default=list(SIZES))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every corpus size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="reference compiler processes at once")
    ap.add_argument("--dump", type=Path, help="write each language's corpus to DIR/<lang>.jsonl")
    args = ap.parse_args()
    total = agreed = 0
    print(
        f"{'language':<11} {'level':<8} {'n':>4} {'agree':>6} {'%':>6} {'ref valid':>9} {'ref invalid':>11} "
        f"{'same line':>9} {'time_s':>7}"
    )
    for lang in args.lang:
        items = build_corpus(lang, max(4, int(SIZES[lang] * args.scale)), args.seed)
        if args.dump:
            args.dump.mkdir(parents=True, exist_ok=True)
            (args.dump / f"{lang}.jsonl").write_text(dump_items(items))
        muts = {}
        for it in items:
            muts[it.mutation] = muts.get(it.mutation, 0) + 1
        for level in levels_for(lang):
            t0 = time.perf_counter()
            rep = compare(lang, level, items, jobs=args.jobs)
            dt = time.perf_counter() - t0
            total += rep.n
            agreed += rep.agree
            print(
                f"{lang:<11} {level:<8} {rep.n:>4} {rep.agree:>6} {100 * rep.agree / rep.n:>5.1f}% "
                f"{rep.counts.get('valid', 0):>9} {rep.counts.get('invalid', 0):>11} "
                f"{rep.line_agree:>4}/{rep.invalid_both:<4} {dt:>7.1f}"
            )
            for d in rep.disagreements:
                print("    DISAGREE", json.dumps(d)[:400])
            for d in rep.line_mismatches:
                print("    line differs", json.dumps(d)[:300])
        print(f"{'':<11} mutations: {muts}")
    print(f"overall status agreement: {agreed}/{total} = {100 * agreed / max(total, 1):.2f}%")
    return 0 if agreed == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
