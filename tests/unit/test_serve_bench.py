"""benchmarks/serve_bench.py: its percentiles, summaries, report and probes, and its naive server and openai-client
driver end to end on a tiny random model (figures are printed by the benchmark, never asserted here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("serve_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass resolves annotations through sys.modules
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop(spec.name, None)


def test_percentile_interpolates_linearly_between_order_statistics(bench):
    assert bench.percentile([], 50) is None
    assert bench.percentile([7.0], 95) == 7.0
    assert bench.percentile([3.0, 1.0, 4.0, 2.0], 50) == pytest.approx(2.5)
    # 20 values 1..20: p95 sits at rank 0.95 * 19 = 18.05 (0-based), between 19 and 20
    assert bench.percentile([float(x) for x in range(20, 0, -1)], 95) == pytest.approx(19.05)
    assert bench.percentile([1.0, 2.0, 3.0], 100) == 3.0 and bench.percentile([1.0, 2.0, 3.0], 0) == 1.0


def _rec(bench, c, i, ttft, lat, tokens, error=None):
    return bench.RequestRecord(
        client=c, index=i, prompt=i, start_s=0.0, ttft_s=ttft, latency_s=lat, tokens=tokens, chunks=3, error=error
    )


def test_summarize_counts_tokens_over_wall_time_and_leaves_errors_out_of_the_percentiles(bench):
    recs = [
        _rec(bench, 0, 0, 0.5, 2.5, 5),  # (2.5 - 0.5) / 4 = 0.5 s/token
        _rec(bench, 0, 1, 1.0, 2.0, 5),  # 0.25
        _rec(bench, 1, 0, 0.1, 1.1, 3),  # 0.5; not max_tokens
        _rec(bench, 1, 1, None, 99.0, None, error="APIError: boom"),
    ]
    run = {"wall_s": 4.0, "records": recs, "engine_steps": 5, "max_rows_in_step": 2, "cpu_s": 3.0}
    s = bench.summarize(run, max_tokens=5)
    assert s["requests"] == 4 and s["errors"] == 1 and s["first_error"] == "APIError: boom"
    assert s["tokens"] == 13 and s["tok_per_s"] == pytest.approx(13 / 4)
    assert s["not_max_tokens"] == 1 and s["no_text"] == 0
    assert s["ttft_p50"] == pytest.approx(0.5) and s["latency_p50"] == pytest.approx(2.0)
    assert s["latency_p95"] == pytest.approx(2.0 + 0.9 * 0.5)  # rank 1.9 of [1.1, 2.0, 2.5]
    assert s["decode_s_per_token_p50"] == pytest.approx(0.5)
    # 13 tokens, 3 of them from the three prefills: 10 rows over 5 decoding steps
    assert s["rows_per_step"] == pytest.approx(2.0) and s["max_rows_in_step"] == 2 and s["cpu_s"] == 3.0


def test_merge_runs_joins_a_levels_halves_as_if_measured_in_one_go(bench):
    a = {"wall_s": 2.0, "records": [_rec(bench, 1, 0, 0.1, 1.0, 5), _rec(bench, 0, 0, 0.1, 1.0, 5)], "cpu_s": 1.0}
    b = {"wall_s": 3.0, "records": [_rec(bench, 0, 1, 0.2, 2.0, 5)], "cpu_s": 2.0}
    a.update(engine_steps=4, max_rows_in_step=2, idle_cpu_s=0.0, client_cpu_s=0.1)
    b.update(engine_steps=6, max_rows_in_step=3, idle_cpu_s=0.5, client_cpu_s=0.2)
    m = bench.merge_runs([a, b])
    assert [(r.client, r.index) for r in m["records"]] == [(0, 0), (0, 1), (1, 0)]
    assert m["wall_s"] == 5.0 and m["cpu_s"] == 3.0 and m["engine_steps"] == 10 and m["max_rows_in_step"] == 3
    assert m["idle_cpu_s"] == 0.5 and m["client_cpu_s"] == pytest.approx(0.3)
    del b["engine_steps"]  # the naive server has no counters
    assert bench.merge_runs([a, b])["engine_steps"] is None
    assert bench.summarize(m, max_tokens=5)["tok_per_s"] == pytest.approx(15 / 5.0)


def _summary(tok_per_s, lat95, ttft95=0.2, per_token=0.05, errors=0):
    return {
        "requests": 20, "errors": errors, "first_error": "APIError: x" if errors else None, "tokens": 1280,
        "not_max_tokens": 0, "no_text": 0, "wall_s": 10.0, "tok_per_s": tok_per_s, "ttft_p50": 0.1,
        "ttft_p95": ttft95, "latency_p50": lat95 / 2, "latency_p95": lat95, "decode_s_per_token_p50": per_token,
        "chunks_per_request": 64.0, "prompt_tokens_mean": 150.0, "engine_steps": None, "rows_per_step": None,
        "max_rows_in_step": None, "cpu_s": 18.0, "idle_cpu_s": 0.01, "client_cpu_s": 0.5,
    }  # fmt: skip


def _raw(server, latencies, ttft=0.3, tokens=64):
    """One server's 1-client part: prompt i answered in latencies[i] seconds."""
    records = [
        {"client": 0, "index": i, "latency_s": lat, "ttft_s": ttft, "tokens": tokens, "error": None}
        for i, lat in enumerate(latencies)
    ]
    return {"server": server, "clients": 1, "first": 0, "records": records}


