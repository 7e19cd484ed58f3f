"""The cost figure: pass@1 against training cost, the Pareto front, and the table of optimal configurations."""

from __future__ import annotations

import pytest

from codetune.reporting.analysis import load_experiment
from codetune.reporting.cost import cost_metric, cost_of, cost_table, pareto_front


def test_pareto_front_keeps_what_nothing_beats_on_both():
    # (cost, value): (10, 15) is beaten by (5, 20); (20, 30) costs most but is best; (0, 10) is free.
    assert pareto_front([(0, 10), (5, 20), (10, 15), (20, 30)]) == [0, 1, 3]
    assert pareto_front([(5, 20), (5, 20), (6, 20)]) == [0, 1]  # equal points both stay; (6, 20) is beaten
    assert pareto_front([(3, 50), (1, 10), (2, 10)]) == [1, 0]  # in increasing cost
    assert pareto_front([]) == []


def test_pareto_membership_per_cost(base_exp):
    exp = load_experiment(base_exp)
    table = cost_table(exp, exp.level)
    assert table["metric"] == "pass@1"
    on = table["optimal"]
    # Base: 0 cost, 30%. Rank 4: costs more than the base and passes less (20%): on no front.
    # Rank 16: 80%, the best: on every front. Rank 64: no pass@1, so on no panel.
    assert on["Base model"] == ["train_time_s", "train_tokens", "trainable_params", "n_train"]
    assert on["Rank 16"] == ["train_time_s", "train_tokens", "trainable_params", "n_train"]
    assert on["Rank 4"] == [] and on["Rank 64"] == []


def test_costs_of_the_base_row_are_zero_and_tokens_fall_back_to_the_rate(base_exp):
    exp = load_experiment(base_exp)
    by = {c.label: c for c in exp.configs}
    assert [cost_of(by["Base model"], k) for k in ("train_time_s", "trainable_params", "n_train")] == [0.0] * 3
    assert cost_of(by["Rank 16"], "trainable_params") == 16000.0
    # Rank 64 recorded no train_tokens: rate (100 tok/s) x time (1.5 s); no trainable_params at all.
    assert cost_of(by["Rank 64"], "train_tokens") == pytest.approx(150.0)
    assert cost_of(by["Rank 64"], "trainable_params") is None


def test_cost_png_is_written_embedded_and_linked(base_exp):
    png = base_exp / "cost.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (base_exp / "report.md").read_text(encoding="utf-8")
    assert "![pass@1 % against training cost, Pareto front marked](cost.png)" in md
    table = md.split("### Pareto-optimal configurations")[1].split("## Pairwise")[0]
    labels = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")][1:]
    assert labels == ["Base model", "Rank 16"]
    html = (base_exp / "report.html").read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == 3  # results, stubs, cost


def test_without_pass_at_1_the_cost_figure_shows_bleu(tmp_path, fabricate):
    exp = fabricate.make_experiment(
        tmp_path / "nobench",
        [("Rank 4", ["good"] * 3, {"lora": {"r": 4}}), ("Rank 8", ["stub"] * 3, {"lora": {"r": 8}})],
    )
    e = load_experiment(exp)
    assert cost_metric(e) == "BLEU"
    from codetune.reporting.cost import plot_cost

    assert plot_cost(e, tmp_path / "cost.png", e.level).is_file()


def test_a_cost_no_trained_run_recorded_is_on_no_front(tmp_path, fabricate):
    P, W = "passed", "wrong_answer"
    exp = tmp_path / "noparams"
    fabricate.make_run(exp, "Base model", ["good"] * 3, {}, [W, P, W], baseline=True)
    fabricate.make_run(exp, "Rank 8", ["good"] * 3, {"lora": {"r": 8}}, [P, P, W], cost={"n_train": 50})
    e = load_experiment(exp)
    on = cost_table(e, e.level)["optimal"]
    # Rank 8 recorded no trainable_params: that panel has no point, and nobody is optimal on it.
    assert on["Base model"] == ["train_time_s", "train_tokens", "n_train"]
    assert on["Rank 8"] == ["train_time_s", "train_tokens", "n_train"]
