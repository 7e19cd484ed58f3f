"""Run an experiment grid: each run trains, generates, evaluates; every stage resumes.

A run's directory (`codetune.rundir.RunDir` owns its layout and the "finished" rule) fills stage by
stage; a finished run is skipped. The base model is loaded once per experiment and reused: LoRA layers
are removed after each run (`unload()` without merging), which restores the original modules with their
weights untouched. A run that adds the FIM sentinels to the model (training with `data.fim_rate > 0`, or
infilling on a model without them) has its embeddings and tokenizer put back as loaded when it ends
(`_VocabSnapshot`), so no later run sees rows or tokens an earlier one added.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codetune import faults
from codetune.config import ExperimentConfig, RunConfig, RunSpec, dump_yaml, expand_grid
from codetune.data.records import CodeSample, read_jsonl
from codetune.experiments.tracking import Tracker, open_tracker, tracking_uri
from codetune.io import atomic_write_text
from codetune.rundir import EXPERIMENT_FILE, LOCK_DIR, RunDir, run_lock, tables_lock, try_lock, wait_lock

Log = Callable[[str], None]
HELD = "another codetune process is running it, skipped (rerun when that one is done)"


@dataclass
class _Cache:
    """Things an experiment loads once: base models and corpora."""

    models: dict[str, Any] = field(default_factory=dict)
    corpora: dict[tuple, list[CodeSample]] = field(default_factory=dict)
    benchmarks: dict[tuple, Any] = field(default_factory=dict)
    infilling: dict[tuple, list] = field(default_factory=dict)


@dataclass
class _Setup:
    """How one run executes, resolved once: device, precision, threads."""

    device: str
    precision: str
    base_weights: str
    threads: int


class Runner:
    """Runs the cells of one experiment into OUT/<name>/, skipping finished ones."""

    def __init__(self, exp: ExperimentConfig, out_root: Path, *, progress: bool = True, log: Log = print) -> None:
        self.exp = exp
        self.exp_dir = Path(out_root) / exp.name
        self.progress = progress
        self.log = log
        self.specs: list[RunSpec] = expand_grid(exp)
        self._cache = _Cache()
        # torch's threads where `threads` is unset: None = every core (a Ray task sets its CPU share)
        self.default_threads: int | None = None
        # what device=auto means: None = CUDA where visible (a Ray task says whether it was given a GPU)
        self.auto_device: str | None = None
        # where MLflow writes, resolved here once (a Ray task gets the driver's)
        self.tracking_uri = tracking_uri(exp.base.tracking)

    def run_dir(self, spec: RunSpec) -> RunDir:
        return RunDir(self.exp_dir / spec.dirname)

    def is_done(self, spec: RunSpec) -> bool:
        return self.run_dir(spec).is_finished()

    def run_all(self) -> list[dict]:
        """Run every unfinished cell with the experiment's executor (`executor`: local, or ray); rewrite
        the tables after each. A cell another live process holds (its lock under `.locks/`) is skipped with
        one line; rerun once that process is done."""
        from codetune.rundir import check_writable_dir

        # Before anything loads or trains: a run that cannot write its results is work thrown away.
        check_writable_dir(
            self.exp_dir, "experiment directory", "choose a writable --out (results go to OUT/<experiment name>/)"
        )
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.exp_dir / EXPERIMENT_FILE, dump_yaml(self.exp))
        self._resolve_benchmarks()
        if self.exp.base.executor == "ray":
            from codetune.experiments.ray_executor import run_on_ray

            held, ran = run_on_ray(self)
        else:
            held, ran = self._run_local()
        rows = self.write_tables()
        if held:
            self.log(f"{held} run(s) left to the other process; their rows appear once it has finished them")
        if ran and rows and self.exp.base.tracking == "mlflow":
            self._track_report()
        self.release_models()
        return rows

    def heads(self) -> list[tuple[RunSpec, str]]:
        """Each cell with the head of its log lines, `[i/n] label (run id)`."""
        return [
            (spec, f"[{i}/{len(self.specs)}] {spec.label} ({spec.run_id})") for i, spec in enumerate(self.specs, 1)
        ]

    def needs_run(self, spec: RunSpec, head: str) -> bool:
        """The ledger's word on a cell its caller holds the lock of: adopted under its legacy name, and
        False (said in one line) when it is finished."""
        self._adopt_legacy(spec)
        if self.is_done(spec) and not self._lacks_benchmark(spec):
            self.log(f"{head}: already finished, skipped")
            return False
        return True

    def _run_local(self) -> tuple[int, int]:
        """The local executor: every cell in this process, one after another; returns how many cells
        another process held and how many ran here."""
        held = ran = 0
        for spec, head in self.heads():
            with try_lock(run_lock(self.exp_dir, spec.dirname)) as mine:
                if not mine:
                    held += 1
                    self.log(f"{head}: {HELD}")
                    continue
                ran += self._run_cell(spec, head)
        return held, ran

    def _run_cell(self, spec: RunSpec, head: str) -> bool:
        """One cell, under its lock: adopted, skipped when finished, else run (resuming its stage);
        whether it ran."""
        if not self.needs_run(spec, head):
            return False
        self.log(f"{head}: running in {self.run_dir(spec).path}")
        metrics = self.run_one(spec)
        self.log(f"{head}: {headline(metrics)}")
        self.write_tables()
        faults.checkpoint("run_done")
        return True

    def _track_report(self) -> None:
        """The grid's table, plot and report (written here) as artifacts of an MLflow run of their own."""
        from codetune.experiments.tracking import log_report
        from codetune.reporting.report import write_report

        md, html = write_report(self.exp_dir)
        tables = [self.exp_dir / name for name in ("results.csv", "results_long.csv", "results.png", "cost.png")]
        log_report(self.tracking_uri, self.exp.name, [*tables, md, html])
        self.log(
            f"tracking: results and report logged to MLflow ({self.tracking_uri}, experiment {self.exp.name})"
        )

    def write_tables(self) -> list[dict]:
        """results.csv and its plot from every finished run, one process at a time."""
        from codetune.reporting.results import write_results

        with wait_lock(tables_lock(self.exp_dir)):
            return write_results(self.exp_dir, self.specs)

    def _adopt_legacy(self, spec: RunSpec) -> None:
        """Take over a run directory named by the id an earlier codetune gave this config.

        Ids used to hash the execution fields too (workers, micro-batch budget, ...); the same config
        now has another id. Its finished (or half-done) directory is renamed to the new name, so nothing
        is retrained; its metrics.json keeps the old id as `legacy_run_id`.
        """
        new = self.run_dir(spec)
        for legacy_id in spec.config.legacy_run_ids():
            old = RunDir(self.exp_dir / spec.dirname_for(legacy_id))
            if legacy_id == spec.run_id or not old.path.is_dir() or new.path.exists():
                continue
            old.path.rename(new.path)
            if new.is_finished():
                metrics = new.read_metrics()
                metrics.update(run_id=spec.run_id, legacy_run_id=legacy_id)
                new.write_metrics(metrics)
            self.log(f"  adopted {old.name} (the id an earlier codetune gave this config) as {new.name}")
            return

    def _resolve_benchmarks(self) -> None:
        """Load each run's benchmark once, before anything trains: an explicit benchmark that cannot be
        loaded stops here; `auto` whose default is unavailable says so once and runs without it."""
        from codetune.experiments.benchmark import resolve_benchmark

        for spec in self.specs:
            key = benchmark_key(spec.config)
            if key not in self._cache.benchmarks:
                bench = resolve_benchmark(*key[:3])
                if key[3] and bench.available:  # eval.extra_tests: a file's extra tests on these tasks
                    from codetune.evaluation.testgen import attach_extra_tests

                    bench.tasks, bench.extra_tests = attach_extra_tests(bench.tasks, key[3])
                self._cache.benchmarks[key] = bench
                if bench.note and key[0] != "none":
                    self.log(f"benchmark for {key[1]}: {bench.note}; pass@1 is recorded as unavailable")
            if spec.config.eval.infilling != "none":
                self.infilling_for(spec.config)  # a benchmark without canonical solutions stops here

    def benchmark_for(self, cfg: RunConfig) -> Any:
        """The Benchmark a run of `cfg` is executed on (resolved at the start of `run_all`)."""
        return self._cache.benchmarks[benchmark_key(cfg)]

    def infilling_for(self, cfg: RunConfig) -> list | None:
        """The infilling items of a run with `eval.infilling` on, built from its benchmark's tasks (the first
        `eval.infilling_limit`); None when the benchmark is not available here.

        Raises:
            ConfigError: infilling with several samples per prompt (infilling is greedy).
            BenchmarkError: the benchmark has no canonical solutions to cut the items from.
        """
        from codetune.errors import ConfigError
        from codetune.experiments.infilling import infilling_items

        if cfg.generate.n_samples != 1:
            raise ConfigError(
                f"`eval.infilling` generates one greedy middle per item, but generate.n_samples is "
                f"{cfg.generate.n_samples}",
                "set generate.n_samples=1 for infilling runs, or eval.infilling=none",
            )
        bench = self.benchmark_for(cfg)
        if not bench.available:
            return None
        key = (*benchmark_key(cfg), cfg.eval.infilling, cfg.eval.infilling_limit)
        if key not in self._cache.infilling:
            self._cache.infilling[key] = infilling_items(bench.tasks, cfg.eval.infilling, cfg.eval.infilling_limit)
        return self._cache.infilling[key]

    def use_benchmark(self, cfg: RunConfig, bench: Any) -> None:
        """Take a Benchmark another process resolved (a Ray task gets the driver's) for runs of `cfg`."""
        self._cache.benchmarks[benchmark_key(cfg)] = bench

    def _lacks_benchmark(self, spec: RunSpec) -> bool:
        """A run finished by a codetune without benchmark execution (adopted): only that stage is left."""
        rd = self.run_dir(spec)
        return rd.is_finished() and "benchmark" not in rd.read_metrics()

    # ------------------------------------------------------------------------------------------ stages

    def _base_model(self, cfg: RunConfig, setup: _Setup) -> Any:
        from codetune.models import cast_frozen_linears, load_base
        from codetune.paths import cache_dir

        key = f"{cfg.model.name}@{cfg.model.revision}:{setup.device}:{setup.base_weights}"
        if key not in self._cache.models:
            self.release_models()
            self.log(f"loading model {cfg.model.name}")
            # One load at a time per cache: two processes converting the same GGUF into the cache at once
            # (two Ray workers on a node, two `codetune run`s) clobbered each other's temporary directory.
            with wait_lock(cache_dir() / LOCK_DIR / "models.lock"):
                loaded = load_base(cfg.model, device=setup.device)
            cast_frozen_linears(loaded.model, setup.base_weights)
            self._cache.models[key] = loaded
        return self._cache.models[key]

    def release_models(self) -> None:
        """Drop the loaded base models (the next run loads its own; a Ray task on a GPU frees its memory)."""
        self._cache.models.clear()

    def _splits(self, cfg: RunConfig, tokenizer: Any, rd: RunDir) -> tuple[list[CodeSample], list[CodeSample]]:
        from codetune.data.contamination import check_saved, check_splits
        from codetune.data.corpus import load_corpus, make_splits, save_splits
        from codetune.training import count_tokens

        if rd.has_splits():
            train, test = list(read_jsonl(rd.train_split)), list(read_jsonl(rd.test_split))
            check_saved(train, test, cfg, self.benchmark_for(cfg), rd.path)  # contamination.json where missing
            return train, test
        key = (cfg.data.language, cfg.data.source)
        if key not in self._cache.corpora:
            self._cache.corpora[key] = load_corpus(cfg.data.language, cfg.data.source)
        splits, _ = make_splits(self._cache.corpora[key], cfg.data, lambda texts: count_tokens(tokenizer, texts))
        # Checked before the splits are saved: with data.decontaminate the saved train split is the one trained on.
        splits = check_splits(splits, cfg, self.benchmark_for(cfg), rd.path)
        save_splits(splits, rd.path)
        rd.write_data_counts(splits.counts)
        return splits.train, splits.test

    def _setup(self, cfg: RunConfig) -> _Setup:
        from codetune.device import pick_device, resolve_base_weights, resolve_precision, set_threads

        threads = set_threads(cfg.threads or self.default_threads)
        device = pick_device(self.auto_device if cfg.device == "auto" and self.auto_device else cfg.device)
        precision = resolve_precision(cfg.train.precision, device)
        return _Setup(device, precision, resolve_base_weights(cfg.train.base_weights, precision), threads)

    def run_one(self, spec: RunSpec) -> dict:
        """Train, generate, score and execute one cell on its benchmark, resuming whatever stage it
        stopped in (a finished run without the benchmark stage gets only that stage)."""
        handoff = self.model_stage(spec)
        faults.checkpoint("model_stage_done")  # all generated (files on disk), nothing executed yet
        return self.execute_stage(spec, handoff)

    def model_stage(self, spec: RunSpec) -> dict:
        """The stages that need the model (train, generate, score, generate the benchmark's samples and, with
        `eval.infilling`, the infilling middles).

        Returns the hand-off for `execute_stage`: the metrics so far, the benchmark generation's seconds, the
        infilling generation's record and the fields that say how the run executed. Its files are in the run
        directory, so the execution stage may run in another process or on another machine (a CPU-only Ray
        worker) that reaches it.
        """
        import warnings

        from codetune.data.contamination import contamination_metrics
        from codetune.device import device_name
        from codetune.evaluation.scoring import score_run, train_fields

        # peft calls a transformers property deprecated in v5; the warning is theirs, not the user's.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        cfg = spec.config
        rd = self.run_dir(spec).create()
        atomic_write_text(rd.config, dump_yaml(cfg))
        setup = self._setup(cfg)
        loaded = self._base_model(cfg, setup)
        train_set, test_set = self._splits(cfg, loaded.tokenizer, rd)
        # Taken before anything can add the FIM sentinels to the shared base model (put back at the end).
        snapshot = _VocabSnapshot.take(loaded) if _may_add_tokens(cfg) else None
        try:
            tracker = self.tracker(spec)
            try:
                model, tres = self._trained(loaded, cfg, train_set, rd, setup, tracker)
            finally:
                tracker.close()
            try:
                if rd.is_finished():  # adopted from an earlier codetune: keep what it measured
                    metrics = {**rd.read_metrics(), **train_fields(tres)}
                else:
                    gens, gen_time = self._generate(model, loaded.tokenizer, cfg, test_set, rd, setup)
                    metrics = score_run(cfg, spec, test_set, gens, tres, rd.path)
                    metrics["gen_time_s"] = round(gen_time, 3)
                bench_gen_s = self._generate_benchmark(model, loaded.tokenizer, cfg, rd, setup)
                infill = self._generate_infilling(model, loaded.tokenizer, cfg, rd, setup, snapshot)
            finally:
                if not cfg.baseline:  # remove the LoRA layers (not merged): the base model serves the next run
                    loaded.model = model.unload()
        finally:
            if snapshot is not None:
                snapshot.restore(loaded)
        tail: dict[str, Any] = {}
        if cfg.baseline:  # nothing was trained: no training examples, no adapter to describe
            tail.update(n_train=0, train_size=0, lora_r=None, lora_alpha=None, lora_dropout=None, epochs=0)
        tail.update(
            baseline=cfg.baseline,
            threads=setup.threads,
            device=setup.device,
            device_name=device_name(setup.device),
            precision=setup.precision,
            model_kind=loaded.kind,
            model_params=loaded.n_params,
            **_execution_record(cfg),
        )
        if _may_add_tokens(cfg):  # FIM columns only where FIM is in play: other tables stay as they were
            tail.update(
                fim_rate=cfg.data.fim_rate,
                fim_mode=cfg.data.fim_mode,
                fim_split=cfg.data.fim_split,
                fim_examples=int(getattr(tres, "fim_examples", 0) or 0),
            )
        tail.update(contamination_metrics(rd.path))  # contam_* (none for a base-model run)
        return {"metrics": metrics, "benchmark_gen_s": bench_gen_s, "infilling": infill, "tail": tail}

    def execute_stage(self, spec: RunSpec, handoff: dict) -> dict:
        """Execute the benchmark's samples and the infilling middles in the sandbox (CPU only, no model) and
        write metrics.json, which finishes the run; returns its metrics."""
        cfg = spec.config
        rd = self.run_dir(spec)
        metrics = dict(handoff["metrics"])
        metrics.update(self._execute_benchmark(cfg, rd, handoff["benchmark_gen_s"]))
        if cfg.eval.efficiency:  # passing samples timed against the canonical solutions (resumes)
            from codetune.evaluation.efficiency import run_stage

            metrics.update(
                run_stage(self.benchmark_for(cfg), rd.benchmark, cfg.eval, progress=self.progress, log=self.log)
            )
        metrics.update(self._execute_infilling(cfg, rd, handoff.get("infilling")))
        metrics.update(handoff["tail"])
        # Tracked before metrics.json finishes the run: a tracker that failed is retried by a rerun.
        tracker = self.tracker(spec)
        tracker.log_final(metrics, step=int(metrics.get("train_steps") or 0))
        tracker.log_files([rd.config, rd.adapter])
        tracker.log_json(RunDir.METRICS, metrics)
        tracker.close(finished=True)
        rd.write_metrics(metrics)
        return metrics

    def tracker(self, spec: RunSpec) -> Tracker:
        """The run's tracker (`tracking`); the base Tracker records nothing."""
        return open_tracker(spec.config.tracking, self.tracking_uri, self.exp.name, spec, self.run_dir(spec).path)

    def _generate_benchmark(self, model: Any, tok: Any, cfg: RunConfig, rd: RunDir, setup: _Setup) -> float | None:
        """Generate on the run's benchmark (resumes; kept when samples.jsonl is there); the seconds it took,
        None when the benchmark is not available."""
        from codetune.experiments.benchmark import generate_samples

        bench = self.benchmark_for(cfg)
        if not bench.available:
            return None
        n = cfg.generate.n_samples
        gen_cfg = cfg.generate.model_copy(update={"max_new_tokens": cfg.eval.benchmark_max_new_tokens})
        self.log(f"  benchmark {bench.name}: {len(bench.tasks)} tasks x {n} sample(s)")
        _, gen_s = generate_samples(
            model,
            tok,
            bench.tasks,
            gen_cfg,
            rd.benchmark,
            device=setup.device,
            precision=setup.precision,
            seed=cfg.seed,
            progress=self.progress,
        )
        return gen_s

    def _execute_benchmark(self, cfg: RunConfig, rd: RunDir, gen_s: float | None) -> dict:
        """Execute the samples the model stage wrote (resumes); the run's benchmark columns."""
        from codetune.experiments.benchmark import benchmark_metrics, execute_samples

        bench = self.benchmark_for(cfg)
        n = cfg.generate.n_samples
        if not bench.available:
            return benchmark_metrics(bench, None, n)
        samples = rd.benchmark.read_samples()
        summary = execute_samples(
            bench.tasks,
            samples,
            rd.benchmark,
            ks=benchmark_ks(n),
            timeout_s=cfg.eval.benchmark_timeout_s,
            ci_level=cfg.eval.ci_level,
            n_boot=cfg.eval.n_boot,
            progress=self.progress,
            extra={"benchmark": bench.name, "gen_time_s": round(gen_s or 0.0, 3)},
            log=self.log,
        )
        out = benchmark_metrics(bench, summary, n)
        out["benchmark_gen_time_s"] = summary.get("gen_time_s")
        out["benchmark_new_tokens"] = sum(int(s.get("n_new_tokens") or 0) for s in samples)
        return out

    def _generate_infilling(
        self, model: Any, tok: Any, cfg: RunConfig, rd: RunDir, setup: _Setup, snapshot: _VocabSnapshot | None
    ) -> dict | None:
        """Generate the infilling middles (resumes; kept when infilling/samples.jsonl is there); the record
        the execution stage needs (seconds, how the model got its FIM tokens), None with infilling off or
        the benchmark unavailable. A model without the sentinels gets them here, their rows untrained."""
        if cfg.eval.infilling == "none":
            return None
        items = self.infilling_for(cfg)
        if items is None:
            return None
        from codetune.experiments.infilling import generate_middles, prepare_fim

        trained = not cfg.baseline and cfg.data.fim_rate > 0
        status = prepare_fim(model, tok, trained=trained, native=snapshot is not None and snapshot.native)
        n_tasks = len({it.base_id for it in items})
        self.log(
            f"  infilling {cfg.eval.infilling}: {len(items)} items from {n_tasks} tasks (FIM tokens {status})"
        )
        _, gen_s = generate_middles(
            model,
            tok,
            items,
            cfg.generate,
            rd.infilling,
            max_new_tokens=cfg.eval.benchmark_max_new_tokens,
            device=setup.device,
            precision=setup.precision,
            seed=cfg.seed,
            progress=self.progress,
            fim_tokens=status,
        )
        return {"gen_s": gen_s, "fim_tokens": status}

    def _execute_infilling(self, cfg: RunConfig, rd: RunDir, gen: dict | None) -> dict:
        """Execute the middles the model stage wrote (resumes); the run's infilling columns ({} when off)."""
        if cfg.eval.infilling == "none":
            return {}
        from codetune.experiments.infilling import execute_middles, infilling_metrics

        items = self.infilling_for(cfg)
        if items is None or gen is None:
            out = infilling_metrics(None, cfg.eval.infilling, 0, None)
            out.update(infill_tasks=0, infill_note=self.benchmark_for(cfg).note or "no infilling items")
            return out
        samples = rd.infilling.read_samples()
        summary = execute_middles(
            items,
            samples,
            rd.infilling,
            timeout_s=cfg.eval.benchmark_timeout_s,
            ci_level=cfg.eval.ci_level,
            n_boot=cfg.eval.n_boot,
            progress=self.progress,
            extra={"infilling": cfg.eval.infilling, "gen_time_s": round(gen["gen_s"] or 0.0, 3)},
            log=self.log,
        )
        out = infilling_metrics(summary, cfg.eval.infilling, len(items), gen["fim_tokens"])
        out.update(
            infill_tasks=len({it.base_id for it in items}),
            infill_note=None,
            infill_gen_time_s=summary.get("gen_time_s"),
            infill_exec_seconds=summary.get("exec_seconds"),
            infill_new_tokens=sum(int(s.get("n_new_tokens") or 0) for s in samples),
        )
        return out

    def _trained(
        self, loaded: Any, cfg: RunConfig, train_set: list[CodeSample], rd: RunDir, setup: _Setup, tracker: Tracker
    ):
        """The PEFT model with this run's adapter: loaded when training finished before, else trained."""
        import torch

        from codetune.models import apply_lora
        from codetune.training import load_train_result, save_adapter, train

        if cfg.baseline:
            from codetune.training import TrainResult

            return loaded.model, TrainResult(steps=0, epochs=0.0, precision=setup.precision, device=setup.device)
        torch.manual_seed(cfg.seed)  # LoRA init
        if rd.has_adapter():
            from codetune.models import attach_adapter

            # A FIM adapter's sentinels (its saved tokenizer) are added to the base before its rows load.
            model = attach_adapter(loaded.model, loaded.tokenizer, rd.adapter)
            tres = load_train_result(rd.adapter)
            self.log(f"  adapter found, training skipped ({tres.steps} steps)")
            return model, tres
        fim = cfg.data.fim_rate > 0  # adds the sentinels where the tokenizer lacks them, and trains their rows
        model = apply_lora(loaded.model, cfg.lora, tokenizer=loaded.tokenizer, fim=fim)
        tres = train(
            model,
            loaded.tokenizer,
            train_set,
            cfg,
            device=setup.device,
            precision=setup.precision,
            checkpoint_dir=rd.checkpoint,
            progress=self.progress,
            on_step=tracker.log_step,
        )
        save_adapter(model, rd.adapter, tres, tokenizer=loaded.tokenizer if fim else None)
        rd.drop_checkpoint()
        if tres.resumed_from_step:
            self.log(f"  resumed training from the checkpoint at step {tres.resumed_from_step}")
        self.log(
            f"  trained {tres.steps} steps in {tres.train_time_s:.1f}s ({tres.tokens_per_s:.0f} real tok/s, "
            f"{setup.precision}, {tres.forward} forward)"
        )
        if tres.forward_note:
            self.log(f"  (not the fused forward: {tres.forward_note})")
        return model, tres

    def _generate(
        self, model: Any, tok: Any, cfg: RunConfig, test_set: list[CodeSample], rd: RunDir, setup: _Setup
    ) -> tuple[list[dict], float]:
        """Generate for every test prompt, appending each finished batch to a partial file (resumable)."""
        from codetune.experiments.benchmark import generate_resumable

        prompts = [s.prompt for s in test_set]
        done, gen_time = generate_resumable(
            model,
            tok,
            prompts,
            cfg.data.language,
            cfg.generate,
            rd.generations_partial,
            rd.read_partial_generations(),  # a line cut by a kill ends the read: the rest is redone
            device=setup.device,
            precision=setup.precision,
            seed=cfg.seed,
            progress=self.progress,
        )
        gens = [rec for i in range(len(prompts)) for rec in sorted(done[i], key=lambda r: r["sample"])]
        return gens, gen_time


