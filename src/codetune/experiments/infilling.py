"""A model on an infilling benchmark: generate middles (resumable), execute the infilled programs in the
sandbox, summarise pass@1 (with its CI) and exact match.

The items come from `evaluation.infilling` (HumanEval's or HumanEval-X's canonical bodies, a line or a
block masked). Each prompt is the FIM layout PSM (`fim.fim_ids`): the model writes the middle after
`<fim_middle>` and ends it with EOS or a sentinel (`fim.fim_stop_ids`); greedy, no end-of-function rule.
Its files are a `BenchmarkDir` (a run's `infilling/`, or `codetune evaluate --infilling --out DIR`), joined
by samples.jsonl as for left-to-right tasks (`experiments.benchmark`, whose resumable generation and
execution this module reuses): a sample's `task_id` is the item's id and its `completion` the middle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codetune.config import GenerateConfig
from codetune.errors import BenchmarkError, CodetuneError
from codetune.evaluation.infilling import InfillTask, build_infilling, cut_middle, exact_match
from codetune.rundir import BenchmarkDir

Log = Callable[[str], None]
SINGLE_LINE_MAX_NEW_TOKENS = 64  # a line rarely needs more; the cap keeps a rambling model cheap
FIM_TOKENS = ("trained", "added_untrained", "native")
MODE = "psm"


def infilling_items(tasks: list, kind: str, limit: int | None = None) -> list[InfillTask]:
    """The infilling items of the first `limit` tasks (all when None), in task order, then line order.

    Raises:
        BenchmarkError: a task without a canonical solution, or no item at all (e.g. multi_line on bodies
            of one line each).
    """
    chosen = tasks[:limit] if limit else tasks
    items = build_infilling(chosen, kind)
    if not items:
        raise BenchmarkError(
            f"the {len(chosen)} task(s) give no {kind} infilling items (their canonical bodies are too short)",
            "use single_line, or more tasks (a larger limit)",
        )
    return items


def prepare_fim(model: Any, tokenizer: Any, *, trained: bool, native: bool) -> str:
    """Make sure the tokenizer (and model) have the FIM sentinels; return what their rows are (`fim_tokens`).

    Args:
        trained: the model's adapter was trained with FIM (data.fim_rate > 0): its sentinel rows are the
            trained ones (`models.attach_adapter` or training put them there).
        native: the base tokenizer had the sentinels before codetune added any (check `fim.fim_tokens` right
            after loading the base: a FIM run adds them to the tokenizer it trains with).

    Returns "trained", "native", or "added_untrained" (added here, or earlier by codetune, and never
    trained: the base-model baseline's rows, mean-initialised).
    """
    from codetune.fim import add_fim_tokens, fim_tokens

    if fim_tokens(tokenizer) is None:
        if trained:
            raise CodetuneError(
                "the adapter was trained with FIM but its tokenizer has no FIM tokens",
                "load the adapter with codetune.models.attach_adapter (it adds the adapter's sentinels)",
            )
        add_fim_tokens(model, tokenizer)
        return "added_untrained"
    if trained:
        return "trained"
    return "native" if native else "added_untrained"


def _one(values: set, what: str) -> Any:
    if len(values) != 1:
        raise BenchmarkError(f"the infilling items mix {what} ({', '.join(sorted(values))})", "pass one benchmark")
    return next(iter(values))


def generate_middles(
    model: Any,
    tokenizer: Any,
    items: list[InfillTask],
    cfg: GenerateConfig,
    bdir: BenchmarkDir,
    *,
    max_new_tokens: int,
    device: str,
    precision: str,
    seed: int = 0,
    progress: bool = True,
    fim_tokens: str = "added_untrained",
) -> tuple[list[dict], float]:
    """Greedy middles for every item into bdir/samples.jsonl (kept when present; resumes a killed run).

    The tokenizer must have the sentinels (`prepare_fim`). `cfg` gives the batch size and precision
    options; sampling settings are ignored (one greedy middle per item). `max_new_tokens` caps each middle
    (single_line: at most `SINGLE_LINE_MAX_NEW_TOKENS`). Each sample: `task_id` (the item's), `base_task_id`,
    `kind`, `completion` (the middle as infilled: a single-line one cut after its first newline), `raw`
    (all decoded text before the stop token; a single-line middle's decoding ends with the first token that
    holds a newline), `stop` (eos, stop_token, end_token, max_new_tokens), `n_new_tokens`,
    `sample` (0), `fim_tokens`. Returns the samples and the generation seconds (0 when already there).
    """
    if bdir.has_samples():
        return bdir.read_samples(), 0.0
    from codetune.experiments.benchmark import generate_resumable
    from codetune.fim import fim_ids, fim_stop_ids
    from codetune.generate import TokenPrompt, ids_containing

    if not items:
        raise BenchmarkError("no infilling items to generate", "check the benchmark and its limit")
    kind = _one({it.kind for it in items}, "kinds")
    language = _one({it.task.language for it in items}, "languages")
    cap = min(max_new_tokens, SINGLE_LINE_MAX_NEW_TOKENS) if kind == "single_line" else max_new_tokens
    gen_cfg = cfg.model_copy(update={"n_samples": 1, "max_new_tokens": cap})
    stops = frozenset(fim_stop_ids(tokenizer))
    # A single-line middle is cut after its first newline (`cut_middle`): decoding past it is wasted.
    ends = ids_containing(tokenizer, "\n") - stops if kind == "single_line" else frozenset()
    prompts = [TokenPrompt(tuple(fim_ids(tokenizer, it.prefix, it.suffix, MODE)), stops, ends) for it in items]
    done, seconds = generate_resumable(
        model,
        tokenizer,
        prompts,
        language,
        gen_cfg,
        bdir.samples_partial,
        bdir.read_partial_samples(),
        device=device,
        precision=precision,
        seed=seed,
        progress=progress,
        checkpoint="infill_batch",
    )
    samples = [_sample(item, done[i][0], kind, fim_tokens) for i, item in enumerate(items)]
    bdir.write_samples(samples)
    return samples, seconds


def _sample(item: InfillTask, g: dict, kind: str, fim_tokens: str) -> dict:
    """One item's record in samples.jsonl, from its generation `g`."""
    return {
        "task_id": item.task_id,
        "base_task_id": item.base_id,
        "kind": kind,
        "completion": cut_middle(g["raw"], kind),
        "raw": g["raw"],
        "stop": g["stop"],
        "n_new_tokens": g["n_new_tokens"],
        "sample": 0,
        "fim_tokens": fim_tokens,
    }


def _exec_samples(items: list[InfillTask], samples: list[dict]) -> tuple[list[dict], list[bool]]:
    """What the harness runs for each sample (the base task's prompt + this completion + its test), and
    whether each middle matches the canonical one exactly."""
    by_id = {it.task_id: it for it in items}
    out, exact = [], []
    for n, s in enumerate(samples):
        if (
            not isinstance(s, dict)
            or not isinstance(s.get("task_id"), str)
            or not isinstance(s.get("completion"), str)
        ):
            raise BenchmarkError(
                f"sample {n + 1} needs string fields `task_id` and `completion` (the middle)",
                'write one {"task_id": "HumanEval/0/single_line/3", "completion": MIDDLE} object per line',
            )
        item = by_id.get(s["task_id"])
        if item is None:
            some = ", ".join(list(by_id)[:2])
            raise BenchmarkError(
                f"sample {n + 1}: '{s['task_id']}' is not an item of this infilling set",
                f"check --benchmark, --limit and --infilling (item ids look like {some})",
            )
        out.append(
            {
                "task_id": item.task_id,
                "completion": item.completion(s["completion"]),
                "sample": s.get("sample", 0),
                "n_new_tokens": s.get("n_new_tokens"),
            }
        )
        exact.append(exact_match(s["completion"], item.middle))
    return out, exact


def execute_middles(
    items: list[InfillTask],
    samples: list[dict],
    bdir: BenchmarkDir,
    *,
    timeout_s: float = 10.0,
    ci_level: float = 0.95,
    n_boot: int = 1000,
    workers: int | None = None,
    progress: bool = True,
    extra: dict | None = None,
    verdict_mode: str | None = None,
    log: Log | None = None,
) -> dict:
    """Run prefix + middle + suffix + test for each sample in the sandbox; write bdir/results.jsonl (one
    verdict per sample, task_id = the item's) and bdir/summary.json; return the summary (read back when
    summary.json is there). Resumes a killed execution as `experiments.benchmark.execute_samples` does.

    The summary is the harness's over items (pass@1 and its bootstrap CI over items, status and error
    counts) plus `infill_kind`, `infill_n`, `exact_match` (fraction of items whose middle equals the
    canonical one, trailing whitespace aside) and `exact_match_per_item` ({item id: bool}).
    """
    if bdir.is_executed():
        return bdir.read_summary()
    from codetune.experiments.benchmark import execute_samples

    runs, exact = _exec_samples(items, samples)
    used = {s["task_id"] for s in runs}
    tasks = [it.exec_task for it in items if it.task_id in used]
    if verdict_mode != "assert":
        _warm_expected_outputs([it for it in items if it.task_id in used], workers, timeout_s, progress)
    info = {
        "infill_kind": _one({it.kind for it in items}, "kinds") if items else None,
        "infill_n": len(runs),
        "exact_match": round(sum(exact) / len(exact), 6) if exact else None,
        "exact_match_per_item": {s["task_id"]: e for s, e in zip(runs, exact)},
        "infill_mode": MODE,
    }
    return execute_samples(
        tasks,
        runs,
        bdir,
        ks=(1,),
        timeout_s=timeout_s,
        workers=workers,
        ci_level=ci_level,
        n_boot=n_boot,
        progress=progress,
        extra={**info, **(extra or {})},
        verdict_mode=verdict_mode,
        log=log,
    )


def _warm_expected_outputs(items: list[InfillTask], workers: int | None, timeout_s: float, progress: bool) -> None:
    """Compute each base task's data-mode expected outputs once (they are cached by the task's code, not its
    id), so the harness does not compute them once per item of the same task."""
    from dataclasses import replace

    from codetune.evaluation import datamode
    from codetune.evaluation.sandbox import Limits

    bases = [replace(t, plus=None) for t in {it.base_id: it.task for it in items}.values()]
    datamode.expected_plans(
        bases, limits=Limits(wall_s=timeout_s, cpu_s=timeout_s), workers=workers, progress=progress
    )


def infilling_metrics(summary: dict | None, kind: str, n_items: int, fim_tokens: str | None) -> dict[str, Any]:
    """The results-row columns of a run's infilling benchmark: `infill_pass@1` (percent) with
    `infill_pass@1_ci_low`/`_ci_high`, `infill_exact_match` (percent), `infill_n`, `infill_kind`,
    `fim_tokens`; the measured values None (never 0) when there is no summary."""
    out: dict[str, Any] = {
        "infill_kind": kind,
        "infill_n": n_items,
        "fim_tokens": fim_tokens,
        "infill_pass@1": None,
        "infill_pass@1_ci_low": None,
        "infill_pass@1_ci_high": None,
        "infill_exact_match": None,
    }
    if summary is None:
        return out
    p = (summary.get("pass@k") or {}).get("pass@1")
    out["infill_pass@1"] = None if p is None else round(100.0 * float(p), 4)
    low, high = (summary.get("pass_ci") or {}).get("pass@1", (None, None))
    out["infill_pass@1_ci_low"], out["infill_pass@1_ci_high"] = low, high
    em = summary.get("exact_match")
    out["infill_exact_match"] = None if em is None else round(100.0 * float(em), 4)
    out["infill_n"] = summary.get("infill_n", n_items)
    return out


def item_verdicts(bdir: BenchmarkDir) -> dict[str, bool]:
    """Each item's verdict from bdir/results.jsonl, {item id: passed}: what paired tests across runs pair."""
    return {r["task_id"]: r.get("status") == "passed" for r in bdir.read_results()}


def item_exact_matches(bdir: BenchmarkDir) -> dict[str, bool]:
    """Each item's exact match from bdir/summary.json, {item id: middle == canonical middle}."""
    return dict(bdir.read_summary().get("exact_match_per_item") or {})
