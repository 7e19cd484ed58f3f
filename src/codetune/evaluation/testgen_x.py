"""Generated tests for Java and JavaScript (HumanEval-X): new calls of the function under test, grown from
the test's own calls by type-aware mutation, with the canonical solution's results as the expected ones.

1. Seeds: the calls `testcases.to_data` finds in a task's test (Java `s.entry(...)`, JS `entry(...)`, each
   with self-contained literal arguments). Each argument's source is parsed (`xsource.parse_args`) into a tree of
   literals (ints, longs, doubles, floats, strings, booleans), sequences (JS arrays, Java `Arrays.asList`,
   `List.of`, `new ArrayList<>(...)`, `new int[]{...}`) and maps (JS object literals, Java `Map.of`,
   `new HashMap<>(Map.of(...))`). Anything else (`null`, chars, `Optional`, `Math.pow(...)`, arithmetic)
   is kept as its source text: an argument holding such a part is passed on unchanged, never mutated.
2. Mutation: the parsed arguments become plain Python values (int, float, bool, str, list, dict), are
   mutated by the type-aware mutators the Python generator uses (`mutation.candidates`, seeded per task
   by `mutation.rng_for`), and are printed back in the form the seed used at that position
   (`xsource.print_value`): a Java list stays `new ArrayList<>(Arrays.asList(..))` when the test built it
   so (the solution may mutate it), Java numbers keep the literal kind the seeds or the declared parameter
   type give (`2.0` in a `List<Double>`, `5L` for a `long`), ints outside Java's int range (or beyond 2**53
   in JS) and non-finite floats are not printed (the candidate is dropped).
3. Expected results: every candidate call runs in the sandbox on the canonical solution, one program per
   task (`_data_runner.java` / `_data_runner.js` write the results), each call guarded: a call that throws,
   does not compile (Java; found from javac's line numbers), returns something that is not plain data or
   longer than `MAX_RESULT_CHARS`, or takes longer than `CALL_LIMIT_S` is dropped; a call that hangs or
   crashes the process is found from the start/end marks written around each call, dropped, and the calls
   after it run again (at most `MAX_RERUNS` times; a run is bounded by `FILTER_WALL_S`). Generated ints
   stay within +-`INT_BOUND`. The first `per_task` survivors in generation order are kept (their
   canonical seconds within `TASK_BUDGET_S` together), and are checked once more through the path a
   sample's verdict takes (`extra_x.expected_plans`, which also caches the results).

A task whose test cannot be parsed into calls, whose calls have no argument of a parsed form, or whose
canonical solution fails, gets no extra calls (and its row no base calls either, so that its extra verdict
is its base verdict); `augment` returns the reason for each.
"""

from __future__ import annotations

import math
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from codetune.evaluation import datamode, programs, sandbox
from codetune.evaluation.benchmarks import Task
from codetune.evaluation.judging import records
from codetune.evaluation.sandbox import Limits
from codetune.evaluation.testcases import DataTests, to_data
from codetune.evaluation.xsource import (
    Template,
    Unparsed,
    Unprintable,
    has_raw,
    java_param_types,
    merge,
    parse_args,
    print_value,
    split_call,
    to_value,
)

VERSION = 1  # of the generator: recorded in each file row; bump when the same seed gives other calls
LANGUAGES = ("java", "javascript")
CALL_LIMIT_S = 1.0  # a canonical call slower than this is dropped (EvalPlus's minimum time limit)
TASK_BUDGET_S = 2.0  # the kept calls' canonical seconds, all together (a sample gets its harness limits)
MAX_CALL_CHARS = 4000  # longer printed calls are not kept (compile time, readable files)
MAX_RESULT_CHARS = 100_000  # a call whose result is longer (as JSON / toString) is dropped: 50 fit a run's 16 MB
# One filtering run (after javac): a hang costs this much; kept calls take at most TASK_BUDGET_S in all.
FILTER_WALL_S = {"java": 10.0, "javascript": 5.0}
MAX_RERUNS = 8  # runs after a hang or crash before the remaining calls are dropped
POOL_FACTOR = 3  # candidates made per kept call
MARKS = "ct_marks.jsonl"


# ----------------------------------------------------------------------------------------- the seeds


