"""Load an experiment's finished runs and compare its configurations with the right test for each metric.

Every metric is handled as additive per-item statistics plus a `combine` function (corpus BLEU and
CodeBLEU pool n-gram counts; a pass rate pools passes and attempts), so one bootstrap serves them all:
paired when two configurations were scored on the same items, independent otherwise (a language
axis has a test set per language). Runs of one configuration that differ only in seed are pooled per
item (statistics summed over seeds), so a resample draws whole items with all their seeds.
Pass/fail metrics of a single seed also get the exact test: McNemar when paired, Fisher when not.

The per-item statistics are the ones scoring wrote into generations.jsonl (recomputed from the text, by
the same rule, for runs written before they were). The experiment's axes are the keys of its grid
(experiment.yaml) whose values differ between configurations, read from each run's config.yaml. The
confidence level and bootstrap size are those the runs recorded (`ci_level`, `n_boot` in metrics.json).
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codetune.errors import CodetuneError
from codetune.rundir import EXPERIMENT_FILE, finished_runs

# (key in metrics.json, display name, kind): "corpus" metrics are recombined from statistics,
# "rate" metrics are percentages of per-item pass flags.
METRICS = (
    ("BLEU", "BLEU", "corpus"),
    ("CodeBLEU", "CodeBLEU", "corpus"),
    ("Syntax_Pass_Rate", "Syntax pass %", "rate"),
    ("pass@1", "pass@1 %", "rate"),
)
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

    @property
    def label(self) -> str:
        return str(self.metrics.get("Configuration", self.dirname))

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
    def axes(self) -> list[str]:
        return varying_axes(self.configs, self.grid)


def load_experiment(exp_dir: Path) -> Experiment:
    """The finished runs of `exp_dir` with its grid and recorded interval settings (see `load_runs`)."""
    exp_dir = Path(exp_dir)
    runs = load_runs(exp_dir)
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


def load_runs(exp_dir: Path) -> list[Run]:
    """Every finished run directory (one with metrics.json), in results.csv order where it exists.

    Raises:
        CodetuneError: `exp_dir` is missing or holds no finished run.
    """
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise CodetuneError(
            f"no experiment directory {str(exp_dir)!r}", "pass runs/<experiment>, as written by `codetune run`"
        )
    dirs = finished_runs(exp_dir)
    if not dirs:
        raise CodetuneError(
            f"no finished runs in {str(exp_dir)!r} (no <run>/metrics.json)",
            f"run the experiment first: codetune run {exp_dir.name}",
        )
    order = _results_order(exp_dir / "results.csv")
    dirs.sort(key=lambda d: (order.get(d.name, len(order)), d.name))
    runs = []
    for rd in dirs:
        run = Run(rd.name, rd.read_metrics(), rd.read_generations(), config=_read_yaml(rd.config))
        _measure(run)
        runs.append(run)
    return runs


def read_grid(exp_dir: Path) -> dict[str, list[Any]] | None:
    """The `grid` of the experiment's experiment.yaml ({} for none), or None when there is no such file."""
    data = _read_yaml(Path(exp_dir) / EXPERIMENT_FILE)
    if data is None:
        return None
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise CodetuneError(
            f"{Path(exp_dir) / EXPERIMENT_FILE}: `grid` must map config keys to value lists",
            "rerun the experiment to rewrite it",
        )
    return grid


def _read_yaml(path: Path) -> dict | None:
    import yaml

    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CodetuneError(f"cannot read {path}: {exc}", "rerun the experiment to rewrite it") from None
    return data if isinstance(data, dict) else {}