def benchmark_key(cfg: RunConfig) -> tuple:
    """What a run's benchmark is resolved from: its setting, the run's language, the task limit and the
    file of extra tests (`eval.extra_tests`)."""
    return (cfg.eval.benchmark, cfg.data.language, cfg.eval.benchmark_limit, cfg.eval.extra_tests)


def benchmark_ks(n_samples: int) -> tuple[int, ...]:
    """The k of pass@k a run reports: 1, and 10 / 100 where a task has more samples than that."""
    return (1, *(k for k in (10, 100) if n_samples > k))


def headline(metrics: dict) -> str:
    """One line of what a run measured."""
    parts = [f"BLEU {metrics['BLEU']:.2f}", f"syntax pass {_fmt(metrics['Syntax_Pass_Rate'])}%"]
    if metrics.get("pass@1") is not None:
        parts.append(
            f"{metrics['benchmark']} pass@1 {metrics['pass@1']:.1f}% "
            f"[{_fmt(metrics.get('pass@1_ci_low'))}, {_fmt(metrics.get('pass@1_ci_high'))}]"
        )
    elif metrics.get("benchmark_note"):
        parts.append(f"pass@1 n/a ({metrics['benchmark_note']})")
    if metrics.get("infill_pass@1") is not None:
        parts.append(
            f"{metrics['infill_kind']} infilling pass@1 {metrics['infill_pass@1']:.1f}% "
            f"[{_fmt(metrics.get('infill_pass@1_ci_low'))}, {_fmt(metrics.get('infill_pass@1_ci_high'))}]"
        )
    if not metrics.get("baseline"):
        parts.append(f"train {metrics.get('train_tokens_per_s') or 0:.0f} tok/s")
    return ", ".join(parts)


