"""Run an experiment grid: each run trains, generates, evaluates; every stage resumes.

A run's directory holds, as stages finish: config.yaml -> train.jsonl/test.jsonl -> checkpoint/ (while
training) -> adapter/ -> generations.partial.jsonl (while generating) -> generations.jsonl ->
metrics.json. metrics.json is written last and atomically: a run with it is finished and is skipped.
The base model is loaded once per experiment and reused: LoRA layers are removed after each run
(`unload()` without merging), which restores the original modules with their weights untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codetune import faults
from codetune.config import ExperimentConfig, RunConfig, RunSpec, dump_yaml, expand_grid
from codetune.data.records import CodeSample, read_jsonl

Log = Callable[[str], None]


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


@dataclass
class _Cache:
    """Things an experiment loads once: base models and corpora."""

    models: dict[str, Any] = field(default_factory=dict)
    corpora: dict[tuple, list[CodeSample]] = field(default_factory=dict)


class Runner:
    """Runs the cells of one experiment into OUT/<name>/, skipping finished ones."""

    def __init__(self, exp: ExperimentConfig, out_root: Path, *, progress: bool = True, log: Log = print) -> None:
        self.exp = exp
        self.exp_dir = Path(out_root) / exp.name
        self.progress = progress
        self.log = log
        self.specs: list[RunSpec] = expand_grid(exp)
        self._cache = _Cache()

    def run_dir(self, spec: RunSpec) -> Path:
        return self.exp_dir / spec.dirname

    def is_done(self, spec: RunSpec) -> bool:
        return (self.run_dir(spec) / "metrics.json").is_file()

    def run_all(self) -> list[dict]:
        from codetune.reporting.results import write_results

        self.exp_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.exp_dir / "experiment.yaml", dump_yaml(self.exp))
        for i, spec in enumerate(self.specs, 1):
            head = f"[{i}/{len(self.specs)}] {spec.label} ({spec.run_id})"
            if self.is_done(spec):
                self.log(f"{head}: already finished, skipped")
                continue
            self.log(f"{head}: running in {self.run_dir(spec)}")
            metrics = self.run_one(spec)
            self.log(
                f"{head}: BLEU {metrics['BLEU']:.2f}, syntax pass {_fmt(metrics['Syntax_Pass_Rate'])}%, "
                f"train {metrics['train_tokens_per_s']:.0f} tok/s"
            )
            write_results(self.exp_dir, self.specs)
            faults.checkpoint("run_done")
        rows = write_results(self.exp_dir, self.specs)
        self._release_models()
        return rows

    # ------------------------------------------------------------------------------------------ stages

    def _base_model(self, cfg: RunConfig, device: str, base_weights: str) -> Any:
        from codetune.models import cast_frozen_linears, load_base

        key = f"{cfg.model.name}@{cfg.model.revision}:{device}:{base_weights}"
        if key not in self._cache.models:
            self._release_models()
            self.log(f"loading model {cfg.model.name}")
            loaded = load_base(cfg.model, device=device)
            cast_frozen_linears(loaded.model, base_weights)
            self._cache.models[key] = loaded
        return self._cache.models[key]

    def _release_models(self) -> None:
        self._cache.models.clear()

    def _splits(self, cfg: RunConfig, tokenizer: Any, run_dir: Path):
        from codetune.data.corpus import load_corpus, make_splits, save_splits
        from codetune.train import count_tokens

        if (run_dir / "train.jsonl").is_file() and (run_dir / "test.jsonl").is_file():
            return list(read_jsonl(run_dir / "train.jsonl")), list(read_jsonl(run_dir / "test.jsonl")), None
        key = (cfg.data.language, cfg.data.source)
        if key not in self._cache.corpora:
            self._cache.corpora[key] = load_corpus(cfg.data.language, cfg.data.source)
        splits, _ = make_splits(self._cache.corpora[key], cfg.data, lambda texts: count_tokens(tokenizer, texts))
        save_splits(splits, run_dir)
        atomic_write_text(run_dir / "data_counts.json", json.dumps(splits.counts, indent=1))
        return splits.train, splits.test, splits.counts

    def run_one(self, spec: RunSpec) -> dict:
        """Train, generate and evaluate one cell, resuming whatever stage it stopped in."""
        import warnings

        import torch

        from codetune.device import pick_device, resolve_base_weights, resolve_precision, set_threads
        from codetune.evaluation.scoring import score_run
        from codetune.generate import generate
        from codetune.models import apply_lora
        from codetune.train import TrainResult, save_adapter, train

        # peft calls a transformers property deprecated in v5; the warning is theirs, not the user's.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        cfg = spec.config
        run_dir = self.run_dir(spec)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
        threads = set_threads(cfg.threads)
        device = pick_device(cfg.device)
        precision = resolve_precision(cfg.train.precision, device)
        base_weights = resolve_base_weights(cfg.train.base_weights, precision)
        loaded = self._base_model(cfg, device, base_weights)
        tok = loaded.tokenizer
        train_set, test_set, _ = self._splits(cfg, tok, run_dir)

        adapter_dir = run_dir / "adapter"
        torch.manual_seed(cfg.seed)  # LoRA init
        if (adapter_dir / "train_result.json").is_file():
            from peft import PeftModel

            model = PeftModel.from_pretrained(loaded.model, str(adapter_dir))
            tres = TrainResult(**json.loads((adapter_dir / "train_result.json").read_text()))
            self.log(f"  adapter found, training skipped ({tres.steps} steps)")
        else:
            model = apply_lora(loaded.model, cfg.lora)
            tres = train(
                model,
                tok,
                train_set,
                cfg,
                device=device,
                precision=precision,
                run_dir=run_dir,
                progress=self.progress,
            )
            save_adapter(model, adapter_dir, tres)
            shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
            if tres.resumed_from_step:
                self.log(f"  resumed training from the checkpoint at step {tres.resumed_from_step}")
            self.log(
                f"  trained {tres.steps} steps in {tres.train_time_s:.1f}s ({tres.tokens_per_s:.0f} real tok/s, "
                f"{precision}, {tres.forward} forward)"
            )
            if tres.forward_note:
                self.log(f"  (not the fused forward: {tres.forward_note})")
        try:
            gens, gen_time = self._generate(model, tok, cfg, test_set, run_dir, device, precision, generate)
            metrics = score_run(cfg, spec, test_set, gens, tres, run_dir)
        finally:
            # Remove the LoRA layers (not merged) so the base model serves the next run unchanged.
            loaded.model = model.unload()
        metrics.update(
            gen_time_s=round(gen_time, 3),
            threads=threads,
            device=device,
            precision=precision,
            model_kind=loaded.kind,
            model_params=loaded.n_params,
        )
        atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
        return metrics

    def _generate(
        self, model, tok, cfg, test_set, run_dir, device, precision, generate
    ) -> tuple[list[dict], float]:
        """Generate for every test prompt, appending each finished batch to a partial file (resumable)."""
        partial = run_dir / "generations.partial.jsonl"
        done: dict[int, list[dict]] = {}
        gen_time = 0.0
        if partial.is_file():
            for line in partial.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line cut by a kill: everything after it is redone
                done.setdefault(rec["index"], []).append(rec)
                gen_time = max(gen_time, rec.get("_elapsed_s", 0.0))
        done = {k: v for k, v in done.items() if len(v) == cfg.generate.n_samples}
        prompts = [s.prompt for s in test_set]
        t0 = time.perf_counter() - gen_time
        with partial.open("w", encoding="utf-8") as f:
            for recs in done.values():
                for rec in recs:
                    f.write(json.dumps(rec) + "\n")
            for batch in generate(
                model,
                tok,
                prompts,
                cfg.data.language,
                cfg.generate,
                device=device,
                precision=precision,
                seed=cfg.seed,
                skip=set(done),
                progress=self.progress,
            ):
                elapsed = time.perf_counter() - t0
                for g in batch:
                    rec = {**g.__dict__, "_elapsed_s": elapsed}
                    done.setdefault(g.index, []).append(rec)
                    f.write(json.dumps(rec) + "\n")
                f.flush()
                faults.checkpoint("gen_batch")
        gen_time = time.perf_counter() - t0
        gens = [rec for i in range(len(prompts)) for rec in sorted(done[i], key=lambda r: r["sample"])]
        return gens, gen_time


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.1f}"
