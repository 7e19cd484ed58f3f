"""Score one run's generations: per-sample records to generations.jsonl, aggregates to a metrics dict.

Per sample: sentence BLEU and CodeBLEU, syntax status, whether the completion is a stub (`trivial`),
the complexity of the generated and the reference function (prompt + body, so both include the same
signature), and the item's BLEU and CodeBLEU sufficient statistics (`bleu_stats`, `codebleu_stats`), so
a report recombines and resamples them without re-running the metrics. Per run: corpus BLEU and CodeBLEU,
syntax pass rate, each with a percentile bootstrap interval over test items (`<metric>_ci_low`/
`<metric>_ci_high`), the stub rate, mean complexities and the syntax counts; `ci_level` and `n_boot`
record how the intervals were drawn. Corpus functions have no tests: pass@1 comes from the run's
benchmark (`codetune.experiments.benchmark`).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from codetune.config import RunConfig, RunSpec
from codetune.data.records import CodeSample
from codetune.evaluation.metrics import rate
from codetune.evaluation.uncertainty import (
    bleu_from_stats,
    bleu_item_stats,
    codebleu_combine,
    sentence_bleu_from_stats,
)
from codetune.provenance import package_versions, toolchain_version
from codetune.rundir import RunDir
from codetune.stats.bootstrap import bootstrap_ci
from codetune.stats.corpus import bootstrap_ci_stats


def score_run(
    cfg: RunConfig,
    spec: RunSpec,
    test_set: list[CodeSample],
    gens: list[dict],
    tres: Any,
    run_dir: Path | RunDir,
) -> dict[str, Any]:
    """Compute BLEU and syntax validity of each generation and of the run; write generations.jsonl.

    Returns:
        The run's metrics (metrics.json without the fields only the runner knows, such as gen_time_s).
    """
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    records, item = score_records(cfg, gens, test_set)
    rd.write_generations(records)
    statuses = [r["syntax_status"] for r in records]
    n_valid, n_invalid, n_unavail = (statuses.count(k) for k in ("valid", "invalid", "unavailable"))
    # Never turn "could not check" into a pass: any unavailable check leaves the rate unmeasured.
    syntax_rate = rate(n_valid, n_valid + n_invalid) if n_unavail == 0 else None
    metrics: dict[str, Any] = {
        "BLEU": round(bleu_from_stats(item["bleu_stats"]), 4) if records else None,
        "Syntax_Pass_Rate": None if syntax_rate is None else round(syntax_rate, 4),
        "Configuration": spec.label,
        "run_id": spec.run_id,
        **run_uncertainty(records, item, syntax_rate, cfg.eval.n_boot, cfg.eval.ci_level, seed=cfg.seed),
        "n_train": rd.count_train_items(),
        "n_test": len(records),
        **train_fields(tres),
        **_config_fields(cfg),
        "syntax_valid": n_valid,
        "syntax_invalid": n_invalid,
        "syntax_unavailable": n_unavail,
        "stopped_at_function_end": sum(r["stop"] == "function_end" for r in records),
        "toolchain": toolchain_version(cfg.data.language),
        **{f"version_{k.replace('-', '_')}": v for k, v in package_versions().items()},
        # How the intervals above were drawn; the report states and reuses them.
        "ci_level": cfg.eval.ci_level,
        "n_boot": cfg.eval.n_boot,
        "loss_curve": [round(x, 5) for x in tres.losses],
    }
    return metrics


def score_records(
    cfg: RunConfig, gens: list[dict], test_set: list[CodeSample]
) -> tuple[list[dict], dict[str, Any]]:
    """One scored record per prompt (its first sample) and the per-item measures behind them."""
    from codetune.evaluation.syntax import check_snippets

    lang = cfg.data.language
    by_index = dict(enumerate(test_set))
    # The first sample of each prompt is the one scored for BLEU/syntax (greedy when n_samples == 1).
    firsts = [g for g in gens if g["sample"] == 0]
    hyps = [g["completion"] for g in firsts]
    refs = [by_index[g["index"]].target for g in firsts]
    prompts = [by_index[g["index"]].prompt for g in firsts]
    syntax = check_snippets(lang, [p + h for p, h in zip(prompts, hyps)], cfg.eval.syntax_level)
    item = item_measures(hyps, refs, prompts, lang, cfg.eval.bleu_tokenize)
    records = [_record(g, by_index[g["index"]], res, item, i) for i, (g, res) in enumerate(zip(firsts, syntax))]
    return records, item


def _record(g: dict, s: CodeSample, res: Any, item: dict[str, Any], i: int) -> dict:
    rec = {
        "id": s.id,
        "index": g["index"],
        "source": f"{s.source}:{s.line}",
        "prompt": s.prompt,
        "reference": s.target,
        "completion": g["completion"],
        "stop": g["stop"],
        "n_new_tokens": g["n_new_tokens"],
        "bleu": round(item["bleu"][i], 4),
        "codebleu": _round(item["codebleu"][i]),
        # Sufficient statistics, unrounded: the report sums and resamples them (see stats_of_records).
        "bleu_stats": [int(x) for x in item["bleu_stats"][i]],
        "codebleu_stats": None
        if item["codebleu_stats"] is None
        else [float(x) for x in item["codebleu_stats"][i]],
        "syntax_status": res.status,
        "syntax_level": res.level,
        "syntax_message": res.message,
        "syntax_line": res.line,
        "trivial": item["trivial"][i],
        **{k: item[k][i] for k in COMPLEXITY_KEYS},
    }
    return rec


def train_fields(tres: Any) -> dict[str, Any]:
    """What training cost and did, as results columns (the cost plot's x axes among them)."""
    return {
        "train_time_s": round(tres.train_time_s, 3),
        "train_tokens": tres.real_tokens,  # non-padding tokens processed over all epochs
        "trainable_params": tres.trainable_params,
        "train_tokens_per_s": round(tres.tokens_per_s, 2),
        "train_forward": tres.forward,  # fused (codetune.training.fused), fused+compile or peft
        "train_workers": tres.workers,  # data-parallel threads (train.workers, resolved)
        "train_steps": tres.steps,
        "final_loss": round(tres.losses[-1], 5) if tres.losses else None,
    }


def _config_fields(cfg: RunConfig) -> dict[str, Any]:
    return {
        "seed": cfg.seed,
        "model": cfg.model.name,
        "language": cfg.data.language,
        "lora_r": cfg.lora.r,
        "lora_alpha": cfg.lora.alpha,
        "lora_dropout": cfg.lora.dropout,
        "train_size": cfg.data.train_size,
        "epochs": cfg.train.epochs,
        "lr": cfg.train.lr,
        "batch_size": cfg.train.batch_size,
        "bleu_tokenize": cfg.eval.bleu_tokenize,
        "syntax_level": cfg.eval.syntax_level,
    }


COMPLEXITY_KEYS = ("gen_cyclomatic", "gen_nloc", "gen_tokens", "ref_cyclomatic", "ref_nloc", "ref_tokens")


def codebleu_text(body: str, language: str) -> str:
    """A function body as CodeBLEU parses it: shifted to column 0 and without the function's closing
    brace, so tree-sitter reads plain statements (an indented Python block or a stray `}` would be a
    parse error that corrupts the syntax and dataflow components). Same rule for hypothesis and reference.
    """
    from codetune import languages

    text = body
    if languages.get(language).stop.kind == "braces":
        stripped = text.rstrip()
        if stripped.endswith("}"):
            text = stripped[:-1]
    return textwrap.dedent(text)


def metric_item_stats(hyps: list[str], refs: list[str], language: str, tokenize: str = "13a") -> dict[str, Any]:
    """Per-item BLEU and CodeBLEU: sentence scores and sufficient statistics (one rule for scoring and report).

    Returns:
        dict: `bleu` (sentence BLEU), `bleu_stats` (array, see `uncertainty.BLEU_STAT_COLUMNS`), `codebleu`
        (sentence CodeBLEU, 0-100), `codebleu_stats` (array, or None for a language CodeBLEU does not support).
    """
    from codetune import languages
    from codetune.evaluation.codebleu import codebleu_item_stats

    bleu_stats, bleu = bleu_item_stats(hyps, refs, tokenize)
    out: dict[str, Any] = {"bleu": bleu, "bleu_stats": bleu_stats}
    if language in languages.names(codebleu=True) and hyps:
        cb_stats = codebleu_item_stats(
            [codebleu_text(h, language) for h in hyps], [codebleu_text(r, language) for r in refs], language
        )
        combine = codebleu_combine()
        out["codebleu_stats"] = cb_stats
        out["codebleu"] = [combine(row) for row in cb_stats]
    else:
        out["codebleu_stats"] = None
        out["codebleu"] = [None] * len(hyps)
    return out


def stats_of_records(records: list[dict], language: str, tokenize: str = "13a") -> dict[str, Any]:
    """`metric_item_stats` of scored records: read from the records, or recomputed from their text.

    Records written before the statistics were persisted lack `bleu_stats`; for those the statistics are
    recomputed from completion and reference with the scoring rule, so both paths give the same numbers.
    """
    if records and all("bleu_stats" in r for r in records):
        bleu_stats = np.array([r["bleu_stats"] for r in records], dtype=float)
        cb = [r.get("codebleu_stats") for r in records]
        cb_stats = None if any(row is None for row in cb) else np.array(cb, dtype=float)
        combine = codebleu_combine()
        return {
            "bleu": [sentence_bleu_from_stats(row) for row in bleu_stats],
            "bleu_stats": bleu_stats,
            "codebleu_stats": cb_stats,
            "codebleu": [None] * len(records) if cb_stats is None else [combine(row) for row in cb_stats],
        }
    hyps = [r.get("completion", "") for r in records]
    refs = [r.get("reference", "") for r in records]
    return metric_item_stats(hyps, refs, language, tokenize)


def item_measures(
    hyps: list[str], refs: list[str], prompts: list[str], language: str, tokenize: str = "13a"
) -> dict[str, list]:
    """Per-item BLEU/CodeBLEU statistics, stub flags and complexities (None where a measure is undefined).

    Returns:
        dict of lists aligned with `hyps`: those of `metric_item_stats`, `trivial`, and `COMPLEXITY_KEYS`.
    """
    out = metric_item_stats(hyps, refs, language, tokenize)
    out["trivial"] = [_trivial(h, language) for h in hyps]
    gen = [_complexity(p + h, language) for p, h in zip(prompts, hyps)]
    ref = [_complexity(p + r, language) for p, r in zip(prompts, refs)]
    for side, values in (("gen", gen), ("ref", ref)):
        for key, src in (("cyclomatic", "cyclomatic"), ("nloc", "nloc"), ("tokens", "token_count")):
            out[f"{side}_{key}"] = [None if v is None else v[src] for v in values]
    return out


def run_uncertainty(
    records: list[dict],
    item: dict[str, Any],
    syntax_rate: float | None,
    n_boot: int,
    ci_level: float,
    seed: int = 0,
) -> dict[str, Any]:
    """Corpus CodeBLEU, stub rate, mean complexities, and bootstrap intervals of every headline metric."""
    alpha = 1.0 - ci_level
    out: dict[str, Any] = {}
    if not records:
        return out

    def put_ci(metric: str, ci: tuple[float, float] | None) -> None:
        out[f"{metric}_ci_low"] = None if ci is None else round(ci[0], 4)
        out[f"{metric}_ci_high"] = None if ci is None else round(ci[1], 4)

    put_ci("BLEU", bootstrap_ci_stats(item["bleu_stats"], bleu_from_stats, n_boot, alpha, seed))
    if item["codebleu_stats"] is not None:
        combine = codebleu_combine()
        out["CodeBLEU"] = _round(combine(item["codebleu_stats"].sum(axis=0)))
        put_ci(
            "CodeBLEU",
            None
            if out["CodeBLEU"] is None
            else bootstrap_ci_stats(item["codebleu_stats"], combine, n_boot, alpha, seed),
        )
    else:
        out["CodeBLEU"] = None
    # The interval of a rate that was not measured is not measured either.
    if syntax_rate is not None:
        checked = [100.0 * (r["syntax_status"] == "valid") for r in records if r["syntax_status"] != "unavailable"]
        put_ci("Syntax_Pass_Rate", bootstrap_ci(checked, n_boot=n_boot, alpha=alpha, seed=seed))
    trivial = [t for t in item["trivial"] if t is not None]
    out["trivial_rate"] = None if not trivial else round(100.0 * sum(trivial) / len(trivial), 4)
    if trivial:
        put_ci("trivial_rate", bootstrap_ci([100.0 * t for t in trivial], n_boot=n_boot, alpha=alpha, seed=seed))
    for key in COMPLEXITY_KEYS:
        vals = [v for v in item[key] if v is not None]
        out[f"mean_{key}"] = round(sum(vals) / len(vals), 4) if vals else None
    return out


def _trivial(code: str, language: str) -> bool | None:
    from codetune.errors import ConfigError
    from codetune.evaluation.triviality import is_trivial_body

    try:
        return bool(is_trivial_body(code, language))
    except ConfigError:  # a language the stub rules do not cover: unknown, not "not trivial"
        return None


def _complexity(code: str, language: str) -> dict | None:
    from codetune.data.complexity import measure_complexity
    from codetune.errors import ConfigError

    try:
        return measure_complexity(code, language)
    except ConfigError:
        return None


def _round(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)
