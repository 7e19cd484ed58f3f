"""Training, generation and evaluation speed: codetune vs a seed-style pipeline, on the same model and texts.

Issue #7. One run measures, each part in its own child process (so one pipeline's peak memory cannot hide
another's, and each child's ru_maxrss is its own):

* probe     bf16 and fp32 matmul GFLOP/s on this CPU; the bf16 training ceiling in real tokens/s is
            bf16 GFLOP/s * 1e9 / (4 * n_params)  (LoRA: forward 2N + backward to activations 2N FLOPs
            per token; frozen base weights get no weight gradient, LoRA's own FLOPs are negligible).
* seed      the study's approach, written here: HF Trainer, every example padded to 512 tokens, fp32,
            batch 8 x accumulation 4, loss on all non-padding tokens; then generation one sample at a
            time, greedy, `max_new_tokens`, no stop rule but EOS.
* train     codetune: `codetune.training.train` (length-grouped batches, precision auto), then
            `codetune.generate.generate` (batched, stops at the end of the function) and evaluation
            (`check_snippets` + `corpus_bleu`) on the generations.
* generate  (reported from the `train` child: it generates with the model it trained)
* rank      end-to-end wall time of a reduced `codetune run rank ...` (CLI in a child process).
* quality   same seed, fp32 vs bf16 on one config: loss curves, BLEU and syntax pass rate, with paired
            bootstrap intervals of the differences.

Real tokens are non-padding tokens (attention-mask sum) of the batches a pipeline processed, over the
wall time of its training call (first, warm-up step included for both pipelines). Targets are printed as
PASS/MISS, never asserted. The printed report also replaces the `perf` section of benchmarks/RESULTS.md
(`results_md.record`), stamped with the date, the machine and the command; `--results-md` writes it
elsewhere, `--no-results-md` not at all.

    .venv/bin/python benchmarks/perf.py                       # full: ~10-15 min on a quiet 2-core machine
    .venv/bin/python benchmarks/perf.py --n-train 32 --steps 4 --seed-steps 1 --gen-samples 8 \\
        --parts probe,seed,train,quality --json perf.json     # reduced: ~4-6 min
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ALL_PARTS = ("probe", "seed", "train", "generate", "rank", "quality")
SEED_MAX_LENGTH = 512  # the study padded every example to this
SEED_BATCH, SEED_ACCUM = 8, 4
# Reduced rank experiment: ranks 4/16/64 as in the preset, fewer samples, one epoch.
RANK_OVERRIDES = ("data.train_size=64", "data.test_size=16", "train.epochs=1", "generate.max_new_tokens=64")
LOSS_TOLERANCE = 0.03  # quality: mean |loss_bf16 - loss_fp32| per step, relative to fp32's mean loss


# ---------------------------------------------------------------------------------------------- helpers


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(opts: dict) -> Any:
    """Threads, device, and the same texts for every pipeline: (loaded model, train samples, test samples)."""
    from codetune.config import DataConfig, ModelConfig
    from codetune.data.corpus import load_corpus, make_splits
    from codetune.device import set_threads
    from codetune.models import load_base
    from codetune.training import count_tokens

    set_threads(opts["threads"])
    loaded = load_base(ModelConfig(name=opts["model"]))
    # max_tokens 512: the seed pipeline truncates there, so nothing it sees differs from codetune's texts.
    data = DataConfig(
        language="python",
        source=opts["source"],
        train_size=opts["n_train"],
        test_size=opts["gen_samples"],
        max_tokens=SEED_MAX_LENGTH,
    )
    corpus = load_corpus("python", opts["source"])
    splits, _ = make_splits(corpus, data, lambda texts: count_tokens(loaded.tokenizer, texts))
    return loaded, splits.train, splits.test


def _lora(model: Any, seed: int) -> Any:
    import torch

    from codetune.config import LoraConfig
    from codetune.models import apply_lora

    torch.manual_seed(seed)
    return apply_lora(model, LoraConfig(r=16, alpha=32, dropout=0.1))


# ---------------------------------------------------------------------------------------------- parts


def part_probe(opts: dict) -> dict:
    """Best-of-N square matmul GFLOP/s in bf16 and fp32, and n_params of the model for the ceiling."""
    import torch

    from codetune.device import set_threads

    threads = set_threads(opts["threads"])
    n = opts["probe_size"]
    out: dict[str, Any] = {"threads": threads, "probe_size": n}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        for _ in range(2):  # warm-up: oneDNN kernel selection, page faults
            a @ b
        best = math.inf
        for _ in range(opts["probe_reps"]):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
        out[f"{name}_gflops"] = 2 * n**3 / best / 1e9
    from codetune.config import ModelConfig
    from codetune.models import load_base

    out["n_params"] = load_base(ModelConfig(name=opts["model"])).n_params
    out["flops_per_token"] = 4 * out["n_params"]
    out["ceiling_tokens_per_s"] = out["bf16_gflops"] * 1e9 / out["flops_per_token"]
    return out


def part_seed(opts: dict) -> dict:
    """The study's pipeline: Trainer, pad to 512, fp32, batch 8 x accum 4; generation one at a time."""
    import torch
    from transformers import Trainer, TrainingArguments

    loaded, train_set, test_set = _setup(opts)
    tok = loaded.tokenizer
    model = _lora(loaded.model, opts["seed"])
    enc = tok(
        [s.prompt + s.target for s in train_set], padding="max_length", max_length=SEED_MAX_LENGTH, truncation=True
    )
    rows = []
    for ids, mask in zip(enc["input_ids"], enc["attention_mask"]):
        labels = [t if m else -100 for t, m in zip(ids, mask)]  # loss on every real token, as the study did
        rows.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    counted = {"real": 0, "slots": 0}

    def collate(batch: list[dict]) -> dict:
        out = {k: torch.tensor([r[k] for r in batch]) for k in ("input_ids", "attention_mask", "labels")}
        counted["real"] += int(out["attention_mask"].sum())
        counted["slots"] += out["input_ids"].numel()
        return out

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=SEED_BATCH,
            gradient_accumulation_steps=SEED_ACCUM,
            max_steps=opts["seed_steps"],
            learning_rate=1e-4,
            logging_steps=1,
            save_strategy="no",
            eval_strategy="no",
            report_to=[],
            use_cpu=True,
            dataloader_num_workers=0,
            disable_tqdm=True,
            remove_unused_columns=False,
            seed=opts["seed"],
        )
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate)
        t0 = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - t0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    train_rss = _peak_rss_mb()

    model.eval()
    new_tokens = []
    t0 = time.perf_counter()
    for s in test_set:
        ids = tok(s.prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(
                **ids, max_new_tokens=opts["max_new_tokens"], do_sample=False, pad_token_id=tok.pad_token_id
            )
        new_tokens.append(out.shape[1] - ids["input_ids"].shape[1])
    gen_s = time.perf_counter() - t0
    return {
        "pipeline": "seed-style (Trainer, pad 512, fp32)",
        "precision": "fp32",
        "steps": opts["seed_steps"],
        "losses": losses,
        "train_time_s": train_s,
        "real_tokens": counted["real"],
        "padded_tokens": counted["slots"],
        "padding_share": 1 - counted["real"] / max(1, counted["slots"]),
        "tokens_per_s": counted["real"] / train_s,
        "train_peak_rss_mb": train_rss,
        "gen_samples": len(test_set),
        "gen_time_s": gen_s,
        "gen_samples_per_s": len(test_set) / gen_s,
        "gen_tokens_per_s": sum(new_tokens) / gen_s,
        "gen_mean_new_tokens": sum(new_tokens) / max(1, len(new_tokens)),
    }


def part_codetune(opts: dict, precision: str = "auto") -> dict:
    """codetune's train -> generate -> evaluate on the same texts; per-item scores kept for quality."""
    from codetune.config import RunConfig
    from codetune.device import pick_device, resolve_base_weights, resolve_precision
    from codetune.evaluation.metrics import corpus_bleu
    from codetune.evaluation.syntax import check_snippets
    from codetune.generate import generate
    from codetune.models import cast_frozen_linears
    from codetune.training import train

    loaded, train_set, test_set = _setup(opts)
    tok = loaded.tokenizer
    device = pick_device("cpu")
    prec = resolve_precision(precision, device)
    train_overrides = dict(kv.split("=", 1) for kv in opts.get("train_overrides", []))
    # epochs such that steps ~= --steps at batch 8, no accumulation
    epochs = opts["steps"] * 8 / len(train_set)
    cfg = RunConfig(
        seed=opts["seed"],
        device="cpu",
        threads=opts["threads"],
        model={"name": opts["model"]},
        lora={"r": 16, "alpha": 32, "dropout": 0.1},
        train={
            "epochs": epochs,
            "batch_size": 8,
            "lr": 1e-4,
            "precision": prec,
            "checkpoint_every": 0,
            **train_overrides,
        },
        generate={"max_new_tokens": opts["max_new_tokens"]},
    )
    # The frozen base weights as `codetune run` stores them (bf16 under bf16 training, by default).
    cast_frozen_linears(loaded.model, resolve_base_weights(cfg.train.base_weights, prec))
    model = _lora(loaded.model, opts["seed"])
    res = train(model, tok, train_set, cfg, device=device, precision=prec, progress=False)
    train_rss = _peak_rss_mb()

    gcfg = cfg.generate
    gens = []
    t0 = time.perf_counter()
    for batch in generate(
        model,
        tok,
        [s.prompt for s in test_set],
        "python",
        gcfg,
        device=device,
        precision=prec,
        seed=opts["seed"],
        progress=False,
    ):
        gens += batch
    gen_s = time.perf_counter() - t0
    gens.sort(key=lambda g: g.index)
    hyps = [g.completion for g in gens]
    refs = [test_set[g.index].target for g in gens]
    t0 = time.perf_counter()
    syntax = check_snippets("python", [test_set[g.index].prompt + g.completion for g in gens], "parse")
    syntax_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bleu = corpus_bleu(hyps, refs)
    bleu_s = time.perf_counter() - t0
    valid = [r.status == "valid" for r in syntax]
    stops: dict[str, int] = {}
    for g in gens:
        stops[g.stop] = stops.get(g.stop, 0) + 1
    return {
        "pipeline": f"codetune ({prec}, {res.forward}" + (f", {res.workers} workers)" if res.workers > 1 else ")"),
        "forward": res.forward,
        "workers": res.workers,
        "precision": prec,
        "steps": res.steps,
        "losses": res.losses,
        "train_time_s": res.train_time_s,
        "real_tokens": res.real_tokens,
        "padded_tokens": res.padded_tokens,
        "padding_share": 1 - res.real_tokens / max(1, res.padded_tokens),
        "tokens_per_s": res.tokens_per_s,
        "train_peak_rss_mb": train_rss,
        "gen_samples": len(gens),
        "gen_time_s": gen_s,
        "gen_samples_per_s": len(gens) / gen_s,
        "gen_tokens_per_s": sum(g.n_new_tokens for g in gens) / gen_s,
        "gen_mean_new_tokens": sum(g.n_new_tokens for g in gens) / max(1, len(gens)),
        "gen_stops": stops,
        "eval_syntax_s": syntax_s,
        "eval_bleu_s": bleu_s,
        "bleu": bleu,
        "syntax_pass_rate": 100.0 * sum(valid) / max(1, len(valid)),
        "syntax_unavailable": sum(r.status == "unavailable" for r in syntax),
        "items": [{"hyp": h, "ref": r, "valid": v} for h, r, v in zip(hyps, refs, valid)],
    }


def rank_overrides(opts: dict) -> list[str]:
    extra = (
        [f"model.name={opts['model']}", f"threads={opts['threads']}"]
        if opts["threads"]
        else [f"model.name={opts['model']}"]
    )
    if opts["source"]:
        extra.append(f"data.source={opts['source']}")
    return list(opts["rank_overrides"]) + extra


def part_rank(opts: dict) -> dict:
    """Wall time of a reduced `codetune run rank` from process start to results.csv."""
    overrides = rank_overrides(opts)
    with tempfile.TemporaryDirectory() as out:
        argv = ["run", "rank", *overrides, "--out", out, "--no-progress"]
        code = "import sys; from codetune.cli import main; sys.exit(main(sys.argv[1:]))"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code, *argv], check=False, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        rows = []
        csv = Path(out) / "rank" / "results.csv"
        if csv.is_file():
            import csv as csvmod

            with csv.open() as f:
                rows = list(csvmod.DictReader(f))
    return {
        "command": "codetune run rank " + " ".join(overrides),
        "returncode": proc.returncode,
        "stderr_tail": proc.stderr[-2000:] if proc.returncode else "",
        "wall_s": wall,
        "runs": [
            {
                k: r.get(k)
                for k in ("Configuration", "BLEU", "Syntax_Pass_Rate", "train_time_s", "train_tokens_per_s")
            }
            for r in rows
        ],
    }