@dataclass
class Seeds:
    """A task's seed calls, parsed.

    Attributes:
        head: what precedes the argument list (`s.entry`, `entry`).
        calls: the test's own calls, as source text.
        args: per call, each argument's plain value, or None where it is kept as source (`frozen`).
        frozen: per call, each argument's source text where it holds a part that is not parsed, else None.
        templates: per argument position, what the seeds say about its form.
        declared: per position, the Java parameter type ("" for JavaScript or when not found).
        atol: the largest `Math.abs(CALL - X) < TOL` tolerance of the test (0 when none).
    """

    head: str
    calls: list[str]
    args: list[list]
    frozen: list[tuple]
    templates: list[Template]
    declared: list[str]
    atol: float


def seeds_of(task: Task, tests: DataTests) -> Seeds | str:
    """The parsed seed calls of a task whose test `to_data` turned into calls, or why there are none."""
    lang = task.language
    parsed = []
    for c in tests.checks:
        try:
            parsed.append(parse_args(c.call, lang))
        except (Unparsed, IndexError, ValueError) as exc:
            return f"a call whose arguments are not parsed ({exc}): {' '.join(c.call.split())[:80]}"
    width = len(parsed[0])
    if width == 0:
        return "the function under test takes no arguments"
    if any(len(p) != width for p in parsed):
        return "the test's calls have different numbers of arguments"
    args, frozen = [], []
    for call in parsed:
        a, f = [], []
        for node, text in call:
            try:
                v = None if has_raw(node) else to_value(node)
            except TypeError:  # an unhashable map key
                v = None
            a.append(v)
            f.append(text if v is None else None)
        args.append(a)
        frozen.append(tuple(f))
    if all(x is not None for row in frozen for x in row):
        return "no argument of the test's calls is of a parsed literal form"
    templates = [merge([p[i][0] for p in parsed]) for i in range(width)]
    declared = java_param_types(task) if lang == "java" else []
    declared = declared if len(declared) == width else [""] * width
    atol = max([c.tol for c in tests.checks if c.rule in ("abs_lt", "abs_le")], default=0.0)
    head = split_call(tests.checks[0].call)[0]
    return Seeds(head, [c.call for c in tests.checks], args, frozen, templates, declared, atol)


def print_call(seeds: Seeds, args: list, frozen: tuple, language: str) -> str | None:
    """The source text of a call with these arguments, or None when one cannot be printed."""
    parts = []
    try:
        for i, a in enumerate(args):
            if frozen[i] is not None:
                parts.append(frozen[i])
            else:
                parts.append(print_value(a, seeds.templates[i], language, seeds.declared[i]))
    except (Unprintable, RecursionError):
        return None
    text = f"{seeds.head}({', '.join(parts)})"
    return text if len(text) <= MAX_CALL_CHARS else None


# ---------------------------------------------------------------------------------------- candidates

MAX_LEN = 200  # items of a container, characters of a string, in a generated argument
MAX_SIZE = 2000  # mutation.size() of a whole generated input
# Generated ints stay within +-10**6: Java ints are fixed-width, and near 2**31 the canonical solution's
# overflow would become the expected result (a sample that sums in long would be "wrong"); and a loop up
# to n = 10**9 hangs the filtering run (JS and Java alike), which costs a rerun.
INT_BOUND = 10**6


def generate(task: Task, seeds: Seeds, *, count: int, seed: int) -> list[str]:
    """Up to `count` new calls (source text), deterministic for (`seed`, task id). Seeds that keep the same
    arguments as source text are mutated together (their kept arguments are passed on unchanged)."""
    from codetune.evaluation import mutation

    rng = mutation.rng_for(seed, task.task_id)
    cap = mutation.SizeCap(max_len=MAX_LEN, max_size=MAX_SIZE, int_min=-INT_BOUND, int_max=INT_BOUND)
    groups: dict[tuple, list[list]] = {}
    for args, frozen in zip(seeds.args, seeds.frozen):
        groups.setdefault(frozen, []).append(args)
    seen = {" ".join(c.split()) for c in seeds.calls}
    out: list[str] = []
    for frozen, group in groups.items():
        if all(f is not None for f in frozen):
            continue  # nothing to mutate

        def accept(args: list, frozen: tuple = frozen) -> bool:
            text = print_call(seeds, args, frozen, task.language)
            return text is not None and text not in seen

        want = math.ceil(count * len(group) / len(seeds.args))
        for cand in mutation.candidates(group, rng=rng, count=want, cap=cap, accept=accept):
            text = print_call(seeds, cand.args, frozen, task.language)
            if text is not None and text not in seen:
                seen.add(text)
                out.append(text)
    return out[:count]


