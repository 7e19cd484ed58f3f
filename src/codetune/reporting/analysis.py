"""Load an experiment's finished runs: per-item statistics, configurations, axes and interval settings.

Every metric is handled as additive per-item statistics plus a `combine` function (corpus BLEU and
CodeBLEU pool n-gram counts; a pass rate pools passes and attempts), so one bootstrap serves them all:
paired when two configurations were scored on the same items, independent otherwise (a language
axis has a test set per language). Runs of one configuration that differ only in seed are pooled per
item (statistics summed over seeds), so a resample draws whole items with all their seeds. The tests
between configurations are in `codetune.reporting.comparison`.

Two item sets: BLEU, CodeBLEU, syntax and stub rate are per corpus test item (generations.jsonl);
pass@1 is per benchmark task (benchmark/results.jsonl, see `codetune.reporting.benchmark`), so two runs
are paired on pass@1 when they ran the same tasks. With several samples per task a task's statistic is
its pass rate, and only the bootstrap applies (no McNemar). A third item set is the infilling benchmark's
(`eval.infilling`, infilling/results.jsonl): infilling pass@1 is per infilling item (a masked line or
block), paired between runs that infilled the same items. Base-model rows (`baseline: true`) are
configurations too, listed first; they are compared with the others in `codetune.reporting.baseline`,
not along the grid's axes.

The per-item statistics are the ones scoring wrote into generations.jsonl (recomputed from the text, by
the same rule, for runs written before they were). The experiment's axes are the keys of its grid
(experiment.yaml) whose values differ between configurations, read from each run's config.yaml. The
confidence level and bootstrap size are those the runs recorded (`ci_level`, `n_boot` in metrics.json).
"""

from __future__ import annotations

import contextlib
import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codetune.errors import CodetuneError
from codetune.reporting.benchmark import Benchmark, load_benchmark, load_infilling
from codetune.rundir import EXPERIMENT_FILE, finished_runs

# (key in metrics.json, display name, kind): "corpus" metrics are recombined from statistics,
# "rate" metrics are percentages of per-item pass flags.
METRICS = (
    ("BLEU", "BLEU", "corpus"),
    ("CodeBLEU", "CodeBLEU", "corpus"),
    ("Syntax_Pass_Rate", "Syntax pass %", "rate"),
    ("pass@1", "pass@1 %", "rate"),
    ("infill_pass@1", "infilling pass@1 %", "rate"),
)
# Metrics whose items are infilling items (`Run.infill`: a masked line or block of a benchmark task).
INFILL_METRICS = ("infill_pass@1", "infill_exact_match")
# Metrics whose items are benchmark tasks (or infilling items), not corpus test items.
TASK_METRICS = ("pass@1", *INFILL_METRICS)
# The axes of an experiment without experiment.yaml: (metrics.json key, dotted config key).
AXES = (("lora_r", "lora.r"), ("train_size", "data.train_size"), ("language", "data.language"))
# Dotted config keys that metrics.json also records, for runs without a config.yaml.
_METRICS_KEY = {dotted: key for key, dotted in AXES} | {
    "seed": "seed",
    "model.name": "model",
    "lora.alpha": "lora_alpha",
    "lora.dropout": "lora_dropout",
    "train.epochs": "epochs",
    "train.lr": "lr",
    "train.batch_size": "batch_size",
    "eval.bleu_tokenize": "bleu_tokenize",
    "eval.syntax_level": "syntax_level",
}


@dataclass(frozen=True)
class Level:
    """How intervals are drawn: confidence level and bootstrap resamples (the report's tests use these)."""

    ci_level: float = 0.95
    n_boot: int = 1000

    @property
    def alpha(self) -> float:
        # Rounded so 1 - 0.9 reads 0.1 in a sentence, not 0.09999999999999998.
        return round(1.0 - self.ci_level, 12)

    @property
    def percent(self) -> str:
        """'95%' for 0.95."""
        return f"{round(100.0 * self.ci_level, 6):g}%"


