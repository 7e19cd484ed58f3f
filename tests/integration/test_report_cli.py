"""`codetune report` end to end on a fabricated experiment, and the HTML in a headless Chromium."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from codetune.cli import main


def _fabricate():
    path = Path(__file__).parents[1] / "unit" / "reporting" / "_fabricate.py"
    spec = importlib.util.spec_from_file_location("_codetune_fabricate_cli", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return _fabricate().rank_experiment(tmp_path_factory.mktemp("cli") / "rank", n=16, with_exec=True)


def test_report_command_writes_both_files(experiment, capsys):
    assert main(["report", str(experiment)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {experiment / 'report.md'}" in out and f"wrote {experiment / 'report.html'}" in out
    md = (experiment / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# Experiment report: rank") and "## Pairwise comparisons" in md


def test_report_on_a_directory_without_runs_is_one_error_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no finished runs") and "codetune run empty" in err[0]


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(experiment, headless_chromium):
    if not (experiment / "report.html").is_file():
        assert main(["report", str(experiment)]) == 0
    url = (experiment / "report.html").resolve().as_uri()
    errors: list[str] = []
    requests: list[str] = []
    with headless_chromium() as browser:
        page = browser.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda req: requests.append(req.url))
        page.goto(url, wait_until="load")
        n_tables = page.locator("table").count()
        headline_rows = page.locator("h2:has-text('Headline') + p + table tbody tr").count()
        images = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
        )
        first = page.locator("details.sample").first
        assert not first.evaluate("d => d.open")
        first.locator("summary").click()
        opened = first.evaluate("d => d.open")
        completion_visible = first.locator("pre").nth(2).is_visible()
        n_samples = page.locator("details.sample").count()
    assert errors == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests  # nothing fetched from outside
    # headline, runs, Pareto-optimal configurations, comparisons, benchmark taxonomy, corpus syntax counts
    assert n_tables == 6 and headline_rows == 3
    assert len(images) == 3 and all(ok and w > 100 and h > 100 for ok, w, h in images)  # results, stubs, cost
    assert opened and completion_visible and n_samples == 3 * 16
