"""Report generation from fabricated experiment directories (real scoring of hand-written completions)."""

from __future__ import annotations

import re

import pytest

from codetune.errors import CodetuneError
from codetune.reporting.analysis import group_configs, load_runs
from codetune.reporting.comparison import compare
from codetune.reporting.report import write_report
from codetune.reporting.study import spearman_exact
from codetune.reporting.wording import describe


@pytest.fixture(scope="module")
def rank_dir(tmp_path_factory, fabricate):
    return fabricate.rank_experiment(tmp_path_factory.mktemp("rank") / "rank", with_exec=True)


@pytest.fixture(scope="module")
def rank_report(rank_dir):
    md, html = write_report(rank_dir)
    return md.read_text(encoding="utf-8"), html.read_text(encoding="utf-8")


def test_headline_has_every_configuration_with_intervals(rank_report):
    md, _ = rank_report
    head = md.split("## Headline")[1].split("## Runs")[0]
    for label in ("Rank 4", "Rank 16", "Rank 64"):
        row = next(line for line in head.splitlines() if line.startswith(f"| {label} |"))
        # BLEU, CodeBLEU, syntax, pass@1, stub rate: each "value [low, high]"
        assert len(re.findall(r"\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\]", row)) == 5, row
    assert "pass@1 %" in head


def test_comparisons_use_exact_tests_and_never_overclaim(rank_dir, rank_report):
    md, _ = rank_report
    configs = group_configs(load_runs(rank_dir))
    by = {c.label: c for c in configs}
    syn = compare(by["Rank 16"], by["Rank 64"], "Syntax_Pass_Rate")
    assert syn.test == "exact McNemar" and syn.p_value == 1.0 and not syn.significant
    assert "not significant at this sample size (n=24)" in describe(syn)
    stub = compare(by["Rank 4"], by["Rank 16"], "trivial_rate")
    assert stub.diff == pytest.approx(25.0) and stub.p_value == pytest.approx(
        2 / 2**6
    )  # 6 discordant, all one way
    # Every table row says "significant" only with p < 0.05.
    table = md.split("## Pairwise comparisons")[1].split("## Error taxonomy")[0]
    rows = [line for line in table.splitlines() if line.startswith("| Rank")]
    assert len(rows) == 15  # 3 pairs x (BLEU, CodeBLEU, syntax, pass@1, stub rate)
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        p = 0.0 if cells[5] == "<0.001" else float(cells[5])
        assert (cells[-1] == "significant") == (p < 0.05), line
        if p >= 0.05:
            assert cells[-1] == "not significant at this sample size (n=24)"


def test_rq_answers_follow_the_axis(rank_report):
    md, _ = rank_report
    rq = md.split("## Research questions")[1].split("## Generations")[0]
    assert "saturation point is Rank 16" in rq
    assert "exact permutation p=0.333" in rq or "exact permutation p=0.667" in rq  # 3 configs: p >= 1/3
    for n in (3, 4, 5):
        assert f"RQ{n}:" in rq
    assert rq.count("Not addressed by this experiment (it has no data.train_size axis)") == 3
    assert rq.count("Not addressed by this experiment (it has no data.language axis)") == 3


def test_html_is_self_contained_and_escaped(rank_report):
    _, html = rank_report
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert html.count('src="data:image/png;base64,') == 3  # results, stubs, cost
    assert html.count('<details class="sample">') == 72  # 3 runs x 24 items
    assert "return (a -" in html and "if a &gt; b:" in html  # code is escaped, not interpreted


def test_scale_axis_answers_hello_world_and_language_is_unpaired(tmp_path, fabricate):
    scale = [
        (f"Size {n}", kinds, {"data": {"train_size": n}})
        for n, kinds in ((50, ["stub"] * 10 + ["good"] * 10), (300, ["good"] * 16 + ["broken"] * 4))
    ]
    exp = fabricate.make_experiment(tmp_path / "scale", scale)
    md = write_report(exp)[0].read_text(encoding="utf-8")
    rq3 = md.split("### RQ3")[1].split("### RQ4")[0]
    assert "Hello-World effect" in rq3 and "significant at α=0.05" in rq3
    assert "Mean cyclomatic complexity generated/reference" in rq3
    assert "RQ1: Is there a saturation point for LoRA rank?\n\nNot addressed by this experiment" in md

    lang = [(f"{lang}", ["good"] * 8 + ["broken"] * 4, {"data": {"language": lang}}) for lang in ("python",)]
    lang.append(("python-other", ["good"] * 6 + ["stub"] * 8, {"data": {"language": "python", "train_size": 7}}))
    runs = load_runs(fabricate.make_experiment(tmp_path / "lang", lang))
    a, b = group_configs(runs)
    c = compare(a, b, "Syntax_Pass_Rate")
    # different test sets (12 vs 14 items): unpaired bootstrap and Fisher's exact test
    assert not c.paired and c.test == "Fisher exact"


def test_multi_seed_headline_shows_mean_and_sd(tmp_path, fabricate):
    exp = fabricate.rank_experiment(tmp_path / "seeds", n=12, seeds=(0, 1))
    md = write_report(exp)[0].read_text(encoding="utf-8")
    assert "mean ± sd over seeds" in md and "± 0.00" in md
    assert "items pooled over 2 seeds" in md


def test_spearman_exact_small_sample():
    rho, p = spearman_exact([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert rho == pytest.approx(1.0) and p == pytest.approx(2 / 6)


def test_no_finished_runs_is_a_codetune_error(tmp_path):
    (tmp_path / "exp" / "run-1").mkdir(parents=True)
    with pytest.raises(CodetuneError, match="no finished runs"):
        write_report(tmp_path / "exp")
    with pytest.raises(CodetuneError, match="no experiment directory"):
        write_report(tmp_path / "missing")


def _cmp(a, b, metric, diff, p):
    from codetune.reporting.comparison import Comparison

    return Comparison(a, b, metric, diff, (diff - 0.2, diff + 0.2), p, "paired bootstrap", 100, True, 0.5)


def test_rq1_names_no_saturation_point_when_the_step_to_it_is_not_significant(monkeypatch):
    """Rank 64 beats Rank 4, but Rank 16 differs from neither: no saturation point may be claimed."""
    from types import SimpleNamespace

    from codetune.reporting import study

    monkeypatch.setattr(study, "values_line", lambda ordered, metric, level=None: None)
    monkeypatch.setattr(study, "_functional_metrics", lambda runs: [])
    ordered = [SimpleNamespace(label=f"Rank {r}") for r in (4, 16, 64)]
    comparisons = [
        _cmp("Rank 16", "Rank 4", "BLEU", 0.06, 0.68),
        _cmp("Rank 64", "Rank 16", "BLEU", 0.20, 0.16),
        _cmp("Rank 64", "Rank 4", "BLEU", 0.26, 0.047),
    ]
    answer = study._rq1(ordered, [], comparisons, "lora.r")[-1]
    assert answer.startswith("Answer: the data cannot locate a saturation point")
    assert "Rank 64 − Rank 4" in answer

    comparisons[0] = _cmp("Rank 16", "Rank 4", "BLEU", 0.5, 0.01)  # now the step to Rank 16 is real
    answer = study._rq1(ordered, [], comparisons, "lora.r")[-1]
    assert "the measured saturation point is Rank 16" in answer