@dataclass
class Run:
    """One finished run: its metrics.json, config.yaml, per-sample records, and per-item statistics."""

    dirname: str
    metrics: dict[str, Any]
    records: list[dict]
    config: dict[str, Any] | None = None  # config.yaml as written (None for a run without one)
    item_ids: list[str] = field(default_factory=list)
    stats: dict[str, np.ndarray | None] = field(default_factory=dict)  # metric -> (n_items, k)
    sentence: dict[str, np.ndarray | None] = field(default_factory=dict)  # metric -> (n_items,)
    bench: Benchmark | None = None  # the benchmark stage (pass@1 per task)
    infill: Benchmark | None = None  # the infilling benchmark (infilling pass@1 per item); None when off

    @property
    def label(self) -> str:
        return str(self.metrics.get("Configuration", self.dirname))

    @property
    def baseline(self) -> bool:
        """A base-model row: no adapter, the same test items and benchmark (metrics.json `baseline`)."""
        return bool(self.metrics.get("baseline")) or bool((self.config or {}).get("baseline"))

    def ids(self, metric: str) -> list[str]:
        """The ids of the items `metric` is measured on: benchmark tasks for pass@1, infilling items for the
        infilling metrics, else corpus items."""
        if metric in INFILL_METRICS:
            return list(self.infill.task_ids) if self.infill is not None else []
        if metric in TASK_METRICS:
            return list(self.bench.task_ids) if self.bench is not None else []
        return self.item_ids

    @property
    def seed(self) -> Any:
        return self.metrics.get("seed")

    @property
    def level(self) -> Level:
        """The recorded interval settings; 0.95/1000 for a run that predates the fields."""
        m = self.metrics
        return Level(float(m.get("ci_level") or 0.95), int(m.get("n_boot") or 1000))

    def value_of(self, key: str) -> Any:
        """A dotted config field (`lora.r`, `train.lr`) from config.yaml, else from metrics.json."""
        if self.config is not None:
            cur: Any = self.config
            for part in key.split("."):
                if not isinstance(cur, dict) or part not in cur:
                    break
                cur = cur[part]
            else:
                return cur
        return self.metrics.get(_METRICS_KEY.get(key, key))


@dataclass
class Config:
    """All runs of one Configuration label (one per seed)."""

    label: str
    runs: list[Run]

    def axis_value(self, key: str) -> Any:
        return self.runs[0].value_of(key)

    def seeds(self) -> list[Any]:
        return [r.seed for r in self.runs]

    @property
    def baseline(self) -> bool:
        return all(r.baseline for r in self.runs)

    def pass_note(self) -> str | None:
        """Why pass@1 is not measured for this configuration (its runs' notes, distinct); None when it is."""
        notes = [r.bench.note if r.bench is not None else "no benchmark stage" for r in self.runs]
        notes = [n for n in dict.fromkeys(notes) if n]
        return "; ".join(notes) if notes and all(r.metrics.get("pass@1") is None for r in self.runs) else None

    @property
    def infilling(self) -> bool:
        """Whether the configuration's runs ran an infilling benchmark (`eval.infilling`)."""
        return any(r.infill is not None for r in self.runs)

    def infill_note(self) -> str | None:
        """Why infilling pass@1 is not measured for this configuration; None when it is (or infilling is off)."""
        notes = [r.infill.note for r in self.runs if r.infill is not None and r.infill.note]
        return "; ".join(dict.fromkeys(notes)) if notes and len(notes) == len(self.runs) else None


@dataclass
class Experiment:
    """An experiment directory's finished runs, grouped, with its grid and interval settings."""

    name: str
    runs: list[Run]
    configs: list[Config]
    grid: dict[str, list[Any]] | None  # None without experiment.yaml
    level: Level
    levels: list[Level]  # every distinct recorded level, in run order (more than one is reported)

    @property
    def bases(self) -> list[Config]:
        """The base-model configurations (one per test set)."""
        return [c for c in self.configs if c.baseline]

    @property
    def trained(self) -> list[Config]:
        """The configurations with an adapter: the grid's cells."""
        return [c for c in self.configs if not c.baseline]

    @property
    def axes(self) -> list[str]:
        return varying_axes(self.trained, self.grid)


def load_experiment(exp_dir: Path, dirnames: list[str] | None = None) -> Experiment:
    """The finished runs of `exp_dir` (only `dirnames` when given) with its grid and interval settings.

    Raises:
        CodetuneError: see `load_runs`.
    """
    exp_dir = Path(exp_dir)
    runs = load_runs(exp_dir, dirnames)
    levels = list(dict.fromkeys(r.level for r in runs))
    return Experiment(exp_dir.name, runs, group_configs(runs), read_grid(exp_dir), levels[0], levels)


def combine_for(metric: str):
    """The function that turns summed statistics into the metric (0-100), None where undefined."""
    from codetune.evaluation.uncertainty import bleu_from_stats, codebleu_combine
    from codetune.stats.corpus import rate_combine

    if metric == "BLEU":
        return bleu_from_stats
    if metric == "CodeBLEU":
        return codebleu_combine()
    return rate_combine