def _result(levels, raw=None):
    opts = {
        "model": "m", "precision": "fp32", "levels": [lv["clients"] for lv in levels], "requests": 20,
        "max_tokens": 64, "serve_args": [], "cores": 2,
    }  # fmt: skip
    probe = {"weight_bytes": 538_000_000, "weight_dtype": "fp32", "bandwidth_bytes_per_s": 19.6e9}
    ready = {"naive": 20.0, "codetune": 25.0}
    res = {"options": opts, "probe": probe, "levels": levels, "ready_s": ready, "order": "naive codetune"}
    return {**res, "raw": raw or []}


def test_report_prints_every_level_the_bound_and_the_targets(bench):
    levels = [
        {
            "clients": 1,
            "naive": _summary(12.0, 6.0, per_token=0.080),
            "codetune": _summary(13.0, 5.5, per_token=0.070),
        },
        {"clients": 16, "naive": _summary(12.0, 90.0), "codetune": _summary(60.0, 20.0, errors=1)},
    ]
    levels[1]["codetune"].update(engine_steps=84, rows_per_step=15.2, max_rows_in_step=16)
    naive = [5.0 + 0.1 * (i % 7) for i in range(20)]  # prompts differ; each server sees the same prompts
    raw = [_raw("naive", naive), _raw("codetune", [x - 0.05 for x in naive])]
    lines = bench.report(_result(levels, raw))
    text = "\n".join(lines)
    rows = [line.split() for line in lines if line.split()[:2] in (["1", "naive"], ["16", "codetune"])]
    assert len(rows) == 2 and rows[1][-2:] == ["15.2", "(16)"] and rows[0][-1] == "-"
    # 538 MB / 19.6 GB/s = 27.4 ms per token; codetune's single stream at 70 ms is 2.6x that
    assert "538 MB / 19.6 GB/s = 27.4 ms/token" in text
    assert "single stream, codetune: 70.0 ms/token (14.3 tokens/s) = 2.6x the bound" in text
    assert "[PASS] 16 clients: aggregate tokens/s >= 4x the naive server's: 5.0x (60.0 vs 12.0)" in text
    assert "[PASS] 16 clients: p95 latency lower than the naive server's: 20.00s vs 90.00s" in text
    # codetune 0.05 s faster on every prompt: the paired interval is that difference, well below +5%
    assert "[PASS] 1 client: latency_s no worse than the naive server (paired over 20 prompts" in text
    assert "-0.0500 s (-0.9%)" in text and "[PASS] 1 client: decode_s_per_token no worse" in text
    assert "point estimates at 1 client: 13.0 vs 12.0 tokens/s" in text
    assert "note: codetune at 16 clients: 1 errors, first: APIError: x" in text
    assert "text chunks per request: naive 64.0, codetune 64.0" in text
    assert "prompts: 150 tokens per request on average" in text

    levels[1]["codetune"] = _summary(40.0, 95.0)
    levels[0]["codetune"] = _summary(11.0, 5.5)
    raw = [_raw("naive", naive), _raw("codetune", [1.1 * x for x in naive])]  # 10% slower on every prompt
    text = "\n".join(bench.report(_result(levels, raw)))
    assert "[MISS] 16 clients: aggregate tokens/s >= 4x the naive server's: 3.3x" in text
    assert "[MISS] 16 clients: p95 latency lower" in text
    assert "[MISS] 1 client: latency_s no worse" in text and "(+10.0%)" in text

    # noisy and small: a point estimate near 0 whose interval reaches past +5% is not shown to be no worse
    noisy = [x + (1.0 if i % 2 else -1.0) for i, x in enumerate(naive)]
    text = "\n".join(bench.report(_result(levels, [_raw("naive", naive), _raw("codetune", noisy)])))
    assert "[MISS] 1 client: latency_s no worse" in text

    # without paired prompts there is nothing to judge "no worse" on; a 1-client-only run has no top targets
    text = "\n".join(bench.report(_result(levels[:1])))
    assert "[MISS] 1 client: no worse than the naive server: no prompt was answered by both" in text
    assert "16 clients" not in text and "aggregate tokens/s >= 4x" not in text