PARTS = {
    "probe": part_probe,
    "seed": part_seed,
    "train": lambda o: part_codetune(o, "auto"),
    "fp32": lambda o: part_codetune(o, "fp32"),
    "bf16": lambda o: part_codetune(o, "bf16"),
    "rank": part_rank,
}


# ---------------------------------------------------------------------------------------------- orchestration


def run_child(part: str, opts: dict) -> dict:
    """Run one part in a fresh interpreter; its result plus the child's own peak RSS (wait4)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--_child",
            part,
            "--_opts",
            json.dumps(opts),
            "--_out",
            str(out),
        ]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        stderr = proc.stderr.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out.is_file():
            return {
                "error": f"child '{part}' exited {proc.returncode}",
                "stderr_tail": stderr[-3000:],
                "wall_s": wall,
            }
        result = json.loads(out.read_text())
    result["process_peak_rss_mb"] = usage.ru_maxrss / 1024  # whole child incl. its own children
    result["process_wall_s"] = wall
    return result


def collect(opts: dict, parts: list[str], log=print) -> dict:
    results: dict[str, Any] = {"options": opts}
    plan = []
    if "probe" in parts:
        plan.append("probe")
    if "seed" in parts:
        plan.append("seed")
    if "train" in parts or "generate" in parts:
        plan.append("train")
    if "quality" in parts:
        plan.append("fp32")
        # bf16 side: the `train` child when it ran in bf16, else a run forced to bf16.
        plan.append("bf16")
    if "rank" in parts:
        plan.append("rank")
    for part in plan:
        if part == "bf16" and results.get("train", {}).get("precision") == "bf16":
            results["bf16"] = results["train"]
            continue
        log(f"[perf] running {part} ...")
        results[part] = run_child(part, opts)
        if "error" in results[part]:
            log(f"[perf] {part} failed: {results[part]['error']}\n{results[part]['stderr_tail']}")
        else:
            log(f"[perf] {part} done in {results[part]['process_wall_s']:.0f}s")
    return results


# ---------------------------------------------------------------------------------------------- report


def _ok(cond: bool | None) -> str:
    return "n/a " if cond is None else ("PASS" if cond else "MISS")


def quality_summary(fp32: dict, bf16: dict) -> dict:
    """fp32 vs bf16 with the same seed: loss gap per step, paired bootstrap of BLEU and syntax differences."""
    from codetune.evaluation.metrics import corpus_bleu
    from codetune.stats.paired import paired_bootstrap

    la, lb = fp32["losses"], bf16["losses"]
    n = min(len(la), len(lb))
    mean_fp32 = sum(la[:n]) / max(1, n)
    gap = sum(abs(a - b) for a, b in zip(la, lb)) / max(1, n)
    a_items, b_items = bf16["items"], fp32["items"]
    out: dict[str, Any] = {
        "loss_mean_abs_gap": gap,
        "loss_rel_gap": gap / max(mean_fp32, 1e-9),
        "n_items": len(a_items),
    }
    if len(a_items) >= 2 and len(a_items) == len(b_items):

        def bleu(items: list[dict]) -> float:
            return corpus_bleu([i["hyp"] for i in items], [i["ref"] for i in items])

        out["bleu_diff"] = paired_bootstrap(a_items, b_items, bleu, n_boot=500)
        out["syntax_diff"] = paired_bootstrap(
            [100.0 * i["valid"] for i in a_items], [100.0 * i["valid"] for i in b_items], n_boot=2000
        )
    return out


def report(results: dict, print_=print) -> dict:
    """Print the table and the targets; return the target verdicts."""
    probe, seed, ct = results.get("probe", {}), results.get("seed", {}), results.get("train", {})
    ceiling = probe.get("ceiling_tokens_per_s")
    opts = results["options"]
    if probe and "error" not in probe:
        print_(
            f"matmul probe ({probe['threads']} threads, {probe['probe_size']}^2): bf16 {probe['bf16_gflops']:.0f} GFLOP/s, "
            f"fp32 {probe['fp32_gflops']:.0f} GFLOP/s"
        )
        print_(
            f"bf16 ceiling = bf16 GFLOP/s * 1e9 / (4 * n_params) = {probe['bf16_gflops']:.0f}e9 / (4 * "
            f"{probe['n_params'] / 1e6:.1f}M) = {ceiling:.0f} tokens/s"
        )
    print_(
        f"model {opts['model']}, {opts['n_train']} train texts, {opts['gen_samples']} generation prompts, "
        f"max_new_tokens {opts['max_new_tokens']}"
    )
    head = (
        f"{'pipeline':46} {'steps':>5} {'real tok/s':>10} {'% ceil':>7} {'x seed':>7} {'pad %':>6} "
        f"{'train RSS MB':>12} {'proc RSS MB':>11} {'gen smp/s':>9} {'gen tok/s':>9} {'new tok':>7}"
    )
    print_(head)
    print_("-" * len(head))
    rows = [
        (k, results[k]) for k in ("seed", "train", "fp32", "bf16") if k in results and "error" not in results[k]
    ]
    seen = set()
    for key, r in rows:
        if id(r) in seen:
            continue
        seen.add(id(r))
        pct = f"{100 * r['tokens_per_s'] / ceiling:.1f}" if ceiling else "-"
        speed = f"{r['tokens_per_s'] / seed['tokens_per_s']:.1f}" if seed.get("tokens_per_s") else "-"
        name = r["pipeline"] + (" [quality]" if key in ("fp32", "bf16") else "")
        print_(
            f"{name:46} {r['steps']:>5} {r['tokens_per_s']:>10.1f} {pct:>7} {speed:>7} {100 * r['padding_share']:>6.1f} "
            f"{r['train_peak_rss_mb']:>12.0f} {r['process_peak_rss_mb']:>11.0f} {r['gen_samples_per_s']:>9.3f} "
            f"{r['gen_tokens_per_s']:>9.1f} {r['gen_mean_new_tokens']:>7.1f}"
        )
    if ct and "error" not in ct:
        print_(
            f"codetune generation stops: {ct['gen_stops']} (codetune stops at the end of the function; the seed "
            f"style runs to max_new_tokens or EOS, so compare samples/s for the task and tokens/s for raw decoding)"
        )
        print_(
            f"codetune evaluation: syntax check {ct['eval_syntax_s']:.3f}s, BLEU {ct['eval_bleu_s']:.3f}s for "
            f"{ct['gen_samples']} generations; BLEU {ct['bleu']:.2f}, syntax pass {ct['syntax_pass_rate']:.1f}%"
        )
    rank = results.get("rank")
    if rank and "error" not in rank:
        print_(
            f"rank (reduced): `{rank['command']}` -> exit {rank['returncode']}, {rank['wall_s']:.0f}s end to end"
        )
        for r in rank["runs"]:
            print_(f"  {r}")
        if rank["returncode"]:
            print_(rank["stderr_tail"])

    verdicts: dict[str, Any] = {}
    have_ct = bool(ct) and "error" not in ct
    have_seed = bool(seed) and "error" not in seed
    share = ct["tokens_per_s"] / ceiling if have_ct and ceiling else None
    verdicts["train_share_of_ceiling"] = (share, None if share is None else share >= 0.5)
    sp = ct["tokens_per_s"] / seed["tokens_per_s"] if have_ct and have_seed else None
    verdicts["train_speedup_vs_seed"] = (sp, None if sp is None else sp >= 10)
    rss = ct["train_peak_rss_mb"] if have_ct else None
    default_model = opts["model"] == "smollm2-135m"
    verdicts["train_peak_rss_mb"] = (rss, None if rss is None or not default_model else rss <= 3 * 1024)
    gsp = ct["gen_samples_per_s"] / seed["gen_samples_per_s"] if have_ct and have_seed else None
    verdicts["gen_speedup_vs_seed"] = (gsp, None if gsp is None else gsp >= 5)
    q = None
    if all(k in results and "error" not in results[k] for k in ("fp32", "bf16")):
        q = quality_summary(results["fp32"], results["bf16"])
        results["quality"] = q
        fa, fb = results["fp32"], results["bf16"]
        print_("quality, same seed: step losses (fp32 | bf16)")
        every = max(1, len(fa["losses"]) // 10)
        for i in range(0, min(len(fa["losses"]), len(fb["losses"])), every):
            print_(f"  step {i + 1:>4}: {fa['losses'][i]:.4f} | {fb['losses'][i]:.4f}")
        print_(
            f"  BLEU fp32 {fa['bleu']:.2f} vs bf16 {fb['bleu']:.2f}; syntax pass fp32 {fa['syntax_pass_rate']:.1f}% vs "
            f"bf16 {fb['syntax_pass_rate']:.1f}% (n={q['n_items']})"
        )
        if "bleu_diff" in q:
            for k in ("bleu_diff", "syntax_diff"):
                d = q[k]
                print_(f"  {k} (bf16 - fp32): {d['diff']:+.2f}, 95% CI [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]")
        ok_loss = q["loss_rel_gap"] <= LOSS_TOLERANCE
        ok_bleu = "bleu_diff" not in q or q["bleu_diff"]["ci_low"] <= 0 <= q["bleu_diff"]["ci_high"]
        ok_syn = "syntax_diff" not in q or q["syntax_diff"]["ci_low"] <= 0 <= q["syntax_diff"]["ci_high"]
        verdicts["quality_fp32_vs_bf16"] = (q["loss_rel_gap"], ok_loss and ok_bleu and ok_syn)

    print_("targets (printed, never asserted):")
    fmt = {
        "train_share_of_ceiling": ("training >= 50% of the bf16 ceiling", lambda v: f"{100 * v:.1f}%"),
        "train_speedup_vs_seed": ("training >= 10x seed-style real tokens/s", lambda v: f"{v:.1f}x"),
        "train_peak_rss_mb": ("peak RSS training the default model <= 3 GB", lambda v: f"{v:.0f} MB"),
        "gen_speedup_vs_seed": ("generation >= 5x seed-style samples/s", lambda v: f"{v:.1f}x"),
        "quality_fp32_vs_bf16": (
            f"quality: loss gap <= {100 * LOSS_TOLERANCE:.0f}% and BLEU/syntax diff CIs contain 0",
            lambda v: f"loss gap {100 * v:.2f}%",
        ),
    }
    for key, (text, f) in fmt.items():
        value, ok = verdicts.get(key, (None, None))
        shown = "not measured" if value is None else f(value)
        if key == "train_peak_rss_mb" and value is not None and not default_model:
            shown += " (not the default model)"
        print_(f"  [{_ok(ok)}] {text}: {shown}")
    results["targets"] = {k: {"value": v, "pass": ok} for k, (v, ok) in verdicts.items()}
    return verdicts


# ---------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m", help="model.name for codetune.models.load_base")
    p.add_argument("--n-train", type=int, default=80, help="training texts (the same for both pipelines)")
    p.add_argument("--steps", type=int, default=10, help="codetune optimizer steps (batch 8)")
    p.add_argument(
        "--seed-steps",
        type=int,
        default=2,
        help="seed-style optimizer steps (32 texts padded to 512 each: slow)",
    )
    p.add_argument("--gen-samples", type=int, default=16, help="generation prompts (held-out test texts)")
    p.add_argument("--max-new-tokens", type=int, default=50, help="max new tokens per sample, both pipelines")
    p.add_argument("--parts", default=",".join(ALL_PARTS), help=f"comma list of: {','.join(ALL_PARTS)}")
    p.add_argument("--skip-rank", action="store_true", help="drop the rank part")
    p.add_argument(
        "--rank-overrides",
        nargs="*",
        default=list(RANK_OVERRIDES),
        help="key=value overrides of the reduced rank experiment",
    )
    p.add_argument(
        "--train-overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="train.* settings for codetune's side (and the quality runs), e.g. micro_batch_tokens=384 "
        "lora_dropout_rng=torch attention=autocast padding_mask=pass",
    )
    p.add_argument("--source", default=None, help="data.source for the Python corpus (default: the stdlib)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--probe-size", type=int, default=2048, help="matmul probe matrix size")
    p.add_argument("--probe-reps", type=int, default=5, help="matmul probe repetitions (best counts)")
    p.add_argument("--seed", type=int, default=0, help="seed of LoRA init, batch order and dropout")
    p.add_argument("--json", metavar="OUT", help="also write every figure as JSON to OUT")
    p.add_argument(
        "--results-md",
        metavar="PATH",
        default=None,
        help="the Markdown file whose `perf` section gets the report (default: benchmarks/RESULTS.md)",
    )
    p.add_argument("--no-results-md", action="store_true", help="print the report only; write no RESULTS.md")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    p.add_argument("--_opts", help=argparse.SUPPRESS)
    p.add_argument("--_out", help=argparse.SUPPRESS)
    return p


def options(args: argparse.Namespace) -> dict:
    return {
        "model": args.model,
        "n_train": args.n_train,
        "steps": args.steps,
        "seed_steps": args.seed_steps,
        "gen_samples": args.gen_samples,
        "max_new_tokens": args.max_new_tokens,
        "source": args.source,
        "threads": args.threads,
        "probe_size": args.probe_size,
        "probe_reps": args.probe_reps,
        "seed": args.seed,
        "rank_overrides": args.rank_overrides,
        "train_overrides": args.train_overrides,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args._child:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        result = PARTS[args._child](json.loads(args._opts))
        Path(args._out).write_text(json.dumps(result))
        return 0
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in ALL_PARTS]
    if unknown:
        print(f"error: unknown part(s) {unknown}; use some of: {','.join(ALL_PARTS)}", file=sys.stderr)
        return 2
    if args.skip_rank and "rank" in parts:
        parts.remove("rank")
    opts = options(args)
    t0 = time.perf_counter()
    results = collect(opts, parts, log=lambda m: print(m, file=sys.stderr, flush=True))
    lines: list[str] = []
    report(results, print_=lines.append)
    results["total_wall_s"] = time.perf_counter() - t0
    lines.append(f"total wall time {results['total_wall_s']:.0f}s")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    if not args.no_results_md:
        path = record_results(lines, argv if argv is not None else sys.argv[1:], args.results_md)
        print(f"figures written to {path}")
    return 0


def record_results(lines: list[str], argv: list[str], path: str | None = None) -> Path:
    """The printed report as the `perf` section of RESULTS.md (benchmarks/results_md.py), as printed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("results_md", Path(__file__).with_name("results_md.py"))
    results_md = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results_md)  # type: ignore[union-attr]
    return results_md.record_printed("perf", "benchmarks/perf.py", lines, argv, path)


if __name__ == "__main__":
    sys.exit(main())