# ------------------------------------------------------------------------- the canonical solution's run


def _java_program(task: Task, calls: list[str]) -> tuple[dict[str, str], int]:
    """Main.java (the canonical solution and one guarded call per line) and the line of call 0. Each call
    is a lambda (its own method): inline, 150 calls with long literal lists pass the JVM's 64 KB per method."""
    code = task.prompt + task.canonical_solution
    head = (
        "\n\npublic class Main {\n    public static void main(String[] args) throws Exception {\n"
        f'        CodetuneData out = new CodetuneData("{datamode.OUTPUTS}");\n'
        f'        java.io.PrintStream marks = new java.io.PrintStream(new java.io.FileOutputStream("{MARKS}"), true, "UTF-8");\n'
        "        Solution s = new Solution();\n"
    )
    lines = [
        f'        marks.println("{{\\"i\\":{i}}}"); try {{ CodetuneData.Call c = () -> {c}; '
        "long t0 = System.nanoTime(); Object v = c.call(); double t = (System.nanoTime() - t0) / 1e9; "
        f'if (String.valueOf(v).length() > {MAX_RESULT_CHARS}) marks.println("{{\\"i\\":{i},\\"big\\":1}}"); '
        f'else {{ out.emit(() -> v); marks.println("{{\\"i\\":{i},\\"t\\":" + t + "}}"); }} }} '
        f'catch (Throwable e) {{ marks.println("{{\\"i\\":{i},\\"e\\":1}}"); }}\n'
        for i, c in enumerate(calls)
    ]
    main = head + "".join(lines) + "    }\n}\n"
    first = (code + head).count("\n") + 1
    files = {"Main.java": code + main, "CodetuneData.java": datamode._source("_data_runner.java")}
    return files, first


def _js_program(task: Task, calls: list[str]) -> str:
    marks = (
        "\n;const __ct_fs = require('fs');\n"
        f"const __ct_fd = __ct_fs.openSync('{MARKS}', 'w');\n"
        "const __ct_run = (i, f) => {\n"
        '  __ct_fs.writeSync(__ct_fd, `{"i":${i}}\\n`);\n'
        "  const t0 = process.hrtime.bigint();\n"
        "  try {\n"
        "    const v = f();\n"
        "    const t = Number(process.hrtime.bigint() - t0) / 1e9;\n"
        "    let n = 0;\n"
        "    try { n = JSON.stringify(v).length; } catch (e) { n = 0; }\n"
        f"    if (n > {MAX_RESULT_CHARS}) {{\n"
        '      __ct_fs.writeSync(__ct_fd, `{"i":${i},"big":1}\\n`);\n'
        "    } else {\n"
        "      __codetune_data.emit(() => v);\n"
        '      __ct_fs.writeSync(__ct_fd, `{"i":${i},"t":${t}}\\n`);\n'
        "    }\n"
        "  } catch (e) {\n"
        '    __ct_fs.writeSync(__ct_fd, `{"i":${i},"e":1}\\n`);\n'
        "  }\n"
        "};\n"
    )
    body = "".join(f"__ct_run({i}, () => ({c}));\n" for i, c in enumerate(calls))
    return f"{datamode._source('_data_runner.js')}\n{task.prompt}{task.canonical_solution}\n{marks}{body}"


@dataclass
class _Run:
    """One filtering run: each call's record or fate."""

    results: dict[int, tuple[dict, float]]  # call -> (record, seconds)
    failed: set[int]  # threw, or did not compile
    big: set[int]  # returned a result larger than MAX_RESULT_CHARS (not written)
    culprit: int | None  # the call in flight when the run hung or crashed
    error: str | None  # the run failed as a whole (nothing learned)