def load_runs(exp_dir: Path, dirnames: list[str] | None = None) -> list[Run]:
    """Every finished run directory (one with metrics.json; of `dirnames` when given), in results.csv order.

    Raises:
        CodetuneError: `exp_dir` is missing or holds no finished run.
    """
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise CodetuneError(
            f"no experiment directory {str(exp_dir)!r}", "pass runs/<experiment>, as written by `codetune run`"
        )
    dirs = [d for d in finished_runs(exp_dir) if dirnames is None or d.name in dirnames]
    if not dirs:
        raise CodetuneError(
            f"no finished runs in {str(exp_dir)!r} (no <run>/metrics.json)",
            f"run the experiment first: codetune run {exp_dir.name}",
        )
    order = _results_order(exp_dir / "results.csv")
    dirs.sort(key=lambda d: (order.get(d.name, len(order)), d.name))
    runs = []
    for rd in dirs:
        # A damaged file stops the report (one line naming it): skipping it would change the items the
        # configurations are compared on. Each hint says what brings the file back.
        redo = f"the run is redone from its adapter on the next `codetune run` of {exp_dir.name}"
        with _hint(f"delete {rd.metrics}: {redo}"):
            metrics = rd.read_metrics()
        with _hint(f"delete {rd.generations} and {rd.metrics}: {redo}"):
            generations = rd.read_generations()
        config = _read_yaml(
            rd.config, "run config", f"delete it: the report then reads the run's settings from {rd.metrics}"
        )
        run = Run(rd.name, metrics, generations, config=config)
        with _hint(f"delete {rd.benchmark.path} and {rd.metrics}: {redo}"):
            run.bench = load_benchmark(rd, metrics)
        with _hint(f"delete {rd.infilling.path} and {rd.metrics}: {redo}"):
            run.infill = load_infilling(rd, metrics)
        _measure(run)
        runs.append(run)
    return runs


def read_grid(exp_dir: Path) -> dict[str, list[Any]] | None:
    """The `grid` of the experiment's experiment.yaml ({} for none), or None when there is no such file."""
    data = _read_yaml(Path(exp_dir) / EXPERIMENT_FILE, "experiment file")
    if data is None:
        return None
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise CodetuneError(
            f"{Path(exp_dir) / EXPERIMENT_FILE}: `grid` must map config keys to value lists",
            "rerun the experiment to rewrite it",
        )
    return grid


def _read_yaml(path: Path, what: str, hint: str = "rerun the experiment to rewrite it") -> dict | None:
    from codetune.io import read_yaml

    if not path.is_file():
        return None
    data = read_yaml(path, what, hint)
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def _hint(hint: str) -> Iterator[None]:
    """A CodetuneError raised in the block gets `hint` (what brings that file back) instead of its own."""
    try:
        yield
    except CodetuneError as exc:
        raise CodetuneError(exc.message, hint) from None


