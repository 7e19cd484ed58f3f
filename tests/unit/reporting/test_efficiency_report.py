"""The report's efficiency section: one row per run from the `eff_*` figures a run's efficiency stage wrote
(here computed by `efficiency.summarize` from hand-made measurement records), an unmeasured run says why,
and a report of runs without the stage has no section."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from codetune.evaluation.efficiency import Settings, settings_text, summarize


def _rec(task, ratio, kind="sample", **kw):
    return {"task_id": task, "kind": kind, "status": "ok", "ratio": ratio, "spread": 0.05, "pinned": 1, **kw}


RECORDS = [
    _rec("HumanEval/0", 1.0, kind="self"),
    _rec("HumanEval/0", 2.0, mem_ratio=1.0, agrees=True),
    _rec("HumanEval/1", 1.0, kind="self"),
    _rec("HumanEval/1", 32.0, mem_ratio=4.0, agrees=False),
]


@pytest.fixture(scope="module")
def eff_exp(tmp_path_factory, fabricate):
    from codetune.reporting.report import write_report

    exp = fabricate.make_experiment(
        tmp_path_factory.mktemp("eff") / "eff",
        [("Rank 4", ["good", "close"], {"lora": {"r": 4}}), ("Rank 8", ["good", "close"], {"lora": {"r": 8}})],
        grid={"lora.r": [4, 8]},
    )
    figures = {**summarize(RECORDS, n_boot=200), "eff_settings": settings_text(Settings()), "eff_resumed": 0}
    for run_dir in sorted(p for p in Path(exp).iterdir() if (p / "metrics.json").is_file()):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        extra = figures if metrics["Configuration"] == "Rank 4" else {"eff_note": "no benchmark (not run)"}
        (run_dir / "metrics.json").write_text(json.dumps({**metrics, **extra}))
    write_report(exp)
    return exp


def _section(exp: Path) -> str:
    md = (exp / "report.md").read_text(encoding="utf-8")
    return md.split("## Efficiency of passing code\n")[1].split("\n## ")[0]


def _row(text: str, first: str) -> list[str]:
    (line,) = [x for x in text.splitlines() if x.startswith(f"| {first}")]
    return [c.strip() for c in line.strip("|").split("|")]


def test_one_row_per_run_with_ratio_slow_tasks_noise_and_memory(eff_exp):
    text = _section(eff_exp)
    cells = _row(text, "Rank 4")
    assert cells[1] == "2 of 2" and cells[2] == "2"
    assert cells[3].startswith(f"{math.sqrt(64):.2f} [")  # geometric mean of 2 and 32 over two tasks
    assert cells[4] == "1: HumanEval/1"
    assert cells[5].startswith(f"{math.sqrt(4):.2f}")  # memory: 1 and 4
    assert cells[6].startswith("1.00 [1.00, 1.00]; 1.00-1.00")  # canonical vs itself and its band
    assert cells[7] == "0.050 (canonical 0.050)" and cells[8] == "0 / 0 / 1"
    assert "top 3 inputs, 6 rounds, >= 10 ms a timing, timeout at 100x, not pinned" in text


def test_an_unmeasured_run_says_why(eff_exp):
    cells = _row(_section(eff_exp), "Rank 8")
    assert cells[1] == "n/a" and cells[3] == "no benchmark (not run)"


def test_a_report_without_the_stage_has_no_section(base_exp):
    assert "Efficiency of passing code" not in (base_exp / "report.md").read_text(encoding="utf-8")