def _run_calls(task: Task, calls: list[str], limits: Limits) -> _Run:
    tools = programs.toolchain(task.language)
    if tools is None:
        return _Run({}, set(), set(), None, f"no toolchain for {task.language} on this machine")
    if task.language == "java":
        files, first = _java_program(task, calls)
        steps = programs.java_steps(
            tools, limits, ["Main.java", "CodetuneData.java"], "Main", None, keep_files=(datamode.OUTPUTS, MARKS)
        )
    else:
        files, first = {"program.js": _js_program(task, calls)}, 0
        argv = programs.node_argv(tools, limits)
        steps = [programs.Step("run", argv, programs.node_limits(limits), keep_files=(datamode.OUTPUTS, MARKS))]
    step, res, _ = programs.execute(programs.Program(files, steps, failed_pattern="\0"))
    if step.kind == "compile":
        if res.returncode == 0 and not res.timed_out:
            return _Run({}, set(), set(), None, "the run did not start")
        lines = {int(n) for n in re.findall(r"Main\.java:(\d+): error", res.stderr)}
        bad = {n - first for n in lines if 0 <= n - first < len(calls)}
        if not bad or len(bad) < len(lines):
            return _Run({}, set(), set(), None, f"the program does not compile: {res.stderr.strip()[:200]}")
        return _Run({}, bad, set(), None, None)
    return _read_marks(res, len(calls))


def _read_marks(res, n: int) -> _Run:
    outputs = records(res.files.get(datamode.OUTPUTS, b""))
    started, done, failed, big = [], [], set(), set()
    for rec in records(res.files.get(MARKS, b"")):
        if not isinstance(rec, dict) or not isinstance(rec.get("i"), int) or not 0 <= rec["i"] < n:
            continue
        if "t" in rec:
            done.append((rec["i"], float(rec["t"])))
        elif "e" in rec:
            failed.add(rec["i"])
        elif "big" in rec:
            big.add(rec["i"])
        else:
            started.append(rec["i"])
    # A run killed between a call's result and its end mark has one result more than end marks.
    if not len(done) <= len(outputs) <= len(done) + 1 or None in outputs:
        return _Run({}, set(), set(), None, f"the run wrote {len(outputs)} results for {len(done)} finished calls")
    results = {i: (rec, t) for (i, t), rec in zip(done, outputs)}
    ended = set(results) | failed | big
    open_ = [i for i in started if i not in ended]
    if len(ended) == n:
        return _Run(results, failed, big, None, None)
    if not open_:
        why = "timed out" if res.timed_out else f"exited with {res.returncode}"
        return _Run(results, failed, big, None, f"the run {why} between calls: {res.stderr.strip()[-200:]}")
    return _Run(results, failed, big, open_[-1], None)


def canonical_results(
    task: Task,
    calls: list[str],
    limits: Limits | None = None,
    *,
    time_limit_s: float = CALL_LIMIT_S,
    enough: int | None = None,
) -> tuple[dict[int, tuple], str]:
    """The canonical solution's (record, seconds) for each call that returned plain data within
    `time_limit_s`, by index into `calls`, and a line saying what was dropped (or why nothing was learned).

    With `enough`, calls still pending after a hang are not rerun once `enough` calls before all of them
    are known (the first ones in order are the ones kept)."""
    wall = FILTER_WALL_S[task.language]
    limits = limits or Limits(wall_s=wall, cpu_s=wall)
    pending, kept = list(range(len(calls))), {}
    dropped = dict.fromkeys(["threw or did not compile", "hung or crashed", "too slow", "not plain data"], 0)
    dropped.update({"result too large": 0, f"not run after {MAX_RERUNS} reruns": 0})
    for _ in range(MAX_RERUNS + 1):
        if not pending:
            break
        run = _run_calls(task, [calls[i] for i in pending], limits)
        if run.error is not None:
            return kept, run.error
        for j, (rec, t) in run.results.items():
            if t > time_limit_s:
                dropped["too slow"] += 1
            elif datamode._has_opaque(rec.get("v")):
                dropped["not plain data"] += 1
            else:
                kept[pending[j]] = (rec, t)
        dropped["threw or did not compile"] += len(run.failed)
        dropped["result too large"] += len(run.big)
        if run.culprit is not None:
            dropped["hung or crashed"] += 1
        done = set(run.results) | run.failed | run.big | ({run.culprit} if run.culprit is not None else set())
        pending = [i for j, i in enumerate(pending) if j not in done]
        if enough is not None and pending and sum(i < pending[0] for i in kept) >= enough:
            pending = []  # not needed
    dropped[f"not run after {MAX_RERUNS} reruns"] += len(pending)
    note = ", ".join(f"{v} {k}" for k, v in dropped.items() if v)
    return kept, note


# ------------------------------------------------------------------------------------------ a file


@dataclass
class Outcome:
    """What `augment_task` made of one task: its seed calls, the kept calls, and why none (or what was
    dropped)."""

    base: list[str]
    plus: list[str]
    atol: float
    skipped: str | None
    note: str = ""
    candidates: int = 0


