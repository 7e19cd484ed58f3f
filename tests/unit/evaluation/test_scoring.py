"""score_run: per-sample CodeBLEU/stub/complexity fields and per-run CIs, on hand-written completions."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import sacrebleu

from codetune.config import RunConfig, RunSpec
from codetune.data.records import CodeSample
from codetune.evaluation.scoring import score_run

PROMPT = 'def f(a, b):\n    """Doc."""\n'
REF = "    if a > b:\n        return a\n    return b\n"
COMPLETIONS = [REF, "    pass\n", "    return (a +\n", "    return a if a > b else b\n"]


def _score(tmp_path, completions, n_boot=300, ci_level=0.95):
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = RunConfig.model_validate({"eval": {"n_boot": n_boot, "ci_level": ci_level}})
    spec = RunSpec(run_id="r1", label="Rank 16", axes={}, config=cfg)
    test = [
        CodeSample(
            id=f"i{i}",
            language="python",
            prompt=PROMPT,
            target=REF,
            source="x.py",
            line=1,
            name="f",
            complexity={},
        )
        for i in range(len(completions))
    ]
    gens = [
        {"index": i, "sample": 0, "completion": c, "stop": "function_end", "n_new_tokens": 3}
        for i, c in enumerate(completions)
    ]
    tres = SimpleNamespace(
        train_time_s=1.0,
        tokens_per_s=10.0,
        steps=1,
        losses=[1.0],
        forward="peft",
        workers=1,
        real_tokens=12,
        trainable_params=64,
    )
    metrics = score_run(cfg, spec, test, gens, tres, tmp_path)
    records = [json.loads(x) for x in (tmp_path / "generations.jsonl").read_text().splitlines()]
    return metrics, records


def test_per_sample_fields(tmp_path):
    _, recs = _score(tmp_path, COMPLETIONS)
    assert [r["trivial"] for r in recs] == [False, True, False, False]
    assert [r["syntax_status"] for r in recs] == ["valid", "valid", "invalid", "valid"]
    assert recs[0]["codebleu"] == pytest.approx(100.0)
    assert recs[0]["gen_cyclomatic"] == recs[0]["ref_cyclomatic"] == 2
    assert (
        recs[1]["gen_cyclomatic"] == 1 and recs[1]["gen_nloc"] == 2 and recs[1]["ref_nloc"] == 4
    )  # docstring lines are not code
    assert all(r["gen_tokens"] > 0 and r["ref_tokens"] > 0 for r in recs)
    assert "exec_status" not in recs[0]


def test_run_metrics_and_intervals(tmp_path):
    m, _ = _score(tmp_path, COMPLETIONS)
    assert m["BLEU"] == pytest.approx(sacrebleu.corpus_bleu(COMPLETIONS, [[REF] * 4]).score, abs=1e-3)
    assert m["Syntax_Pass_Rate"] == 75.0 and m["trivial_rate"] == 25.0
    for key in ("BLEU", "CodeBLEU", "Syntax_Pass_Rate", "trivial_rate"):
        assert m[f"{key}_ci_low"] <= m[key] <= m[f"{key}_ci_high"], key
    assert m["Syntax_Pass_Rate_ci_low"] < m["Syntax_Pass_Rate_ci_high"]
    assert 0 < m["CodeBLEU"] < 100
    assert m["mean_ref_cyclomatic"] == 2 and m["mean_gen_cyclomatic"] == pytest.approx(1.5)
    assert "pass@1" not in m and not any(k.startswith("exec_") for k in m)


def test_unmeasured_syntax_rate_has_no_interval(tmp_path, monkeypatch):
    from codetune.evaluation import syntax

    def unavailable(lang, snippets, level="parse", **kw):
        return [
            SimpleNamespace(status="unavailable", level=level, message="no toolchain", line=None) for _ in snippets
        ]

    monkeypatch.setattr(syntax, "check_snippets", unavailable)
    m, _ = _score(tmp_path, COMPLETIONS)
    assert m["Syntax_Pass_Rate"] is None
    assert "Syntax_Pass_Rate_ci_low" not in m


def test_n_boot_and_ci_level_are_validated():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        RunConfig.model_validate({"eval": {"n_boot": 0}})
    with pytest.raises(ValidationError):
        RunConfig.model_validate({"eval": {"ci_level": 1.5}})


def test_codebleu_reads_bodies_as_statements():
    from codetune.evaluation.scoring import codebleu_text

    assert codebleu_text("    x = 1\n    return x\n", "python") == "x = 1\nreturn x\n"
    assert codebleu_text("    int y = 2;\n    return y;\n}\n", "java") == "int y = 2;\nreturn y;\n"


def test_codebleu_survives_generated_code_that_once_crashed_its_dataflow():
    from codetune.evaluation.codebleu import per_sample_codebleu

    hyp = (
        "    if self.instance.is_open:\n        self.instance.close()\n    else:\n        self.instance.close()\n"
    )
    ref = "    try:\n        typ, dat = self._simple_command('CLOSE')\n    finally:\n        self.state = 'AUTH'\n    return typ, dat\n"
    (res,) = per_sample_codebleu([hyp], [ref], "python")  # indented bodies parse as ERROR trees
    assert 0 <= res.codebleu <= 1


def test_records_carry_the_metric_statistics_and_metrics_the_interval_settings(tmp_path):
    from codetune.evaluation.scoring import stats_of_records
    from codetune.evaluation.uncertainty import bleu_item_stats

    m, recs = _score(tmp_path, COMPLETIONS, n_boot=150)
    assert (m["ci_level"], m["n_boot"]) == (0.95, 150)
    expected, _ = bleu_item_stats(COMPLETIONS, [REF] * 4)
    assert [r["bleu_stats"] for r in recs] == expected.astype(int).tolist()
    assert all(len(r["codebleu_stats"]) == len(recs[0]["codebleu_stats"]) > 10 for r in recs)
    # Read back from the records or recomputed from their text: the same numbers.
    stored = stats_of_records(recs, "python")
    bare = stats_of_records([{k: v for k, v in r.items() if not k.endswith("_stats")} for r in recs], "python")
    assert (stored["bleu_stats"] == bare["bleu_stats"]).all()
    assert (stored["codebleu_stats"] == bare["codebleu_stats"]).all()
    assert stored["bleu"] == pytest.approx(bare["bleu"], abs=1e-12)
    assert stored["codebleu"] == pytest.approx(bare["codebleu"], abs=1e-12)


def test_ci_level_sets_the_run_intervals(tmp_path):
    wide, _ = _score(tmp_path / "a", COMPLETIONS * 3)
    narrow, _ = _score(tmp_path / "b", COMPLETIONS * 3, ci_level=0.9)
    assert narrow["ci_level"] == 0.9
    assert wide["BLEU_ci_low"] < narrow["BLEU_ci_low"] <= narrow["BLEU_ci_high"] < wide["BLEU_ci_high"]


def test_evaluation_and_stats_import_nothing_from_reporting():
    import re
    from pathlib import Path

    import codetune

    root = Path(codetune.__file__).parent
    for sub in ("evaluation", "stats"):
        for path in (root / sub).rglob("*.py"):
            assert not re.search(r"^\s*(from|import) codetune\.reporting", path.read_text(), re.M), path
