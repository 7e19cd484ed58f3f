"""Verdict modes on the real benchmarks: how many tasks data mode covers, and that both modes agree.

    python benchmarks/verdict_modes.py                                  # HumanEval + HumanEval-X Java, JS
    python benchmarks/verdict_modes.py --humaneval-x DIR --langs python,javascript --limit 20

Per language: the tasks whose tests `testcases.to_data` turns into data, and of those the ones whose
canonical solution passes its own data checks (data mode covers them; the rest stay in assert mode, with
the reason listed); then the canonical solutions and a wrong completion per task (a body that returns
None / `return null;` / `return undefined;`) evaluated in data mode (covered tasks), assert mode (all)
and auto (data where covered, else assert: derived from the two, or run itself with --run-auto), with
the seconds each took and tasks/s (canonical + wrong samples of every task, after the expected outputs
were computed; computing them, once per task and then cached, is timed on its own with a fresh cache).
Prints figures; asserts nothing. The report also goes to benchmarks/RESULTS.md (section
`verdict_modes`; `--no-results-md` skips that).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

WRONG = {"python": "    return None\n", "java": "return null;\n}\n}\n", "javascript": "return undefined;\n}\n"}
DEFAULT_HUMANEVAL_X = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "humaneval-x"


def _tasks(language: str, humaneval_x: Path, limit: int | None):
    from codetune.evaluation.benchmarks import load_tasks

    tasks = load_tasks("humaneval") if language == "python" else load_tasks(str(humaneval_x), language)
    return tasks[:limit] if limit else tasks


def _evaluate(tasks, mode: str, workers: int) -> tuple[list, float]:
    from codetune.evaluation.harness import evaluate_samples

    lang = tasks[0].language
    samples = [{"task_id": t.task_id, "completion": c} for t in tasks for c in (t.canonical_solution, WRONG[lang])]
    t0 = time.perf_counter()
    res = evaluate_samples(tasks, samples, workers=workers, timeout_s=20.0, verdict_mode=mode)
    return res, time.perf_counter() - t0


def _figures(res: list, seconds: float | None) -> dict:
    canon, wrong = res[0::2], res[1::2]
    return {
        "n": len(canon),
        "canonical_passed": sum(r.passed for r in canon),
        "wrong_failed": sum(not r.passed for r in wrong),
        "seconds": seconds,
        "tasks_per_s": len(canon) / seconds if seconds else None,
        "modes": dict(Counter(r.verdict_mode for r in res)),
    }


def measure(
    language: str, humaneval_x: Path, limit: int | None, workers: int, run_auto: bool = False
) -> tuple[dict, list[str]]:
    """Figures for one language, and the lines that explain them (uncovered tasks, disagreements)."""
    from codetune.evaluation import datamode
    from codetune.evaluation.testcases import to_data

    tasks = _tasks(language, humaneval_x, limit)
    parsed = sum(not isinstance(to_data(t), str) for t in tasks)
    t0 = time.perf_counter()
    plans = datamode.expected_plans(tasks, workers=workers)
    expected_s = time.perf_counter() - t0
    covered = [t for t in tasks if isinstance(plans[t.task_id], datamode.Plan)]
    notes = [f"  {t.task_id}: assert mode: {plans[t.task_id]}" for t in tasks if t not in covered]
    fig = {"tasks": len(tasks), "parsed": parsed, "covered": len(covered), "expected_s": expected_s}
    fig.update(dict.fromkeys(("data", "assert", "auto")))
    by_mode = {}
    for mode, subset in (("data", covered), ("assert", tasks), ("auto", tasks if run_auto else [])):
        if not subset:
            continue
        res, dt = _evaluate(subset, mode, workers)
        by_mode[mode] = res
        fig[mode] = _figures(res, dt)
        canon, wrong = res[0::2], res[1::2]
        notes += [f"  {r.task_id}: canonical {r.status} in {mode} mode: {r.detail}" for r in canon if not r.passed]
        notes += [f"  {r.task_id}: wrong completion passed in {mode} mode" for r in wrong if r.passed]
    if not run_auto:  # auto's verdicts are data mode's on covered tasks and assert mode's on the others
        data = {(r.task_id, r.index % 2): r for r in by_mode.get("data", [])}
        res = [data.get((r.task_id, r.index % 2), r) for r in by_mode["assert"]]
        fig["auto"] = _figures(res, None)
    return fig, notes


def report(figures: dict[str, dict], notes: dict[str, list[str]], workers: dict[str, int]) -> list[str]:
    lines = [
        f"{'language':<10} {'tasks':>6} {'parsed':>7} {'covered':>8} {'expected outputs':>17}  {'mode':<6} "
        f"{'canonical passed':>17} {'wrong failed':>13} {'seconds':>8} {'tasks/s':>8}"
    ]
    for lang, f in figures.items():
        first = True
        for mode in ("data", "assert", "auto"):
            m = f[mode]
            head = (
                f"{lang:<10} {f['tasks']:>6} {f['parsed']:>7} {f['covered']:>8} {f['expected_s']:>15.1f} s"
                if first
                else " " * 52
            )
            first = False
            if m is None:
                lines.append(f"{head}  {mode:<6}  (no task)")
                continue
            timing = f" {m['seconds']:>8.1f} {m['tasks_per_s']:>8.2f}" if m["seconds"] else f" {'-':>8} {'-':>8}"
            lines.append(
                f"{head}  {mode:<6} {m['canonical_passed']:>13}/{m['n']:<3} {m['wrong_failed']:>9}/{m['n']:<3}{timing}"
            )
    lines += [
        "",
        "parsed: tests testcases.to_data turns into calls; covered: of those, the tasks whose canonical solution",
        "passes its own data checks (data mode applies; auto uses it). canonical passed / wrong failed: of the",
        "tasks the mode ran (data: the covered ones). wrong = a body returning None / `return null;` / `return",
        "undefined;` (a Java compile error counts as failed). auto: data mode's verdicts on covered tasks, assert",
        "mode's on the others (run on its own with --run-auto). expected outputs: computing the canonical",
        "results once (fresh cache; later runs read them). tasks/s: canonical + wrong sample per task, timeout 20 s,",
        f"workers: {', '.join(f'{k} {v}' for k, v in workers.items())}.",
    ]
    for lang, ns in notes.items():
        if ns:
            lines += ["", f"{lang}:", *ns]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--humaneval-x", type=Path, default=DEFAULT_HUMANEVAL_X, help="folder of humaneval_<lang> files"
    )
    ap.add_argument("--langs", default="python,java,javascript")
    ap.add_argument("--limit", type=int, default=None, help="first N tasks of each language")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--java-workers", type=int, default=2, help="javac + JVM take memory: fewer at once")
    ap.add_argument("--run-auto", action="store_true", help="also evaluate auto mode itself (else derived)")
    ap.add_argument("--results-md", type=Path, default=None, help="where to write (default benchmarks/RESULTS.md)")
    ap.add_argument("--no-results-md", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args(argv)
    langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    unknown = sorted(set(langs) - set(WRONG))
    if unknown:
        ap.error(f"--langs: unknown {', '.join(unknown)} (choose from {', '.join(WRONG)})")
    figures, notes, workers = {}, {}, {}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CODETUNE_CACHE"] = cache  # time the expected outputs from scratch, leave the user's alone
        for lang in langs:
            workers[lang] = args.java_workers if lang == "java" else args.workers
            print(f"{lang}: ...", file=sys.stderr, flush=True)
            figures[lang], notes[lang] = measure(lang, args.humaneval_x, args.limit, workers[lang], args.run_auto)
    lines = report(figures, notes, workers)
    print("\n".join(lines))
    if not args.no_results_md:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from results_md import record_printed

        path = record_printed(
            "verdict_modes", "benchmarks/verdict_modes.py", lines, argv or sys.argv[1:], args.results_md
        )
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
