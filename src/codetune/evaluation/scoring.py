"""Score one run's generations: per-sample records to generations.jsonl, aggregates to a metrics dict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codetune.config import RunConfig, RunSpec
from codetune.data.records import CodeSample
from codetune.evaluation.metrics import corpus_bleu, rate, sentence_bleu
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
    syntax = check_snippets(lang, [by_index[g["index"]].prompt + g["completion"] for g in firsts], cfg.eval.syntax_level)
    records = []
    for g, res in zip(firsts, syntax):
        s = by_index[g["index"]]
        records.append(
            {
                "id": s.id,
                "index": g["index"],
                "source": f"{s.source}:{s.line}",
                "prompt": s.prompt,
                "reference": s.target,
                "completion": g["completion"],
                "stop": g["stop"],
                "n_new_tokens": g["n_new_tokens"],
                "bleu": round(sentence_bleu(g["completion"], s.target, tokenize), 4),
                "syntax_status": res.status,
                "syntax_level": res.level,
                "syntax_message": res.message,
                "syntax_line": res.line,
            }
        )
    _write_jsonl(run_dir / "generations.jsonl", records)
    (run_dir / "generations.partial.jsonl").unlink(missing_ok=True)

    statuses = [r["syntax_status"] for r in records]
    n_valid, n_invalid, n_unavail = (statuses.count(k) for k in ("valid", "invalid", "unavailable"))
    # Never turn "could not check" into a pass: any unavailable check leaves the rate unmeasured.
    syntax_rate = rate(n_valid, n_valid + n_invalid) if n_unavail == 0 else None
    versions = package_versions()
    metrics: dict[str, Any] = {
        "BLEU": round(corpus_bleu(hyps, refs, tokenize), 4),
        "Syntax_Pass_Rate": None if syntax_rate is None else round(syntax_rate, 4),
        "Configuration": spec.label,
        "run_id": spec.run_id,
        "n_train": len(_read_ids(run_dir / "train.jsonl")),
        "n_test": len(records),
        "train_time_s": round(tres.train_time_s, 3),
        "train_tokens_per_s": round(tres.tokens_per_s, 2),
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
        "stopped_at_function_end": sum(r["stop"] == "function_end" for r in records),
        "toolchain": toolchain_version(lang),
        **{f"version_{k.replace('-', '_')}": v for k, v in versions.items()},
        "loss_curve": [round(x, 5) for x in tres.losses],
    }
    return metrics


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
