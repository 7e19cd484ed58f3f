"""Load an experiment's finished runs and compare its configurations with the right test for each metric.

Every metric is handled as additive per-item statistics plus a `combine` function (corpus BLEU and
CodeBLEU pool n-gram counts; a pass rate pools passes and attempts), so one bootstrap serves them all:
paired when two configurations were scored on the same items, independent otherwise (a language
axis has a test set per language). Runs of one configuration that differ only in seed are pooled per
item (statistics summed over seeds), so a resample draws whole items with all their seeds.
Pass/fail metrics of a single seed also get the exact test: McNemar when paired, Fisher when not.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codetune.errors import CodetuneError

# (key in metrics.json, display name, kind): "corpus" metrics are recombined from statistics,
# "rate" metrics are percentages of per-item pass flags.
METRICS = (
    ("BLEU", "BLEU", "corpus"),
    ("CodeBLEU", "CodeBLEU", "corpus"),
    ("Syntax_Pass_Rate", "Syntax pass %", "rate"),
    ("pass@1", "pass@1 %", "rate"),
)
AXES = (("lora_r", "lora.r"), ("train_size", "data.train_size"), ("language", "data.language"))
ALPHA = 0.05


@dataclass
class Run:
    """One finished run: its metrics.json, its per-sample records, and per-item statistics."""

    dirname: str
    metrics: dict[str, Any]
    records: list[dict]
    item_ids: list[str] = field(default_factory=list)
    stats: dict[str, np.ndarray | None] = field(default_factory=dict)  # metric -> (n_items, k)
    sentence: dict[str, np.ndarray | None] = field(default_factory=dict)  # metric -> (n_items,)

    @property
    def label(self) -> str:
        return str(self.metrics.get("Configuration", self.dirname))

    @property
    def seed(self) -> Any:
        return self.metrics.get("seed")


@dataclass
class Config:
    """All runs of one Configuration label (one per seed)."""

    label: str
    runs: list[Run]

    def axis_value(self, key: str) -> Any:
        return self.runs[0].metrics.get(key)

    def seeds(self) -> list[Any]:
        return [r.seed for r in self.runs]


def combine_for(metric: str):
    """The function that turns summed statistics into the metric (0-100), None where undefined."""
    from codetune.evaluation.uncertainty import bleu_from_stats, codebleu_combine

    if metric == "BLEU":
        return bleu_from_stats
    if metric == "CodeBLEU":
        return codebleu_combine()
    return _rate_combine


def _rate_combine(row: np.ndarray) -> float | None:
    return None if row[1] == 0 else 100.0 * float(row[0]) / float(row[1])


def load_runs(exp_dir: Path) -> list[Run]:
    """Every run directory with a metrics.json (a finished run), in results.csv order where it exists.

    Raises:
        CodetuneError: `exp_dir` is missing or holds no finished run.
    """
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise CodetuneError(
            f"no experiment directory {str(exp_dir)!r}", "pass runs/<experiment>, as written by `codetune run`"
        )
    dirs = sorted(p.parent for p in exp_dir.glob("*/metrics.json"))
    if not dirs:
        raise CodetuneError(
            f"no finished runs in {str(exp_dir)!r} (no <run>/metrics.json)",
            f"run the experiment first: codetune run {exp_dir.name}",
        )
    order = _results_order(exp_dir / "results.csv")
    dirs.sort(key=lambda d: (order.get(d.name, len(order)), d.name))
    runs = []
    for d in dirs:
        try:
            metrics = json.loads((d / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CodetuneError(
                f"cannot read {d / 'metrics.json'}: {exc}", "rerun the experiment to rewrite it"
            ) from exc
        run = Run(dirname=d.name, metrics=metrics, records=_read_jsonl(d / "generations.jsonl"))
        _measure(run)
        runs.append(run)
    return runs


def group_configs(runs: list[Run]) -> list[Config]:
    """Runs grouped by Configuration label (seeds of one configuration together), first-seen order."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.label, []).append(r)
    return [Config(label, sorted(rs, key=lambda r: (r.seed is None, r.seed))) for label, rs in groups.items()]


def varying_axes(configs: list[Config]) -> list[str]:
    """The metrics.json keys of the study's axes whose value differs between configurations."""
    return [key for key, _ in AXES if len({repr(c.axis_value(key)) for c in configs}) > 1]


def _results_order(path: Path) -> dict[str, int]:
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        return {row.get("run_dir", ""): i for i, row in enumerate(csv.DictReader(f)) if row.get("run_dir")}


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _measure(run: Run) -> None:
    """Per-item statistics of every metric the run's records support."""
    from codetune.evaluation.codebleu import SUPPORTED_LANGUAGES, codebleu_item_stats
    from codetune.evaluation.uncertainty import bleu_item_stats

    recs = run.records
    run.item_ids = [str(r.get("id", r.get("index"))) for r in recs]
    if not recs:
        return
    hyps = [r.get("completion", "") for r in recs]
    refs = [r.get("reference", "") for r in recs]
    run.stats["BLEU"], sentence = bleu_item_stats(hyps, refs, run.metrics.get("bleu_tokenize") or "13a")
    run.sentence["BLEU"] = np.array(sentence)
    lang = run.metrics.get("language")
    if lang in SUPPORTED_LANGUAGES:
        cb = codebleu_item_stats(hyps, refs, lang)
        combine = combine_for("CodeBLEU")
        run.stats["CodeBLEU"] = cb
        run.sentence["CodeBLEU"] = np.array([_nan(combine(row)) for row in cb])
    statuses = [r.get("syntax_status") for r in recs]
    if statuses and all(s in ("valid", "invalid") for s in statuses):
        run.stats["Syntax_Pass_Rate"] = _flags([s == "valid" for s in statuses])
    execs = [r.get("exec_status") for r in recs]
    if execs and all(s not in (None, "unavailable") for s in execs):
        run.stats["pass@1"] = _flags([s == "passed" for s in execs])
    trivial = [r.get("trivial") for r in recs]
    if trivial and all(t is not None for t in trivial):
        run.stats["trivial_rate"] = _flags([bool(t) for t in trivial])


