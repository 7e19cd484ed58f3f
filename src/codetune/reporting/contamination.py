"""The report's contamination section: what each run's training set shares with the benchmark and the test split.

Every trained run's data stage writes contamination.json (`codetune.data.contamination`): long n-grams of
normalised tokens (a benchmark prompt, a canonical solution, a test item found inside a training item) and
MinHash near-duplicates of whole functions. The section gives the counts per run, then the flagged items,
each once with the configurations whose training set held it. A run that finished before the check existed
says so; base-model rows train nothing and are left out.
"""

from __future__ import annotations

from pathlib import Path

from codetune.data.contamination import Check, read_check
from codetune.reporting.analysis import Experiment
from codetune.reporting.wording import fmt

MAX_LISTED = 50  # flagged items listed in the report; the rest are in each run's contamination.json


def contamination_section(exp_dir: Path, exp: Experiment) -> list[tuple]:
    """Report blocks for the runs' contamination checks; [] when the experiment has no trained run."""
    runs = [r for r in exp.runs if not r.baseline]
    if not runs:
        return []
    checks = [(r, read_check(Path(exp_dir) / r.dirname)) for r in runs]
    done = [c for _, c in checks if c is not None]
    out: list[tuple] = [("h2", "Contamination check")]
    if not done:
        return out + [("p", "No run recorded a contamination check (the runs predate it): not checked.")]
    out.append(("p", _about(done[0])))
    header = ["run", "Configuration", "benchmark checked", "train items", "flagged vs benchmark (tasks)"]
    header += ["flagged vs test (test items)", "dropped (decontaminate)"]
    rows = []
    for r, c in checks:
        if c is None:
            rows.append([r.dirname, r.label, "not checked (the run predates the check)", "", "", "", ""])
            continue
        s = c.summary()
        bench = f"{c.benchmark} ({c.n_tasks} tasks)" if c.benchmark else f"none: {c.benchmark_note}"
        rows.append(
            [
                r.dirname,
                r.label,
                bench,
                str(c.n_train),
                f"{s['contam_train_flagged_benchmark']} ({s['contam_tasks_flagged']})",
                f"{s['contam_train_flagged_test']} ({s['contam_test_flagged']})",
                str(len(c.dropped)) if c.decontaminate else "off",
            ]
        )
    out.append(("table", header, rows))
    out += _flagged(checks)
    return out


def _about(check: Check) -> str:
    s = check.settings
    return (
        "Each training item (prompt + body) is compared with the benchmark's tasks (prompt, canonical "
        "solution) and with the held-out test items, as normalised tokens: comments and whitespace dropped, "
        "documentation and strings as their words, identifiers a copy would rename canonicalised (a renamed, "
        f"reformatted copy reads the same). ngram: the share of a reference part's {s['n']}-token windows found in "
        f"the training item, flagged from {fmt(s['min_share'])}; minhash: the exact Jaccard similarity of the "
        f"two functions' {s['shingle']}-token shingle sets, flagged from {fmt(s['jaccard'])} (candidates by "
        f"MinHash LSH, {s['num_perm']} permutations). With data.decontaminate=true the flagged training items are "
        "dropped before training (the run trains on fewer items than data.train_size)."
        + (
            f" {check.short_parts} reference part(s) are shorter than {s['n']} tokens and can only be found by "
            "minhash."
            if check.short_parts
            else ""
        )
    )


def _flagged(checks: list) -> list[tuple]:
    """Each flagged (training item, reference, part, method) once, with the configurations that held it."""
    seen: dict[tuple, dict] = {}
    labels: dict[tuple, list[str]] = {}
    dropped: dict[tuple, list[str]] = {}
    for r, c in checks:
        if c is None:
            continue
        for f in c.flags:
            key = (f["train_id"], f["ref_kind"], f["ref_id"], f["part"], f["method"])
            seen.setdefault(key, f)
            for where, held in ((labels, True), (dropped, f["train_id"] in c.dropped)):
                if held and r.label not in where.setdefault(key, []):
                    where[key].append(r.label)
    if not seen:
        return [("p", "No training item was flagged.")]
    ranked = sorted(seen, key=lambda k: (-seen[k]["score"], k))
    header = ["training item", "found in", "part", "method", "score", "shared", "configurations", "dropped in"]
    rows = []
    for key in ranked[:MAX_LISTED]:
        f = seen[key]
        rows.append(
            [
                f"{f['train_name']} ({f['train_source']}:{f['train_line']})",
                f"{f['ref_kind']} {f['ref_id']} ({f['ref_name']})",
                f["part"],
                f["method"],
                f"{f['score']:.2f}",
                str(f["shared"]),
                ", ".join(labels[key]),
                ", ".join(dropped[key]) or "-",
            ]
        )
    out = [("h3", "Flagged training items"), ("table", header, rows)]
    if len(ranked) > MAX_LISTED:
        out.append(("p", f"{len(ranked) - MAX_LISTED} more flags in the runs' contamination.json files."))
    return out