def _execution_record(cfg: RunConfig) -> dict[str, Any]:
    """How the run executed, as results columns: every execution field as set, and the primitive-cache
    caps in force (environment variables read by torch's CPU matmuls)."""
    import os

    from codetune.device import CACHE_CAPS

    caps = {f"setting_env_{name.lower()}": os.environ.get(name) for name in CACHE_CAPS}
    return {**cfg.execution_settings(), **caps}


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def _may_add_tokens(cfg: RunConfig) -> bool:
    """Whether a run may add the FIM sentinels to the model and tokenizer (FIM training, or infilling)."""
    return (cfg.data.fim_rate > 0 and not cfg.baseline) or cfg.eval.infilling != "none"


@dataclass
class _VocabSnapshot:
    """The cached base model's vocabulary as loaded, taken before a run that may add tokens and put back
    after it: the tokenizer (a copy), the embedding modules with their parameters and tensors, the rows an
    added token would take inside the existing tensors, and the config's vocab size.

    Adding the sentinels grows the tokenizer and resizes the embeddings (transformers swaps a weight's data,
    or puts a new head in place); without this the next cell on the cached model would train and generate
    with three more tokens than the same cell run on its own (another softmax, other losses).
    """

    native: bool  # the tokenizer had the sentinels as loaded
    tokenizer: Any
    n_tokens: int
    vocab_size: Any
    modules: list[Any]  # [input embedding, output embedding (None when absent)]
    params: list[tuple[Any, str, Any, Any]]  # (module, name, Parameter, its data), weights and biases
    rows: list[tuple[Any, Any]]  # (tensor, a copy of its rows [n_tokens, n_tokens + 3))

    @classmethod
    def take(cls, loaded: Any) -> _VocabSnapshot:
        from codetune.fim import SENTINELS, fim_tokens

        base = loaded.model
        n = len(loaded.tokenizer)
        modules = [base.get_input_embeddings(), base.get_output_embeddings()]
        params, rows = [], []
        for module in modules:
            for name in ("weight", "bias"):
                param = getattr(module, name, None)
                if param is None or any(param is p for _, _, p, _ in params):
                    continue
                params.append((module, name, param, param.data))
                rows.append((param.data, param.data[n : n + len(SENTINELS)].clone()))
        return cls(
            native=fim_tokens(loaded.tokenizer) is not None,
            tokenizer=copy.deepcopy(loaded.tokenizer),
            n_tokens=n,
            vocab_size=base.config.get_text_config().vocab_size,
            modules=modules,
            params=params,
            rows=rows,
        )

    def restore(self, loaded: Any) -> None:
        """Put the vocabulary back (nothing to do when the run added no token)."""
        if len(loaded.tokenizer) == self.n_tokens:
            return
        import torch

        base = loaded.model
        inp, out = self.modules
        base.set_input_embeddings(inp)
        if out is not None:
            base.set_output_embeddings(out)
        with torch.no_grad():
            for module, name, param, data in self.params:
                param.data = data
                setattr(module, name, param)  # the same Parameter objects: tied embeddings stay tied
            for data, rows in self.rows:
                data[self.n_tokens : self.n_tokens + len(rows)] = rows
        inp.num_embeddings = inp.weight.shape[0]
        if out is not None and hasattr(out, "out_features"):
            out.out_features = out.weight.shape[0]
        base.config.get_text_config().vocab_size = self.vocab_size
        if hasattr(base, "vocab_size"):
            base.vocab_size = self.vocab_size
        loaded.tokenizer = self.tokenizer  # the copy taken before the run (a snapshot is restored once)
