"""Score one run's generations: per-sample records to generations.jsonl, aggregates to a metrics dict.

Per sample: sentence BLEU and CodeBLEU, syntax status, whether the completion is a stub (`trivial`),
and the complexity of the generated and the reference function (prompt + body, so both include the same
signature). Per run: corpus BLEU and CodeBLEU, syntax pass rate, pass@1 when the generations carry
execution statuses, each with a percentile bootstrap interval over test items
(`<metric>_ci_low`/`<metric>_ci_high`), the stub rate, mean complexities and an error taxonomy.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from codetune.config import RunConfig, RunSpec
from codetune.data.records import CodeSample
from codetune.evaluation.metrics import rate
from codetune.evaluation.uncertainty import bleu_from_stats, bleu_item_stats, bootstrap_ci_stats, codebleu_combine
from codetune.provenance import package_versions, toolchain_version


def score_run(
    cfg: RunConfig, spec: RunSpec, test_set: list[CodeSample], gens: list[dict], tres: Any, run_dir: Path
) -> dict[str, Any]:
    """Compute BLEU and syntax validity of each generation and of the run; write generations.jsonl."""
    from codetune.evaluation.syntax import check_snippets

    lang = cfg.data.language
    tokenize = cfg.eval.bleu_tokenize
    by_index = {i: s for i, s in enumerate(test_set)}
    # The first sample of each prompt is the one scored for BLEU/syntax (greedy when n_samples == 1).
    firsts = [g for g in gens if g["sample"] == 0]
    hyps = [g["completion"] for g in firsts]
    refs = [by_index[g["index"]].target for g in firsts]
    prompts = [by_index[g["index"]].prompt for g in firsts]
    syntax = check_snippets(lang, [p + h for p, h in zip(prompts, hyps)], cfg.eval.syntax_level)
    item = item_measures(hyps, refs, prompts, lang, tokenize)
    records = []
    for i, (g, res) in enumerate(zip(firsts, syntax)):
        s = by_index[g["index"]]
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
            "syntax_status": res.status,
            "syntax_level": res.level,
            "syntax_message": res.message,
            "syntax_line": res.line,
            "trivial": item["trivial"][i],
            **{k: item[k][i] for k in COMPLEXITY_KEYS},
        }
        # Execution verdicts (pass@k harness), when the generation stage attached them.
        if g.get("exec_status") is not None:
            rec["exec_status"] = g["exec_status"]
        records.append(rec)
    _write_jsonl(run_dir / "generations.jsonl", records)
    (run_dir / "generations.partial.jsonl").unlink(missing_ok=True)

    statuses = [r["syntax_status"] for r in records]
    n_valid, n_invalid, n_unavail = (statuses.count(k) for k in ("valid", "invalid", "unavailable"))
    # Never turn "could not check" into a pass: any unavailable check leaves the rate unmeasured.
    syntax_rate = rate(n_valid, n_valid + n_invalid) if n_unavail == 0 else None
    versions = package_versions()
    metrics: dict[str, Any] = {
        "BLEU": round(bleu_from_stats(item["bleu_stats"]), 4) if records else None,
        "Syntax_Pass_Rate": None if syntax_rate is None else round(syntax_rate, 4),
        "Configuration": spec.label,
        "run_id": spec.run_id,
        **run_uncertainty(records, item, syntax_rate, cfg.eval.n_boot, cfg.eval.ci_level, seed=cfg.seed),
        "n_train": len(_read_ids(run_dir / "train.jsonl")),
        "n_test": len(records),
        "train_time_s": round(tres.train_time_s, 3),
        "train_tokens_per_s": round(tres.tokens_per_s, 2),
        "train_forward": tres.forward,  # fused (codetune.fused), fused+compile or peft
        "train_workers": tres.workers,  # data-parallel threads (train.workers, resolved)
        "train_steps": tres.steps,
        "final_loss": round(tres.losses[-1], 5) if tres.losses else None,
        "seed": cfg.seed,
        "model": cfg.model.name,
        "language": lang,
        "lora_r": cfg.lora.r,
        "lora_alpha": cfg.lora.alpha,
        "lora_dropout": cfg.lora.dropout,
        "train_size": cfg.data.train_size,
        "epochs": cfg.train.epochs,
        "lr": cfg.train.lr,
        "batch_size": cfg.train.batch_size,
        "bleu_tokenize": tokenize,
        "syntax_level": cfg.eval.syntax_level,
        "syntax_valid": n_valid,
        "syntax_invalid": n_invalid,
        "syntax_unavailable": n_unavail,
        **error_taxonomy(records),
        "stopped_at_function_end": sum(r["stop"] == "function_end" for r in records),
        "toolchain": toolchain_version(lang),
        **{f"version_{k.replace('-', '_')}": v for k, v in versions.items()},
        "loss_curve": [round(x, 5) for x in tres.losses],
    }
    return metrics


COMPLEXITY_KEYS = ("gen_cyclomatic", "gen_nloc", "gen_tokens", "ref_cyclomatic", "ref_nloc", "ref_tokens")


def codebleu_text(body: str, language: str) -> str:
    """A function body as CodeBLEU parses it: shifted to column 0 and without the function's closing
    brace, so tree-sitter reads plain statements (an indented Python block or a stray `}` would be a
    parse error that corrupts the syntax and dataflow components). Same rule for hypothesis and reference.
    """
    text = body
    if language != "python":
        stripped = text.rstrip()
        if stripped.endswith("}"):
            text = stripped[:-1]
    return textwrap.dedent(text)


def item_measures(
    hyps: list[str], refs: list[str], prompts: list[str], language: str, tokenize: str = "13a"
) -> dict[str, list]:
    """Per-item BLEU/CodeBLEU statistics, stub flags and complexities (None where a measure is undefined).

    Returns:
        dict of lists aligned with `hyps`: `bleu` (sentence BLEU), `bleu_stats` (array, see
        `uncertainty.BLEU_STAT_COLUMNS`), `codebleu` (sentence CodeBLEU, 0-100), `codebleu_stats`
        (array, or None for a language CodeBLEU does not support), `trivial`, and `COMPLEXITY_KEYS`.
    """
    from codetune.evaluation.codebleu import SUPPORTED_LANGUAGES, codebleu_item_stats

    bleu_stats, bleu = bleu_item_stats(hyps, refs, tokenize)
    out: dict[str, Any] = {"bleu": bleu, "bleu_stats": bleu_stats}
    if language in SUPPORTED_LANGUAGES and hyps:
        cb_stats = codebleu_item_stats(
            [codebleu_text(h, language) for h in hyps], [codebleu_text(r, language) for r in refs], language
        )
        combine = codebleu_combine()
        out["codebleu_stats"] = cb_stats
        out["codebleu"] = [combine(row) for row in cb_stats]
    else:
        out["codebleu_stats"] = None
        out["codebleu"] = [None] * len(hyps)
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
    """Corpus CodeBLEU, pass@1, stub rate, mean complexities, and bootstrap intervals of every headline metric."""
    from codetune.reporting.stats import bootstrap_ci

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
    executed = [r["exec_status"] for r in records if r.get("exec_status") not in (None, "unavailable")]
    if executed and len(executed) == len(records):
        passed = [100.0 * (s == "passed") for s in executed]
        out["pass@1"] = round(sum(passed) / len(passed), 4)
        put_ci("pass@1", bootstrap_ci(passed, n_boot=n_boot, alpha=alpha, seed=seed))
    trivial = [t for t in item["trivial"] if t is not None]
    out["trivial_rate"] = None if not trivial else round(100.0 * sum(trivial) / len(trivial), 4)
    if trivial:
        put_ci("trivial_rate", bootstrap_ci([100.0 * t for t in trivial], n_boot=n_boot, alpha=alpha, seed=seed))
    for key in COMPLEXITY_KEYS:
        vals = [v for v in item[key] if v is not None]
        out[f"mean_{key}"] = round(sum(vals) / len(vals), 4) if vals else None
    return out


def error_taxonomy(records: list[dict]) -> dict[str, int]:
    """Counts per failure kind: syntax (valid/invalid/unavailable) and, when executed, each harness status.

    Keys are flat (`exec_<status>`) so they are columns of results.csv.
    """
    from codetune.evaluation.programs import STATUSES

    out: dict[str, int] = {}
    if any(r.get("exec_status") is not None for r in records):
        for status in STATUSES:
            out[f"exec_{status}"] = sum(r.get("exec_status") == status for r in records)
        out["exec_missing"] = sum(r.get("exec_status") is None for r in records)
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


def _read_ids(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_jsonl(path: Path, records: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)