def group_configs(runs: list[Run]) -> list[Config]:
    """Runs grouped by Configuration label (seeds of one configuration together), first-seen order."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.label, []).append(r)
    return [Config(label, sorted(rs, key=lambda r: (r.seed is None, r.seed))) for label, rs in groups.items()]


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
    execs = [r.get("exec_status") for r in recs]
    if execs and all(s not in (None, "unavailable") for s in execs):
        run.stats["pass@1"] = rate_stats([s == "passed" for s in execs])
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
    if any(r.item_ids != runs[0].item_ids for r in runs):
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


@dataclass
class Comparison:
    """A − B on one metric, tested at significance level `alpha`."""

    a: str
    b: str
    metric: str
    diff: float
    ci: tuple[float, float]
    p_value: float
    test: str
    n: int
    paired: bool
    mde: float | None
    effect: str = ""
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha


def compare(a: Config, b: Config, metric: str, level: Level | None = None) -> Comparison | None:
    """Test A − B on `metric` at `level`; None when either lacks the metric's per-item data."""
    from codetune.stats.corpus import paired_bootstrap_stats

    level = level or Level()
    common = [s for s in a.seeds() if s in b.seeds()]
    seeds = common or None
    sa, sb = pooled_stats(a, metric, seeds), pooled_stats(b, metric, seeds)
    if sa is None or sb is None:
        return None
    ra = next(r for r in a.runs if seeds is None or r.seed in seeds)
    rb = next(r for r in b.runs if seeds is None or r.seed in seeds)
    paired = ra.item_ids == rb.item_ids and sa.shape == sb.shape
    res = paired_bootstrap_stats(
        sa, sb, combine_for(metric), n_boot=level.n_boot, alpha=level.alpha, paired=paired
    )
    if res is None:
        return None
    test = ("paired" if paired else "unpaired") + " bootstrap"
    ci = (res["ci_low"], res["ci_high"])
    cmp = Comparison(
        a.label,
        b.label,
        metric,
        res["diff"],
        ci,
        res["p_value"],
        test,
        int(sa.shape[0]),
        paired,
        None,
        "",
        level.alpha,
    )
    k = len(seeds) if seeds else 1
    if metric in ("BLEU", "CodeBLEU"):
        _continuous_effect(cmp, ra, rb, metric)
    else:
        _binary_test(cmp, ra, rb, metric, single_seed=k == 1)
    if k > 1:
        cmp.test += f", items pooled over {k} seeds"
    return cmp


def _continuous_effect(cmp: Comparison, ra: Run, rb: Run, metric: str) -> None:
    from codetune.stats.power import minimum_detectable_effect_continuous

    xa, xb = ra.sentence.get(metric), rb.sentence.get(metric)
    if xa is None or xb is None or np.isnan(xa).any() or np.isnan(xb).any() or cmp.n < 2:
        return
    if cmp.paired:
        d = xa - xb
        sd = float(d.std(ddof=1))
        cmp.effect = f"d_z={d.mean() / sd:+.2f}" if sd > 0 else ""
    else:
        sd = math.sqrt(float(xa.var(ddof=1)) + float(xb.var(ddof=1)))
        pooled = sd / math.sqrt(2)
        cmp.effect = f"d={(xa.mean() - xb.mean()) / pooled:+.2f}" if pooled > 0 else ""
    # Sentence-level spread as the proxy for the corpus metric's: an approximation, said in the report.
    cmp.mde = minimum_detectable_effect_continuous(cmp.n, sd, alpha=cmp.alpha) if sd > 0 else None


def _binary_test(cmp: Comparison, ra: Run, rb: Run, metric: str, single_seed: bool) -> None:
    from scipy import stats as sps

    from codetune.stats.paired import mcnemar_exact
    from codetune.stats.power import minimum_detectable_effect

    fa, fb = ra.stats[metric][:, 0].astype(bool), rb.stats[metric][:, 0].astype(bool)
    pa, pb = fa.mean(), fb.mean()
    cmp.effect = f"h={2 * math.asin(math.sqrt(pa)) - 2 * math.asin(math.sqrt(pb)):+.2f}"
    n = len(fb)
    # MDE of the test-set size: the two-proportion formula (conservative for a paired design, and it
    # needs no guess of the discordance) at the pair's mean rate, on its smaller side because a
    # decrease from p is an increase from 1 - p.
    mid = (float(pa) + float(pb)) / 2.0
    base = min(max(min(mid, 1.0 - mid), 0.5 / n), 0.5)
    cmp.mde = 100.0 * minimum_detectable_effect(n, base, alpha=cmp.alpha, paired=False)
    if cmp.paired:
        mc = mcnemar_exact(fa, fb)
        if single_seed:
            cmp.p_value, cmp.test = mc["p_value"], "exact McNemar"
            cmp.effect += f", discordant {mc['b10']}/{mc['b01']}"
    else:
        if single_seed:
            table = [[int(fa.sum()), int((~fa).sum())], [int(fb.sum()), int((~fb).sum())]]
            cmp.p_value, cmp.test = float(sps.fisher_exact(table).pvalue), "Fisher exact"


def all_comparisons(configs: list[Config], metrics: list[str], level: Level | None = None) -> list[Comparison]:
    """Every pair of configurations on every metric they both have."""
    out = []
    for a, b in itertools.combinations(configs, 2):
        for m in metrics:
            c = compare(a, b, m, level)
            if c is not None:
                out.append(c)
    return out


def item_correlation(
    runs: list[Run], x_key: str, flag_metric: str, ci_level: float = 0.95
) -> dict[str, Any] | None:
    """Point-biserial correlation of a per-item number (sentence metric or record field) with a pass flag.

    Items of all runs are pooled (an item appears once per run), so treat the p-value as approximate.
    """
    from scipy import stats as sps

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
