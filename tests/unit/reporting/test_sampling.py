"""The scale preset's sampling axis (random cells keep their labels, directories and ids) and the report's
stratified-vs-random section on a tiny fabricated grid (exact McNemar with hand-counted discordant tasks)."""

from __future__ import annotations

from pathlib import Path

from codetune.config import expand_grid, load_experiment
from codetune.data.records import CodeSample, write_jsonl

P, W = "passed", "wrong_answer"
# Ten benchmark tasks per run. Size 50: stratified passes tasks 2-7 that random fails (b = 6), random passes
# none that stratified fails (c = 0): exact McNemar p = 2 * 0.5**6 = 0.03125. Size 150: b = 1 (task 5),
# c = 1 (task 4): p = 1.
TASKS = {
    (50, "random"): [P, P] + [W] * 8,
    (50, "stratified"): [P] * 8 + [W] * 2,
    (150, "random"): [P] * 5 + [W] * 5,
    (150, "stratified"): [P] * 4 + [W, P] + [W] * 4,
}
OLD_SCALE = """
name: scale
label: "Size {data.train_size}"
base:
  data: {language: python, test_size: 100}
  lora: {r: 16, alpha: 32, dropout: 0.1}
  train: {epochs: 3, lr: 1.0e-4}
grid:
  data.train_size: [50, 150, 300]
"""


def test_scale_preset_adds_stratified_cells_and_keeps_the_random_ones(tmp_path):
    old_path = tmp_path / "old_scale.yaml"
    old_path.write_text(OLD_SCALE)
    old = expand_grid(load_experiment(str(old_path)))
    new = expand_grid(load_experiment("scale"))
    assert load_experiment("scale").grid == {
        "data.train_size": [50, 150, 300],
        "data.sampling": ["random", "stratified"],
    }
    random = [s for s in new if s.config.data.sampling == "random"]
    # The base row and the three random cells: the same label, run id and directory as before the axis.
    assert [(s.label, s.run_id, s.dirname) for s in random] == [(s.label, s.run_id, s.dirname) for s in old]
    stratified = [s for s in new if s.config.data.sampling == "stratified"]
    assert [s.label for s in stratified] == ["Size 50, stratified", "Size 150, stratified", "Size 300, stratified"]
    assert len({s.run_id for s in new}) == 7 and sum(s.config.baseline for s in new) == 1


def _grid(tmp_path: Path, fabricate) -> Path:
    runs = []
    for (size, sampling), tasks in TASKS.items():
        label = f"Size {size}" + ("" if sampling == "random" else f", {sampling}")
        overrides = {"data": {"train_size": size, "sampling": sampling}}
        runs.append((label, ["good"] * 4 + ["close"] * 2, overrides, {"bench": tasks}))
    exp = fabricate.make_experiment(
        tmp_path / "scale", runs, grid={"data.train_size": [50, 150], "data.sampling": ["random", "stratified"]}
    )
    # Training items of the Size 50 pair: stratified holds the more complex functions.
    for label, values in (("size-50", [1, 1, 2, 1]), ("size-50-stratified", [1, 3, 5, 7])):
        run_dir = next(d for d in exp.iterdir() if d.name.rsplit("-", 1)[0] == label)
        items = [
            CodeSample(f"i{k}", "python", "", "", "x.py", 1, "f", complexity={"cyclomatic": v})
            for k, v in enumerate(values)
        ]
        write_jsonl(run_dir / "train.jsonl", items)
    return exp


def test_report_pairs_each_stratified_cell_with_its_random_twin(tmp_path, fabricate):
    from codetune.reporting.report import build_report

    blocks = build_report(_grid(tmp_path, fabricate))
    i = blocks.index(("h2", "Stratified vs random sampling"))
    table = blocks[i + 2]
    assert table[0] == "table"
    rows = {(r[0], r[1]): r for r in table[2]}
    small = rows[("Size 50, stratified vs Size 50", "pass@1 %")]
    assert small[4].startswith("+60.00 [") and small[5] == "0.031" and small[6].startswith("exact McNemar")
    assert "discordant 6/0" in small[6] and small[7] == "significant"
    large = rows[("Size 150, stratified vs Size 150", "pass@1 %")]
    assert large[4].startswith("+0.00") and large[5] == "1.000" and large[7].startswith("not significant")
    # The corpus metrics are paired on the same test items too (identical completions: no difference).
    assert rows[("Size 50, stratified vs Size 50", "BLEU")][4].startswith("+0.00")
    texts = [b[1] for b in blocks[i + 3 : i + 6]]
    assert texts[0].startswith("Size 50, stratified vs Size 50: the samples differ in pass@1")
    assert texts[1].startswith(
        "Size 150, stratified vs Size 150: the samples do not differ significantly in pass@1"
    )
    assert "No significant difference in BLEU" in texts[0]
    assert "Size 50 1.25 ± 0.50 (n=4)" in texts[2] and "Size 50, stratified 4.00 ± 2.58 (n=4)" in texts[2]
    assert "Size 150 n/a (no train.jsonl)" in texts[2]


def test_no_sampling_axis_no_section(base_exp):
    assert "Stratified vs random" not in (base_exp / "report.md").read_text()


def test_the_study_answers_along_size_hold_the_sampling_axis(tmp_path, fabricate):
    """RQ3-RQ5 compare steps of data.train_size: with a sampling axis too, only the random cells (the grid's
    first value), never "Size 50, stratified" against "Size 150"."""
    from codetune.reporting.report import build_report

    blocks = build_report(_grid(tmp_path, fabricate))
    i = blocks.index(("h3", next(b[1] for b in blocks if b[0] == "h3" and b[1].startswith("RQ3"))))
    j = next(k for k in range(i + 1, len(blocks)) if blocks[k][0] in ("h2", "h3"))
    texts = [b[1] for b in blocks[i + 1 : j] if isinstance(b[1], str)]
    assert texts[0].startswith("Along data.train_size with data.sampling=random")
    assert not any("stratified" in t for t in texts[1:])