def test_report_of_one_server_has_no_targets(bench):
    res = _result([{"clients": 1, "naive": _summary(12.0, 6.0)}])
    res["ready_s"] = {"naive": 3.0}
    text = "\n".join(bench.report(res))
    assert "naive ready in 3s" in text and "targets" not in text and "single stream, naive: 50.0 ms/token" in text


def test_probes_measure_the_served_models_weight_bytes(bench, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    fp32 = sum(p.numel() * 4 for p in {p.data_ptr(): p for p in model.parameters()}.values())
    p = bench.run_probes(str(tiny_model_dir), "fp32")
    assert p["weight_bytes"] == fp32 and p["weight_dtype"] == "fp32" and p["bandwidth_bytes_per_s"] > 0
    assert bench.run_probes(str(tiny_model_dir), "bf16")["weight_bytes"] == fp32 // 2


@pytest.mark.slow
def test_both_servers_driven_by_the_openai_client_end_to_end(bench, tiny_model_dir, tmp_path, capsys):
    """main(): the naive server and `codetune serve`, each in its own process, at 1 then 2 concurrent streaming
    clients, in halves and alternating order; every request's record, the engine's counters, the section."""
    md = tmp_path / "RESULTS.md"
    md.write_text("# Measured figures\n\n## perf\n\nkept\n")
    argv = ["--model", str(tiny_model_dir), "--levels", "1,2", "--requests", "2", "--max-tokens", "5", "--halves"]
    argv += [
        "--threads",
        "1",
        "--warmup",
        "1",
        "--no-probes",
        "--out",
        str(tmp_path / "out"),
        "--results-md",
        str(md),
    ]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "naive ready in" in printed and "codetune ready in" in printed and "targets (printed" in printed
    assert "order per level naive codetune codetune naive | codetune naive naive codetune" in printed
    res = json.loads((tmp_path / "out" / "figures.json").read_text())
    assert [(raw["server"], raw["clients"], raw["first"]) for raw in res["raw"]] == [
        ("naive", 1, 0), ("codetune", 1, 0), ("codetune", 1, 1), ("naive", 1, 1),
        ("codetune", 2, 0), ("naive", 2, 0), ("naive", 2, 1), ("codetune", 2, 1),
    ]  # fmt: skip
    for raw in res["raw"]:
        recs = raw["records"]
        # one request per client in each half; client c's request r gets prompt c * 2 + r, on both servers
        assert [(r["client"], r["index"], r["prompt"]) for r in recs] == [
            (c, raw["first"], 2 * c + raw["first"]) for c in range(raw["clients"])
        ]
        for r in recs:  # ignore_eos: every completion is exactly max_tokens, streamed
            assert r["error"] is None and r["tokens"] == 5 and r["finish_reason"] == "length", r
            assert r["chunks"] >= 1 and 0 < r["ttft_s"] <= r["latency_s"] and r["prompt_tokens"] > 0
    # the same prompts reach both servers, counted alike (usage.prompt_tokens)
    counted = {
        (raw["server"], raw["clients"], r["client"], r["index"]): r["prompt_tokens"]
        for raw in res["raw"]
        for r in raw["records"]
    }
    assert all(counted[("naive", *key[1:])] == n for key, n in counted.items())
    for lvl in res["levels"]:
        naive, ct = lvl["naive"], lvl["codetune"]
        assert naive["requests"] == ct["requests"] == 2 * lvl["clients"]
        assert naive["tokens"] == ct["tokens"] == 2 * lvl["clients"] * 5 and naive["errors"] == ct["errors"] == 0
        assert naive["cpu_s"] > 0 and ct["cpu_s"] > 0 and naive["rows_per_step"] is None
        # 4 decoding steps per request (its first token comes with the prefill); 2 clients share some steps
        assert ct["engine_steps"] * ct["rows_per_step"] == pytest.approx(2 * lvl["clients"] * 4)
        assert 1 <= ct["rows_per_step"] <= lvl["clients"] and ct["max_rows_in_step"] <= 2
    for name in ("naive", "codetune"):
        assert (tmp_path / "out" / f"{name}.log").is_file()
    text = md.read_text()
    assert "## perf\n\nkept" in text and "## serve_bench" in text and "--levels 1,2" in text