def augment_task(
    task: Task, *, per_task: int, seed: int, limits: Limits | None = None, time_limit_s: float = CALL_LIMIT_S
) -> Outcome:
    """Up to `per_task` generated calls of one Java/JS task whose canonical results are known."""
    tests = to_data(task)
    if isinstance(tests, str):
        return Outcome([], [], 0.0, f"the test is not parsed into calls: {tests}")
    base = [c.call for c in tests.checks]
    seeds = seeds_of(task, tests)
    if isinstance(seeds, str):
        return Outcome(base, [], 0.0, seeds)
    calls = generate(task, seeds, count=POOL_FACTOR * per_task, seed=seed)
    if not calls:
        return Outcome(base, [], seeds.atol, "mutation made no new call that can be printed")
    kept, note = canonical_results(task, calls, limits, time_limit_s=time_limit_s, enough=per_task)
    chosen, total = [], 0.0
    for i, call in enumerate(calls):
        if i in kept and total + kept[i][1] <= TASK_BUDGET_S:
            chosen.append(call)
            total += kept[i][1]
            if len(chosen) == per_task:
                break
    if not chosen:
        why = f"the canonical solution kept none of {len(calls)} generated calls ({note or 'none ran'})"
        return Outcome(base, [], seeds.atol, why, note, len(calls))
    return Outcome(base, chosen, seeds.atol, None, note, len(calls))


def record(task: Task, out: Outcome, *, seed: int, per_task: int, source: str) -> dict:
    """The file row of one task: HumanEval+'s record form with the calls as source text."""
    from codetune.evaluation import mutation

    return {
        "task_id": task.task_id,
        "prompt": task.prompt,
        "declaration": task.declaration,
        "entry_point": task.entry_point,
        "canonical_solution": task.canonical_solution,
        "test": task.test,
        "base_input": out.base,
        "plus_input": out.plus,
        "atol": out.atol,
        "input_form": "source",
        "generator": {
            "name": "codetune.testgen_x",
            "version": VERSION,
            "mutation_version": mutation.VERSION,
            "seed": seed,
            "per_task": per_task,
            "source": source,
            "skipped": out.skipped,
        },
    }


def augment(
    tasks: list[Task],
    *,
    per_task: int = 50,
    seed: int = 0,
    source: str = "",
    progress: bool = False,
    workers: int | None = None,
    time_limit_s: float = CALL_LIMIT_S,
) -> tuple[list[dict], dict[str, str]]:
    """Generated calls for every Java/JS task: (file rows in task order, {task_id: why it got none}).

    Each task's kept calls are checked once more through a sample's verdict path (`extra_x`), which also
    caches their expected results; a task whose canonical solution fails there gets none.
    """
    from codetune.evaluation import extra_x

    bad = sorted({t.language for t in tasks} - set(LANGUAGES))
    if bad:
        raise ValueError(f"testgen_x makes calls for {', '.join(LANGUAGES)} tasks, not {', '.join(bad)}")
    if per_task < 1:
        raise ValueError("per_task must be at least 1")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="generated tests", unit="task", file=sys.stderr)

    def one(task: Task) -> Outcome:
        out = augment_task(task, per_task=per_task, seed=seed, time_limit_s=time_limit_s)
        if bar is not None:
            bar.update(1)
        return out

    sandbox.isolation()  # probe once, before the threads start
    try:
        with ThreadPoolExecutor(max_workers=workers or max(1, os.cpu_count() or 1)) as pool:
            outcomes = list(pool.map(one, tasks))
    finally:
        if bar is not None:
            bar.close()
    rows = [record(t, o, seed=seed, per_task=per_task, source=source) for t, o in zip(tasks, outcomes)]
    with_calls = [replace(t, plus=extra_x.plus_tests(r)) for t, r in zip(tasks, rows) if r["plus_input"]]
    plans = extra_x.expected_plans(with_calls, workers=workers, progress=progress)
    for r in rows:
        plan = plans.get(r["task_id"])
        if isinstance(plan, str):
            r["plus_input"] = []
            r["generator"]["skipped"] = f"the kept calls fail in the verdict's path: {plan}"
        if not r["plus_input"]:  # no calls at all: the task's extra verdict is then its base verdict
            r["base_input"] = []
    skipped = {r["task_id"]: r["generator"]["skipped"] for r in rows if r["generator"]["skipped"]}
    return rows, skipped