def _flags(passed: list[bool]) -> np.ndarray:
    return np.column_stack([np.array(passed, dtype=float), np.ones(len(passed))])


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


def config_value(config: Config, metric: str) -> dict[str, Any] | None:
    """Value of a metric for a configuration: per-run values, mean ± sd over seeds, and a 95% CI.

    The CI is the run's own (from metrics.json) for one seed, else the bootstrap over items of the
    seed-pooled statistics.
    """
    from codetune.evaluation.uncertainty import bootstrap_ci_stats
    from codetune.reporting.stats import mean_and_spread

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
            out["ci"] = bootstrap_ci_stats(st, combine_for(metric), n_boot=1000, alpha=ALPHA)
    return out


@dataclass
class Comparison:
    """A − B on one metric."""

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

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


def compare(a: Config, b: Config, metric: str, n_boot: int = 1000) -> Comparison | None:
    """Test A − B on `metric`; None when either lacks the metric's per-item data."""
    from codetune.evaluation.uncertainty import paired_bootstrap_stats

    common = [s for s in a.seeds() if s in b.seeds()]
    seeds = common or None
    sa, sb = pooled_stats(a, metric, seeds), pooled_stats(b, metric, seeds)
    if sa is None or sb is None:
        return None
    ra = next(r for r in a.runs if seeds is None or r.seed in seeds)
    rb = next(r for r in b.runs if seeds is None or r.seed in seeds)
    paired = ra.item_ids == rb.item_ids and sa.shape == sb.shape
    res = paired_bootstrap_stats(sa, sb, combine_for(metric), n_boot=n_boot, alpha=ALPHA, paired=paired)
    if res is None:
        return None
    n = int(sa.shape[0])
    cmp = Comparison(
        a.label,
        b.label,
        metric,
        res["diff"],
        (res["ci_low"], res["ci_high"]),
        res["p_value"],
        ("paired" if paired else "unpaired") + " bootstrap",
        n,
        paired,
        None,
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
    from codetune.reporting.stats import minimum_detectable_effect_continuous

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
    cmp.mde = minimum_detectable_effect_continuous(cmp.n, sd, alpha=ALPHA) if sd > 0 else None


def _binary_test(cmp: Comparison, ra: Run, rb: Run, metric: str, single_seed: bool) -> None:
    from scipy import stats as sps

    from codetune.reporting.stats import mcnemar_exact, minimum_detectable_effect

    fa, fb = ra.stats[metric][:, 0].astype(bool), rb.stats[metric][:, 0].astype(bool)
    pa, pb = fa.mean(), fb.mean()
    cmp.effect = f"h={2 * math.asin(math.sqrt(pa)) - 2 * math.asin(math.sqrt(pb)):+.2f}"
    n = len(fb)
    # MDE of the test-set size: the two-proportion formula (conservative for a paired design, and it
    # needs no guess of the discordance) at the pair's mean rate, on its smaller side because a
    # decrease from p is an increase from 1 - p.
    mid = (float(pa) + float(pb)) / 2.0
    base = min(max(min(mid, 1.0 - mid), 0.5 / n), 0.5)
    cmp.mde = 100.0 * minimum_detectable_effect(n, base, alpha=ALPHA, paired=False)
    if cmp.paired:
        mc = mcnemar_exact(fa, fb)
        if single_seed:
            cmp.p_value, cmp.test = mc["p_value"], "exact McNemar"
            cmp.effect += f", discordant {mc['b10']}/{mc['b01']}"
    else:
        if single_seed:
            table = [[int(fa.sum()), int((~fa).sum())], [int(fb.sum()), int((~fb).sum())]]
            cmp.p_value, cmp.test = float(sps.fisher_exact(table).pvalue), "Fisher exact"


def all_comparisons(configs: list[Config], metrics: list[str]) -> list[Comparison]:
    """Every pair of configurations on every metric they both have."""
    out = []
    for a, b in itertools.combinations(configs, 2):
        for m in metrics:
            c = compare(a, b, m)
            if c is not None:
                out.append(c)
    return out


def item_correlation(runs: list[Run], x_key: str, flag_metric: str) -> dict[str, Any] | None:
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
    ci = res.confidence_interval(0.95)
    return {
        "r": float(res.statistic),
        "p_value": float(res.pvalue),
        "ci": (float(ci.low), float(ci.high)),
        "n": len(xs),
    }
