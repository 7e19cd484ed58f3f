"""Generated tests: new inputs for each task, grown from its own tests' inputs, judged against the canonical
solution's results (EvalPlus's idea: type-aware mutation of seed inputs; codetune's code).

For every task with a canonical solution:

1. Seeds: the argument lists of the task's own tests (`testcases.to_data`; a HumanEval+ task's
   `base_input` instead). A task whose tests cannot be parsed gets no generated tests (the reason is kept).
2. Candidates: `mutation.candidates` proposes distinct inputs of the same types, about a fifth of them
   larger than any seed (longer lists and strings, bigger numbers, within `mutation.SizeCap`), from one
   random stream per task (`mutation.rng_for(seed, task_id)`).
3. Screening: the canonical solution runs in the sandbox on the base inputs and the candidates, through
   HumanEval+'s runner (`_plus_runner`, inputs in its type-preserving form) wrapped so that an exception
   is recorded instead of ending the run; inputs run smallest first, each under `time_limit_s`. Kept are
   the inputs on which it returns without raising, within the limit, with a result equal to itself (no
   nan) and the same under three hash seeds (`HASH_SEEDS`: a result that depends on the order of a set
   of strings would make the canonical solution fail its own tests). After `MAX_TIMEOUTS` timeouts the
   remaining (larger) inputs of the task are dropped.
4. Choice: `per_task` of the kept candidates, chosen deterministically: first (up to the large share) large
   ones, each giving a result not yet seen, then mutants likewise, then the rest in the order they were
   proposed. Preferring new results spreads the tests over the function's behaviours (a boolean function's
   mutants mostly return one value).

The output is a benchmark file in HumanEval+'s record form (`to_record`, `write_records`) that
`benchmarks.load_tasks` reads as a HumanEval+ file: HumanEval's own `test` still gives the base verdict and
the plus verdict is "passes the extra tests" (`humaneval_plus`), the expected outputs computed there from
the canonical solution. Each record says how it was made (`generator`). The same seed gives the same file
byte for byte, except where an input's canonical run time is near the time limit (machine speed decides).
`attach_extra_tests` puts a file's inputs (generated or HumanEval+) on another load of the same tasks
(`eval.extra_tests`).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from codetune.errors import BenchmarkError, CodetuneError
from codetune.evaluation import datamode, humaneval_plus, judging, mutation, programs, sandbox
from codetune.evaluation.benchmarks import Task, load_tasks
from codetune.evaluation.sandbox import Limits
from codetune.evaluation.testcases import to_data
from codetune.io import iter_jsonl

GENERATOR = "codetune.testgen"
VERSION = 1  # of the screening and choice rules (mutation.VERSION is recorded beside it)
MAX_TIMEOUTS = 5
# PYTHONHASHSEEDs of the screening runs. A result that depends on the order of a set of strings is
# dropped when two runs disagree; a two-item set agrees under three seeds one time in four and then slips
# through (the canonical solution may then fail such an input under another seed: see RESULTS.md).
HASH_SEEDS = ("0", "1", "2")
_GUARD = "__codetune_guarded"


@dataclass(frozen=True)
class Settings:
    """How tests are generated.

    Attributes:
        per_task: generated inputs kept per task (at most).
        seed: the seed of every task's random stream.
        candidates: inputs proposed per task before screening (0: 4 x per_task + 20).
        time_limit_s: seconds the canonical solution may take on one input.
        large_share: share of the kept inputs that are large (growing), at most.
        cap: bounds on the proposed values.
    """

    per_task: int = 50
    seed: int = 0
    candidates: int = 0
    time_limit_s: float = 1.0
    large_share: float = 0.2
    cap: mutation.SizeCap = field(default_factory=mutation.SizeCap)

    @property
    def n_candidates(self) -> int:
        return self.candidates or 4 * self.per_task + 20


@dataclass
class Generated:
    """One task's generated tests.

    Attributes:
        task: the task.
        base_inputs: the seeds (its own tests' inputs) on which the canonical solution runs cleanly.
        plus_inputs: the chosen generated inputs.
        atol: tolerance for float results (the task's own, else 0).
        skipped: why the task got no generated tests, else None.
        counts: proposed, kept, raised, timeout, unstable (hash-seed dependent or not equal to itself),
            base_dropped.
    """

    task: Task
    base_inputs: list = field(default_factory=list)
    plus_inputs: list = field(default_factory=list)
    atol: float = 0.0
    skipped: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- seeds


def seed_inputs(task: Task) -> tuple[list[list], float] | str:
    """The argument lists of the task's own tests and their float tolerance, or why there are none."""
    if task.language != "python":
        return f"generated tests for {task.language} come from testgen_x"
    if not task.canonical_solution.strip():
        return "the task has no canonical solution"
    if task.plus is not None:
        seeds, atol = [list(a) for a in task.plus.base_inputs], task.plus.atol
    else:
        tests = to_data(task)
        if isinstance(tests, str):
            return f"its tests cannot be parsed into calls: {tests}"
        seeds = [list(c.call) for c in tests.checks]
        tols = [c.tol for c in tests.checks if c.rule in ("abs_lt", "abs_le")]
        tols += [v for c in tests.checks for k, v in c.isclose if k == "abs_tol"]
        atol = max(tols, default=0.0)
    unique = list({mutation.input_key(s): s for s in seeds}.values())
    if not unique:
        return "its tests call the function under test nowhere"
    return unique, atol


# ------------------------------------------------------------------------------------------- screening


def _guarded(task: Task) -> str:
    """The canonical program with a wrapper that returns (True, result) or (False, exception name)."""
    return (
        f"{task.prompt}{task.canonical_solution}\n\n\n"
        f"def {_GUARD}(*args):\n"
        f"    try:\n"
        f"        return (True, {task.entry_point}(*args))\n"
        f"    except Exception as exc:  # noqa\n"
        f"        return (False, type(exc).__name__)\n"
    )


@dataclass
class _Outcome:
    status: str  # ok, raised, timeout, unstable
    digest: str = ""


def _run_once(
    code: str, inputs: list, limits: Limits, time_limit_s: float, hash_seed: str
) -> tuple[list[dict], bool]:
    """Records of one guarded run over `inputs` (fewer when it stopped early), and whether it got through
    them all (the run ended cleanly, or wrote a record for every input)."""
    per_input = [time_limit_s] * len(inputs)
    wall = min(limits.wall_s + sum(per_input), datamode.CANONICAL_WALL_S * 5)
    run_limits = replace(limits, wall_s=wall, cpu_s=wall)
    encoded = [judging.encode(list(a)) for a in inputs]
    prog, nonce = datamode.python_program(
        _GUARD, code, encoded, run_limits, per_input_s=per_input, typed_inputs=True, hash_seed=hash_seed
    )
    step, res, _ = programs.execute(prog)
    recs = judging.records(res.files.get(datamode.OUTPUTS, b""))
    if None in recs:  # a torn line: what follows it is not trusted
        recs = recs[: recs.index(None)]
    status, _ = programs.classify(prog, step, res, nonce)
    return recs[: len(inputs)], status == "passed" or len(recs) >= len(inputs)


def _outcome(rec: dict, task: Task, args: list, atol: float) -> _Outcome:
    v = rec.get("v")
    if isinstance(v, dict) and isinstance(v.get("t"), list) and len(v["t"]) == 2 and v["t"][0] is False:
        return _Outcome("raised")
    if isinstance(v, dict) and isinstance(v.get("t"), list) and len(v["t"]) == 2:
        inner = {"h": rec["h"], "v": v["t"][1]}
        if not humaneval_plus.outputs_match(inner, inner, atol, task.entry_point, args):
            return _Outcome("unstable")  # nan, or a find_zero root the oracle refuses
    return _Outcome("ok", rec["h"])


def _screen_seed(task: Task, inputs: list, limits: Limits, settings: Settings, seed: str, atol: float) -> list:
    """One outcome per input (in the given order) under one hash seed."""
    code = _guarded(task)
    out: list[_Outcome | None] = [None] * len(inputs)
    start, timeouts = 0, 0
    while start < len(inputs):
        todo = list(range(start, len(inputs)))
        recs, complete = _run_once(code, [inputs[i] for i in todo], limits, settings.time_limit_s, seed)
        for i, rec in zip(todo, recs):
            out[i] = _outcome(rec, task, inputs[i], atol)
        if complete:
            break
        stopped = todo[len(recs)]  # the input it was on when the run ended
        out[stopped] = _Outcome("timeout")
        timeouts += 1
        start = stopped + 1
        if timeouts >= MAX_TIMEOUTS:
            for i in range(start, len(inputs)):
                out[i] = _Outcome("timeout")
            break
    return out  # type: ignore[return-value]


def screen(task: Task, inputs: list, limits: Limits, settings: Settings, atol: float) -> list[_Outcome]:
    """Outcomes of the canonical solution on `inputs` (in order): ok (with its result's digest), raised,
    timeout, or unstable. Runs them smallest first (`mutation.size`), under each of `HASH_SEEDS`."""
    order = sorted(range(len(inputs)), key=lambda i: mutation.size(inputs[i]))
    first = _screen_seed(task, [inputs[i] for i in order], limits, settings, HASH_SEEDS[0], atol)
    for seed in HASH_SEEDS[1:]:
        ok = [j for j, o in enumerate(first) if o.status == "ok"]
        again = _screen_seed(task, [inputs[order[j]] for j in ok], limits, settings, seed, atol)
        for j, o in zip(ok, again):
            if o.status != "ok":
                first[j] = o
            elif o.digest != first[j].digest:
                first[j] = _Outcome("unstable")
    out: list[_Outcome] = [_Outcome("timeout")] * len(inputs)
    for j, i in enumerate(order):
        out[i] = first[j]
    return out


# ---------------------------------------------------------------------------------------------- choice


def choose(cands: Sequence[mutation.Candidate], outcomes: Sequence[_Outcome], settings: Settings) -> list[list]:
    """`per_task` kept candidates, in the order they were proposed, picked in passes: large ones with a
    result not seen yet (up to the large share), mutants likewise, any mutant, large ones up to the share,
    then anything kept."""
    kept = [i for i, o in enumerate(outcomes) if o.status == "ok"]
    n, quota = settings.per_task, round(settings.per_task * settings.large_share)
    chosen: list[int] = []
    seen: set[str] = set()

    def n_large() -> int:
        return sum(cands[j].kind == "large" for j in chosen)

    passes = (
        lambda i: cands[i].kind == "large" and outcomes[i].digest not in seen and n_large() < quota,
        lambda i: cands[i].kind == "mutant" and outcomes[i].digest not in seen,
        lambda i: cands[i].kind == "mutant",
        lambda i: n_large() < quota,
        lambda i: True,
    )
    for wanted in passes:
        for i in kept:
            if len(chosen) >= n:
                break
            if i not in chosen and wanted(i):
                chosen.append(i)
                seen.add(outcomes[i].digest)
    return [cands[i].args for i in sorted(chosen)]


def generate_task(task: Task, settings: Settings, limits: Limits | None = None) -> Generated:
    """One task's generated tests (skipped, with the reason, when its tests give no seeds)."""
    got = seed_inputs(task)
    if isinstance(got, str):
        return Generated(task, skipped=got)
    seeds, atol = got
    limits = limits or Limits()
    rng = mutation.rng_for(settings.seed, task.task_id)
    cands = mutation.candidates(
        seeds, rng=rng, count=settings.n_candidates, cap=settings.cap, large_share=settings.large_share
    )
    outcomes = screen(task, seeds + [c.args for c in cands], limits, settings, atol)
    base_out, cand_out = outcomes[: len(seeds)], outcomes[len(seeds) :]
    base = [s for s, o in zip(seeds, base_out) if o.status == "ok"]
    counts = {"proposed": len(cands), "base_dropped": len(seeds) - len(base)}
    for status in ("ok", "raised", "timeout", "unstable"):
        counts[status] = sum(o.status == status for o in cand_out)
    plus = choose(cands, cand_out, settings)
    counts["kept"] = len(plus)
    skipped = None if plus else "no generated input passed screening (the canonical solution raised or timed out)"
    return Generated(task, base, plus, atol, skipped, counts)


def augment(
    tasks: Sequence[Task],
    settings: Settings,
    *,
    limits: Limits | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> list[Generated]:
    """Every task's generated tests, in the tasks' order (tasks run in parallel, each on its own stream)."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="generated tests", unit="task", file=sys.stderr)

    def one(task: Task) -> Generated:
        g = generate_task(task, settings, limits)
        if bar is not None:
            bar.update(1)
        return g

    if programs.toolchain("python") is None:
        raise BenchmarkError(
            "generating tests needs a Python the sandbox can run", "see `codetune evaluate --help`"
        )
    sandbox.isolation()  # probe once, before the threads start
    try:
        with ThreadPoolExecutor(max_workers=workers or max(1, os.cpu_count() or 1)) as pool:
            return list(pool.map(one, tasks))
    finally:
        if bar is not None:
            bar.close()


# ---------------------------------------------------------------------------------------------- records


def to_record(gen: Generated, settings: Settings, source: str) -> dict[str, Any]:
    """The HumanEval+-form record of one task (inputs in the runner's typed form)."""
    t = gen.task
    return {
        "task_id": t.task_id,
        "prompt": t.prompt,
        "entry_point": t.entry_point,
        "canonical_solution": t.canonical_solution,
        "test": t.test,
        "base_input": [judging.encode(list(a)) for a in gen.base_inputs],
        "plus_input": [judging.encode(list(a)) for a in gen.plus_inputs],
        "atol": gen.atol,
        "input_form": "typed",
        "generator": {
            "name": GENERATOR,
            "version": VERSION,
            "mutation_version": mutation.VERSION,
            "seed": settings.seed,
            "per_task": settings.per_task,
            "source": source,
            "skipped": gen.skipped,
        },
    }


def write_records(path: Path | str, records: Sequence[dict]) -> Path:
    """Write records as JSONL (gzipped for a .gz name, with mtime 0 so equal records give equal bytes),
    atomically. Raises BenchmarkError when the file cannot be written."""
    path = Path(path)
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records).encode("utf-8")
    if path.suffix == ".gz":
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as f:
            f.write(text)
        text = buf.getvalue()
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(text)
        tmp.replace(path)
    except OSError as exc:
        raise BenchmarkError(
            f"cannot write {path}: {exc.strerror or exc}", "pass --out a writable path (.jsonl or .jsonl.gz)"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------------------- extra tests


def describe(path: Path | str) -> str:
    """What a file of extra tests is: "generated tests (N per task, seed S)" or "HumanEval+"."""
    try:
        first = next(iter_jsonl(Path(path), what="extra tests file"), {})
    except CodetuneError as exc:
        raise BenchmarkError(exc.message, exc.hint) from None
    g = first.get("generator")  # every row of a generated file has one; the first says how it was made
    if not isinstance(g, dict):
        return "HumanEval+"
    return f"generated tests ({g.get('per_task')} per task, seed {g.get('seed')})"


def attach_extra_tests(tasks: Sequence[Task], path: Path | str) -> tuple[list[Task], str]:
    """`tasks` with their extra tests (`Task.plus`) from a HumanEval+-form file, and the file's kind.

    Raises:
        BenchmarkError: the file is not of HumanEval+'s form, lacks one of `tasks`, or its prompt for a
            task differs from the benchmark's (the inputs were made for another task).
    """
    src = Path(path).expanduser()
    if not src.is_file():
        raise BenchmarkError(
            f"`eval.extra_tests`: file not found: {path}",
            "make one with: codetune tests augment --benchmark humaneval --out FILE, or pass HumanEvalPlus.jsonl.gz",
        )
    extra = {t.task_id: t for t in load_tasks(str(src))}
    if not any(t.plus is not None for t in extra.values()):
        raise BenchmarkError(
            f"`eval.extra_tests`: {path} has no extra tests (records need base_input and plus_input)",
            "pass a file written by `codetune tests augment`, or EvalPlus's HumanEvalPlus.jsonl.gz",
        )
    out = []
    for t in tasks:
        other = extra.get(t.task_id)
        if other is None or other.plus is None:
            raise BenchmarkError(
                f"`eval.extra_tests`: {path} has no extra tests for task '{t.task_id}'",
                "generate them for the same benchmark: codetune tests augment --benchmark ... --out FILE",
            )
        if other.prompt != t.prompt:
            raise BenchmarkError(
                f"`eval.extra_tests`: the prompt of '{t.task_id}' in {path} differs from the benchmark's",
                "the file was made from another benchmark: regenerate it from this one",
            )
        out.append(replace(t, plus=other.plus))
    return out, describe(src)
