"""RQ2 per benchmark task (sentence BLEU of each sample vs its pass/fail) and RQ3-RQ5 on pass@1."""

from __future__ import annotations

import numpy as np
import pytest

from codetune.reporting.analysis import load_experiment
from codetune.reporting.benchmark import bleu_vs_pass, sample_bleu


def _rq(md, n):
    return md.split(f"### RQ{n}:")[1].split("### RQ")[0]


def test_bleu_vs_pass_per_sample_is_the_point_biserial_correlation(base_exp):
    exp = load_experiment(base_exp)
    bench = next(c for c in exp.configs if c.label == "Rank 16").runs[0].bench
    bleu = sample_bleu(bench)
    flags = np.array([s["status"] == "passed" for s in bench.samples], dtype=float)
    res = bleu_vs_pass([bench])
    assert res["status"] == "ok" and (res["n"], res["n_pass"], res["n_fail"], res["n_tasks"]) == (10, 8, 2, 10)
    assert res["r"] == pytest.approx(np.corrcoef(bleu, flags)[0, 1])
    assert res["pass_bleu"] == pytest.approx(100.0)  # a passing sample is the canonical solution here
    assert res["fail_bleu"] == pytest.approx(bleu[flags == 0].mean()) and res["fail_bleu"] < 100.0


def test_rq2_answers_per_task_and_across_configurations(base_exp):
    rq2 = _rq((base_exp / "report.md").read_text(encoding="utf-8"), 2)
    assert "Base model: per benchmark sample, sentence BLEU against the canonical solution vs pass/fail" in rq2
    assert "over 10 samples of 10 tasks" in rq2 and "mean BLEU 100.00 for the 8 passing vs" in rq2
    assert "Rank 64: pass@1 not measured (the run has no benchmark stage" in rq2
    # Corpus BLEU vs pass@1 over the base row, Rank 4 and Rank 16: 3 points, smallest exact p is 1/3.
    assert "Spearman ρ(corpus BLEU, pass@1 %)" in rq2 and "over 3 configurations" in rq2
    assert "not significant at this sample size (3 configurations)" in rq2
    assert "Answer: per benchmark task, BLEU tracks pass/fail" in rq2


def test_rq2_says_not_significant_at_a_small_sample(tmp_path, fabricate):
    P, W, S = "passed", "wrong_answer", "syntax_error"
    exp = fabricate.make_experiment(
        tmp_path / "small",
        [
            ("Rank 4", ["good"] * 3, {"lora": {"r": 4}}, {"bench": [P, W, S]}),
            ("Rank 8", ["good"] * 3, {"lora": {"r": 8}}, {"bench": [P, P, W]}),
        ],
        grid={"lora.r": [4, 8]},
    )
    from codetune.reporting.report import write_report

    rq2 = _rq(write_report(exp)[0].read_text(encoding="utf-8"), 2)
    # Sentence BLEU 100 (passing), 14.4 (wrong answer), 44.2 (syntax error): r=+0.94 over 3 samples, p=0.22.
    assert "Rank 4: per benchmark sample" in rq2 and "r=+0.94, p=0.223 over 3 samples" in rq2
    assert "not significant at this sample size (n=3 samples)" in rq2
    assert "only 2 points, too few for a correlation" in rq2


def test_rq2_without_bleu_stats_says_so(tmp_path, fabricate):
    exp = tmp_path / "nobleu"
    a = fabricate.make_run(exp, "Rank 4", ["good"] * 3, {"lora": {"r": 4}})
    fabricate.write_benchmark(exp / a.dirname, ["passed", "wrong_answer", "passed"], bleu=False)
    res = bleu_vs_pass([load_experiment(exp).runs[0].bench])
    assert res == {"status": "no_bleu"}


def test_rq3_to_rq5_use_pass_at_1_per_task(tmp_path, fabricate):
    P, W, S = "passed", "wrong_answer", "syntax_error"
    runs = [
        (
            "Size 50",
            ["stub"] * 4 + ["good"] * 4,
            {"data": {"train_size": 50}},
            {"bench": [S, S, W, W, W, P, W, W]},
        ),
        ("Size 300", ["good"] * 8, {"data": {"train_size": 300}}, {"bench": [P, P, P, P, P, P, P, W]}),
    ]
    from codetune.reporting.report import write_report

    md = write_report(fabricate.make_experiment(tmp_path / "scale", runs, grid={"data.train_size": [50, 300]}))[0]
    md = md.read_text(encoding="utf-8")
    rq3 = _rq(md, 3)
    # 6 tasks passed only by Size 300, none only by Size 50: p = 2 / 2**6.
    assert "pass@1 %: Size 300 − Size 50 = +75.00" in rq3 and "p=0.031 (exact McNemar)" in rq3
    assert "pass@1 %: the smallest size not significantly worse" in _rq(md, 4)
    assert (
        "On the benchmark, syntax errors among the non-passing samples: Size 50 2 of 7; Size 300 0 of 1."
        in _rq(md, 5)
    )
