"""benchmarks/perf.py runs its parts on a tiny random model and reports every figure and target."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parents[2] / "benchmarks" / "perf.py"


@pytest.fixture(scope="module")
def perf():
    spec = importlib.util.spec_from_file_location("perf_bench", PERF)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _opts(perf, model_dir: Path, source: Path) -> dict:
    args = perf.build_parser().parse_args(
        [
            "--model",
            str(model_dir),
            "--source",
            str(source),
            "--n-train",
            "32",
            "--steps",
            "2",
            "--seed-steps",
            "1",
            "--gen-samples",
            "4",
            "--max-new-tokens",
            "6",
            "--probe-size",
            "64",
            "--probe-reps",
            "2",
        ]
    )
    return perf.options(args)


def test_parts_in_process_and_report(perf, tiny_model_dir, source_tree):
    opts = _opts(perf, tiny_model_dir, source_tree)
    probe = perf.part_probe(opts)
    assert probe["bf16_gflops"] > 0 and probe["fp32_gflops"] > 0
    assert probe["ceiling_tokens_per_s"] == pytest.approx(probe["bf16_gflops"] * 1e9 / (4 * probe["n_params"]))

    seed = perf.part_seed(opts)
    # one step = 8 x 4 texts padded to 512: the slots are exact, real tokens are fewer
    assert seed["padded_tokens"] == 32 * 512
    assert 0 < seed["real_tokens"] < seed["padded_tokens"]
    assert seed["gen_samples"] == 4 and seed["gen_mean_new_tokens"] <= 6

    fp32 = perf.part_codetune(opts, "fp32")
    bf16 = perf.part_codetune(opts, "bf16")
    assert fp32["steps"] == 2 and len(fp32["losses"]) == 2
    assert fp32["padding_share"] < seed["padding_share"]
    assert len(fp32["items"]) == 4 and fp32["gen_mean_new_tokens"] <= 6

    for r in (seed, fp32, bf16):
        r["process_peak_rss_mb"] = r["train_peak_rss_mb"]
    results = {"options": opts, "probe": probe, "seed": seed, "train": bf16, "fp32": fp32, "bf16": bf16}
    lines: list[str] = []
    verdicts = perf.report(results, print_=lines.append)
    text = "\n".join(lines)
    assert (
        "seed-style" in text
        and "codetune (bf16, fused" in text
        and "codetune (fp32, fused" in text
        and "[quality]" in text
    )
    assert set(verdicts) == {
        "train_share_of_ceiling",
        "train_speedup_vs_seed",
        "train_peak_rss_mb",
        "gen_speedup_vs_seed",
        "quality_fp32_vs_bf16",
    }
    assert verdicts["train_speedup_vs_seed"][0] == pytest.approx(bf16["tokens_per_s"] / seed["tokens_per_s"])
    assert verdicts["train_peak_rss_mb"][1] is None  # the 3 GB target is about the default model only
    assert "bleu_diff" in results["quality"]
    json.dumps(results, default=str)


def test_main_runs_a_part_in_a_child_and_writes_json(perf, tiny_model_dir, source_tree, tmp_path, capsys):
    opts = _opts(perf, tiny_model_dir, source_tree)
    out = tmp_path / "perf.json"
    argv = [
        "--model",
        opts["model"],
        "--source",
        opts["source"],
        "--parts",
        "probe",
        "--probe-size",
        "64",
        "--json",
        str(out),
        "--results-md",
        str(tmp_path / "RESULTS.md"),
    ]
    assert perf.main(argv) == 0
    data = json.loads(out.read_text())
    assert data["probe"]["process_peak_rss_mb"] > 0
    printed = capsys.readouterr().out
    assert "[n/a ] training >= 10x seed-style" in printed
    # the printed report, as printed, is the `perf` section of RESULTS.md, stamped with the command
    md = (tmp_path / "RESULTS.md").read_text()
    assert md.startswith("# Measured figures") and "## perf\n" in md and "--parts probe" in md
    assert "[n/a ] training >= 10x seed-style" in md and "matmul probe" in md
    (tmp_path / "RESULTS.md").write_text(md + "\n## other\n\nkept\n")
    assert perf.main(argv) == 0
    again = (tmp_path / "RESULTS.md").read_text()
    assert again.count("## perf\n") == 1 and "## other" in again  # the section replaced, others kept


def test_unknown_part_is_an_error(perf, capsys):
    assert perf.main(["--parts", "probe,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err