def group_configs(runs: list[Run]) -> list[Config]:
    """Runs grouped by Configuration label (seeds of one configuration together), base-model rows first,
    then first-seen order."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.label, []).append(r)
    configs = [Config(label, sorted(rs, key=lambda r: (r.seed is None, r.seed))) for label, rs in groups.items()]
    return sorted(configs, key=lambda c: not c.baseline)


def varying_axes(configs: list[Config], grid: dict[str, list[Any]] | None = None) -> list[str]:
    """Dotted config keys whose value differs between configurations.

    The experiment's grid keys when it has experiment.yaml (any field: `train.lr`, `lora.alpha`, ...),
    else the seed study's three axes (`lora.r`, `data.train_size`, `data.language`).
    """
    keys = [dotted for _, dotted in AXES] if grid is None else list(grid)
    return [key for key in keys if len({repr(c.axis_value(key)) for c in configs}) > 1]


def _results_order(path: Path) -> dict[str, int]:
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        return {row.get("run_dir", ""): i for i, row in enumerate(csv.DictReader(f)) if row.get("run_dir")}


def _measure(run: Run) -> None:
    """Per-item statistics of every metric the run's records support."""
    from codetune import languages
    from codetune.evaluation.scoring import stats_of_records
    from codetune.stats.corpus import rate_stats

    recs = run.records
    run.item_ids = [str(r.get("id", r.get("index"))) for r in recs]
    if run.bench is not None:
        run.stats["pass@1"] = run.bench.pass_stats()
    if run.infill is not None:
        run.stats["infill_pass@1"] = run.infill.pass_stats()
        run.stats["infill_exact_match"] = run.infill.exact_stats()
    if not recs:
        return
    lang = run.metrics.get("language")
    item = stats_of_records(recs, lang, run.metrics.get("bleu_tokenize") or "13a")
    run.stats["BLEU"] = item["bleu_stats"]
    run.sentence["BLEU"] = np.array(item["bleu"])
    if lang in languages.names(codebleu=True) and item["codebleu_stats"] is not None:
        run.stats["CodeBLEU"] = item["codebleu_stats"]
        run.sentence["CodeBLEU"] = np.array([_nan(x) for x in item["codebleu"]])
    statuses = [r.get("syntax_status") for r in recs]
    if statuses and all(s in ("valid", "invalid") for s in statuses):
        run.stats["Syntax_Pass_Rate"] = rate_stats([s == "valid" for s in statuses])
    trivial = [r.get("trivial") for r in recs]
    if trivial and all(t is not None for t in trivial):
        run.stats["trivial_rate"] = rate_stats([bool(t) for t in trivial])


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def pooled_stats(config: Config, metric: str, seeds: list[Any] | None = None) -> np.ndarray | None:
    """Statistics summed over the configuration's seeds item by item (None if any run lacks them)."""
    runs = [r for r in config.runs if seeds is None or r.seed in seeds]
    mats = [r.stats.get(metric) for r in runs]
    if not runs or any(m is None for m in mats):
        return None
    if any(r.ids(metric) != runs[0].ids(metric) for r in runs):
        return mats[0]  # seeds tested on different items cannot be pooled per item; use the first
    return np.sum(mats, axis=0)


def config_value(config: Config, metric: str, level: Level | None = None) -> dict[str, Any] | None:
    """Value of a metric for a configuration: per-run values, mean ± sd over seeds, and a CI at `level`.

    The CI is the run's own (from metrics.json) for one seed, else the bootstrap over items of the
    seed-pooled statistics.
    """
    from codetune.stats.bootstrap import mean_and_spread
    from codetune.stats.corpus import bootstrap_ci_stats

    level = level or Level()
    values = [r.metrics.get(metric) for r in config.runs]
    values = [float(v) for v in values if v not in (None, "")]
    if not values:
        return None
    spread = mean_and_spread(values)
    out: dict[str, Any] = {"value": spread["mean"], "sd": spread["sd"], "n_seeds": spread["n"], "ci": None}
    run0 = config.runs[0]
    if len(config.runs) == 1 and run0.metrics.get(f"{metric}_ci_low") is not None:
        out["ci"] = (float(run0.metrics[f"{metric}_ci_low"]), float(run0.metrics[f"{metric}_ci_high"]))
    else:
        st = pooled_stats(config, metric)
        if st is not None:
            out["ci"] = bootstrap_ci_stats(st, combine_for(metric), n_boot=level.n_boot, alpha=level.alpha)
    return out


def item_correlation(
    runs: list[Run], x_key: str, flag_metric: str, ci_level: float = 0.95
) -> dict[str, Any] | None:
    """Point-biserial correlation of a per-item number (sentence metric or record field) with a pass flag.

    Items of all runs are pooled (an item appears once per run), so treat the p-value as approximate.
    Corpus items only: pass@1's tasks are another item set (see `benchmark.bleu_vs_pass`).
    """
    from scipy import stats as sps

    assert flag_metric not in TASK_METRICS, "per-task flags do not align with corpus items"

    xs, ys = [], []
    for r in runs:
        flags = r.stats.get(flag_metric)
        if flags is None:
            continue
        if x_key in r.sentence and r.sentence[x_key] is not None:
            x = list(r.sentence[x_key])
        else:
            x = [rec.get(x_key) for rec in r.records]
        for xi, yi in zip(x, flags[:, 0]):
            if xi is not None and not (isinstance(xi, float) and math.isnan(xi)):
                xs.append(float(xi))
                ys.append(float(yi))
    if len(xs) < 3 or len(set(ys)) < 2 or len(set(xs)) < 2:
        return None
    res = sps.pearsonr(xs, ys)
    ci = res.confidence_interval(ci_level)
    return {
        "r": float(res.statistic),
        "p_value": float(res.pvalue),
        "ci": (float(ci.low), float(ci.high)),
        "n": len(xs),
    }
