"""HumanEval greedy generation + execution: codetune's `generate()` against the seed study's way and the bound.

Issue #17, item 6. In one process and one run, with the bundled model (`load_base(ModelConfig())`, offline)
on HumanEval's prompts (`load_tasks("humaneval")`), greedy, `--max-new-tokens` (256):

* seed      the seed study's way: one prompt at a time through HF `model.generate`, no batching, with the
            same stop rule (the end of the function) and the same completion cut as codetune.
* codetune  `codetune.generate.generate` at `--width` rows (refilled as they finish).
* fixed     (`--fixed-batches`) codetune's previous way: length-sorted fixed batches of `--width` through
            HF `generate`, which keeps finished rows in the batch until its last row ends.
* bound     every decoding step reads every weight once, so a step takes at least weight bytes / read
            bandwidth (measured here: the time to stream a buffer as big as the weights); the bound is
            (codetune's new tokens / width) steps x that. On a CPU a step may instead be compute-bound: the
            FLOP probe (fp32 or bf16 matmuls, as the run computes) gives the compute bound, 2 x matmul
            weights FLOPs per token (prompt tokens included) / FLOP/s.

Every pipeline's samples are executed with `codetune.evaluation.harness.evaluate_samples`; pass@1 of seed
and codetune must agree (the count of tasks whose completions differ is printed). Forward calls are
counted with hooks: steps (decoding forwards), row-steps, wasted row-steps (rows that had already
finished), prefill vs decoding time. Targets (printed, never asserted): >= 5x the seed-style time and
<= 3x the bound. The report replaces the `humaneval_bench` section of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/humaneval_bench.py                      # full: 164 tasks (seed style is slow)
    .venv/bin/python benchmarks/humaneval_bench.py --limit 16 --threads 1 --fixed-batches --out /tmp/he
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

SECTION = "humaneval_bench"


# ---------------------------------------------------------------------------------------------- probes


def weight_bytes(model: Any) -> int:
    """Bytes of the model's parameters, a tied embedding/head counted once (what a step streams)."""
    seen, total = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    return total


def matmul_params(model: Any) -> int:
    """Weights that take part in a token's matmuls: every Linear's (the LM head included), each once."""
    import torch

    seen, total = set(), 0
    for m in model.modules():
        if isinstance(m, torch.nn.Linear) and m.weight.data_ptr() not in seen:
            seen.add(m.weight.data_ptr())
            total += m.weight.numel()
    return total


def probe_bandwidth(nbytes: int, reps: int = 7) -> float:
    """Read bandwidth in bytes/s: best time to sum a buffer of `nbytes` (every byte read once)."""
    import torch

    buf = torch.ones(max(1, nbytes // 4), dtype=torch.float32)
    buf.sum()  # page it in
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        buf.sum()
        best = min(best, time.perf_counter() - t0)
    return buf.numel() * 4 / best


def probe_flops(dtype_name: str, shape: tuple[int, int, int], reps: int = 5) -> float:
    """Best matmul FLOP/s for (m x k) @ (k x n) in `dtype_name`."""
    import torch

    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    m, k, n = shape
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(2):
        a @ b
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        best = min(best, (time.perf_counter() - t0) / 4)
    return 2 * m * k * n / best


def _median(xs: list[float]) -> float | None:
    return sorted(xs)[len(xs) // 2] if xs else None


class ForwardMeter:
    """Counts and times the model's forward calls: decoding steps (one new token per row) and prefills."""

    def __init__(self, model: Any) -> None:
        self.handles = [
            model.register_forward_pre_hook(self._start, with_kwargs=True),
            model.register_forward_hook(self._end, with_kwargs=True),
        ]
        self.reset()

    def reset(self) -> None:
        self.steps = self.row_steps = self.prefills = self.prefill_tokens = 0
        self.step_s = self.prefill_s = 0.0
        self.by_width: dict[int, list[float]] = {}  # decoding step times by rows in the step

    def _start(self, module: Any, args: Any, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        self._shape, self._t0 = tuple(ids.shape), time.perf_counter()

    def _end(self, module: Any, args: Any, kwargs: dict, out: Any) -> None:
        dt = time.perf_counter() - self._t0
        rows, length = self._shape
        if length == 1:
            self.steps, self.row_steps, self.step_s = self.steps + 1, self.row_steps + rows, self.step_s + dt
            self.by_width.setdefault(rows, []).append(dt)
        else:
            self.prefills, self.prefill_tokens = self.prefills + 1, self.prefill_tokens + rows * length
            self.prefill_s += dt

    def figures(self, width: int) -> dict:
        keys = ("steps", "row_steps", "prefills", "prefill_tokens", "step_s", "prefill_s")
        return {
            **{k: getattr(self, k) for k in keys},
            "full_width_steps": len(self.by_width.get(width, [])),
            "full_width_step_s": _median(self.by_width.get(width, [])),
            "one_row_step_s": _median(self.by_width.get(1, [])),
        }

    def close(self) -> None:
        for h in self.handles:
            h.remove()


# ---------------------------------------------------------------------------------------------- pipelines


def run_seed_style(model: Any, tok: Any, prompts: list[str], cfg: Any, precision: str) -> list[Any]:
    """One prompt at a time through HF `generate` (codetune's own stop criteria and completion cut)."""
    from codetune.generate import Generation, _decode_batch, _finish, _trim_newlines

    trimmed_prompts, trimmed = _trim_newlines(prompts)
    gens = []
    for i, prompt in enumerate(trimmed_prompts):
        new = _decode_batch(model, tok, [prompt], "python", cfg, "cpu", precision, 0, i)
        gens.append(Generation(index=i, sample=0, **_finish(tok, new[0].tolist(), "python", prompt, trimmed[i])))
    return gens


def run_codetune(model: Any, tok: Any, prompts: list[str], cfg: Any, precision: str) -> list[Any]:
    from codetune.generate import generate

    out = generate(model, tok, prompts, "python", cfg, device="cpu", precision=precision, progress=False)
    return sorted((g for batch in out for g in batch), key=lambda g: g.index)


def run_fixed_batches(model: Any, tok: Any, prompts: list[str], cfg: Any, precision: str) -> list[Any]:
    """codetune's previous generation: fixed length-sorted batches through HF `generate`."""
    from codetune import decoding

    real = decoding.unsupported
    decoding.unsupported = lambda model, capacity: "benchmark: fixed batches"
    try:
        return run_codetune(model, tok, prompts, cfg, precision)
    finally:
        decoding.unsupported = real


PIPELINES = {"seed": run_seed_style, "codetune": run_codetune, "fixed": run_fixed_batches}


def measure(name: str, model: Any, tok: Any, tasks: list[Any], cfg: Any, precision: str, log: Any) -> dict:
    """Generate with one pipeline, then execute its samples: times, counts and per-task verdicts."""
    from codetune.evaluation.harness import evaluate_samples, summarize

    meter = ForwardMeter(model)
    log(f"[humaneval] {name}: generating {len(tasks)} tasks ...")
    t0 = time.perf_counter()
    try:
        gens = PIPELINES[name](model, tok, [t.prompt for t in tasks], cfg, precision)
    finally:
        meter.close()
    gen_s = time.perf_counter() - t0
    samples = [{"task_id": tasks[g.index].task_id, **g.__dict__} for g in gens]
    t0 = time.perf_counter()
    results = evaluate_samples(tasks, samples)
    exec_s = time.perf_counter() - t0
    summary = summarize(results)
    new_tokens = sum(g.n_new_tokens for g in gens)
    useful_row_steps = new_tokens - len(gens)  # a row's first token comes from its prompt's forward
    stops = {s: sum(g.stop == s for g in gens) for s in ("function_end", "eos", "max_new_tokens")}
    log(f"[humaneval] {name}: {gen_s:.1f}s generation, {exec_s:.1f}s execution")
    return {
        "gen_s": gen_s,
        "exec_s": exec_s,
        "new_tokens": new_tokens,
        "tok_per_s": new_tokens / gen_s,
        **meter.figures(cfg.batch_size),
        "wasted_row_steps": meter.row_steps - useful_row_steps,
        "stops": stops,
        "pass@1": summary["pass@k"].get("pass@1"),
        "passed": {r.task_id: r.passed for r in results},
        "samples": samples,
        "step_times": {w: list(ts) for w, ts in meter.by_width.items()},
    }


_SUMMED = (
    "gen_s", "exec_s", "new_tokens", "steps", "row_steps", "prefills", "prefill_tokens", "step_s", "prefill_s",
    "full_width_steps", "wasted_row_steps",
)  # fmt: skip


def merge(parts: list[dict], width: int) -> dict:
    """One pipeline's measurements over several task chunks (`--halves`) as if measured in one go."""
    out: dict[str, Any] = {k: sum(p[k] for p in parts) for k in _SUMMED}
    out["tok_per_s"] = out["new_tokens"] / out["gen_s"]
    out["stops"] = {s: sum(p["stops"][s] for p in parts) for s in parts[0]["stops"]}
    out["passed"] = {t: ok for p in parts for t, ok in p["passed"].items()}
    out["pass@1"] = sum(out["passed"].values()) / len(out["passed"])
    out["samples"] = [s for p in parts for s in p["samples"]]
    times: dict[int, list[float]] = {}
    for p in parts:
        for w, ts in p["step_times"].items():
            times.setdefault(w, []).extend(ts)
    out["step_times"] = times
    out["full_width_step_s"] = _median(times.get(width, []))
    out["one_row_step_s"] = _median(times.get(1, []))
    return out


# ---------------------------------------------------------------------------------------------- bound


def bounds(probe: dict, ct: dict, width: int) -> dict:
    """The bandwidth bound (issue #17: steps x weight bytes / bandwidth) and the compute bound of codetune's run."""
    step_bw_s = probe["weight_bytes"] / probe["bandwidth_bytes_per_s"]
    ideal_steps = ct["new_tokens"] / width
    flop_token = 2 * probe["matmul_params"]
    # The compute codetune's run cannot avoid: every prompt token once, every new token but each row's first
    # (that one comes from the prompt's forward) once.
    tokens = ct["prefill_tokens"] + ct["row_steps"]
    return {
        "step_bandwidth_s": step_bw_s,
        "ideal_steps": ideal_steps,
        "bandwidth_bound_s": ideal_steps * step_bw_s,
        "step_compute_s": width * flop_token / probe["flops"],
        "compute_bound_s": tokens * flop_token / probe["flops"],
        "decode_compute_bound_s": ct["row_steps"] * flop_token / probe["flops"],
    }


def run_probes(model: Any, precision: str, width: int) -> dict:
    hidden = model.config.hidden_size
    inter = getattr(model.config, "intermediate_size", 4 * hidden)
    nbytes = weight_bytes(model)
    dtype = "bf16" if precision == "bf16" else "fp32"
    return {
        "weight_bytes": nbytes,
        "matmul_params": matmul_params(model),
        "bandwidth_bytes_per_s": probe_bandwidth(nbytes),
        "flops_dtype": dtype,
        "flops": probe_flops(dtype, (1024, 1024, 1024)),
        # A decoding step's own shape: `width` rows through an MLP projection.
        "step_shaped_flops": probe_flops(dtype, (width, hidden, inter), reps=20),
    }


# ---------------------------------------------------------------------------------------------- report


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(res: dict) -> list[str]:
    """The printed figures, one list of lines (also written to RESULTS.md)."""
    o, p, ct = res["options"], res["probe"], res["codetune"]
    b = res["bounds"]
    lines = [
        f"model {o['model']} ({p['weight_bytes'] / 1e6:.0f} MB of weights, {p['matmul_params'] / 1e6:.1f}M matmul "
        f"weights), {o['n_tasks']} HumanEval tasks, greedy, max_new_tokens {o['max_new_tokens']}, width "
        f"{o['width']}, {o['precision']}, {o['threads']} threads; order {o.get('order', 'codetune first')}",
        f"probes: read bandwidth {p['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s; {p['flops_dtype']} matmul "
        f"{p['flops'] / 1e9:.0f} GFLOP/s (1024^3), {p['step_shaped_flops'] / 1e9:.0f} GFLOP/s "
        f"({o['width']}x{res['shape'][0]} @ {res['shape'][0]}x{res['shape'][1]})",
    ]
    head = (
        f"{'pipeline':28} {'gen s':>8} {'exec s':>7} {'new tok':>7} {'tok/s':>7} {'steps':>6} {'row-steps':>9} "
        f"{'wasted':>7} {'pass@1':>7}"
    )
    lines += [head, "-" * len(head)]
    names = {
        "seed": "seed style (HF, 1 at a time)",
        "fixed": "fixed batches (HF generate)",
        "codetune": "codetune generate()",
    }
    for key in ("seed", "fixed", "codetune"):
        r = res.get(key)
        if r is None:
            continue
        wasted = f"{100 * r['wasted_row_steps'] / max(1, r['row_steps']):.0f}%"
        lines.append(
            f"{names[key]:28} {r['gen_s']:>8.1f} {r['exec_s']:>7.1f} {r['new_tokens']:>7} {r['tok_per_s']:>7.1f} "
            f"{r['steps']:>6} {r['row_steps']:>9} {wasted:>7} {100 * r['pass@1']:>6.1f}%"
        )
    lines.append(
        f"codetune: {ct['steps']} decoding steps ({ct['step_s']:.1f}s, {1000 * ct['step_s'] / max(1, ct['steps']):.0f} "
        f"ms/step) + {ct['prefills']} prefills of {ct['prefill_tokens']} prompt tokens ({ct['prefill_s']:.1f}s); "
        f"stops {ct['stops']}"
    )
    if ct["full_width_steps"]:
        lines.append(
            f"codetune: {ct['full_width_steps']} steps at full width, {1000 * ct['full_width_step_s']:.0f} ms each "
            f"(median; compute bound {1000 * b['step_compute_s']:.0f} ms, bandwidth bound "
            f"{1000 * b['step_bandwidth_s']:.0f} ms)"
        )
    if ct["one_row_step_s"]:
        lines.append(f"codetune: a one-row step {1000 * ct['one_row_step_s']:.0f} ms (median)")
    lines.append(
        f"bound: {b['ideal_steps']:.0f} steps (new tokens / width; actual {ct['steps']}) x "
        f"{1000 * b['step_bandwidth_s']:.1f} ms (weights / bandwidth) = {b['bandwidth_bound_s']:.1f}s; compute: "
        f"a width-{o['width']} step needs {1000 * b['step_compute_s']:.0f} ms at the probe's GFLOP/s, the run's "
        f"tokens {b['compute_bound_s']:.1f}s (decoding alone {b['decode_compute_bound_s']:.1f}s)"
    )
    if o["n_tasks"] <= o["width"]:
        lines.append(
            f"note: {o['n_tasks']} tasks <= width {o['width']}: no row is refilled, and the rows that run to the cap "
            "finish alone; the full benchmark keeps the batch full for most of its steps"
        )
    lines += _targets(res)
    return lines


def _targets(res: dict) -> list[str]:
    ct, b, seed = res["codetune"], res["bounds"], res.get("seed")
    total = ct["gen_s"] + ct["exec_s"]
    out = ["targets (printed, never asserted):"]
    if seed is not None:
        speedup = (seed["gen_s"] + seed["exec_s"]) / total
        differ = sum(a["completion"] != c["completion"] for a, c in zip(seed["samples"], ct["samples"]))
        verdicts = sum(seed["passed"][t] != ct["passed"][t] for t in ct["passed"])
        out.append(
            f"  [{_verdict(speedup >= 5)}] generation+execution >= 5x the seed style: {speedup:.1f}x "
            f"(generation alone {seed['gen_s'] / ct['gen_s']:.1f}x)"
        )
        out.append(
            f"  [{_verdict(seed['pass@1'] == ct['pass@1'])}] pass@1 unchanged: seed style "
            f"{100 * seed['pass@1']:.1f}%, codetune {100 * ct['pass@1']:.1f}%; {differ} of "
            f"{len(ct['samples'])} tasks' completions differ, {verdicts} verdicts"
        )
    ratio = ct["gen_s"] / b["bandwidth_bound_s"]
    physical = max(b["bandwidth_bound_s"], b["compute_bound_s"])
    out.append(
        f"  [{_verdict(ratio <= 3)}] generation within 3x of the bandwidth bound: {ratio:.1f}x "
        f"({ct['gen_s']:.1f}s / {b['bandwidth_bound_s']:.1f}s)"
    )
    out.append(
        f"  [{_verdict(ct['gen_s'] / physical <= 3)}] within 3x of max(bandwidth, compute) bound: "
        f"{ct['gen_s'] / physical:.1f}x ({physical:.1f}s; a step is "
        f"{'compute' if b['step_compute_s'] > b['step_bandwidth_s'] else 'bandwidth'}-bound here)"
    )
    return out


# ---------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m", help="model.name for codetune.models.load_base")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only HumanEval's first N tasks")
    p.add_argument("--width", type=int, default=32, help="codetune's batch width (generate.batch_size)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="cap on new tokens per task, every pipeline")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="auto: bf16 where fast")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--skip-seed-style", action="store_true", help="do not run the (slow) seed-style pipeline")
    p.add_argument("--fixed-batches", action="store_true", help="also run codetune's previous fixed batches")
    p.add_argument(
        "--halves",
        action="store_true",
        help="alternate: the first half of the tasks through every pipeline, then the second half in reverse "
        "order (A B | B A), so a machine whose speed drifts favours none",
    )
    p.add_argument("--out", metavar="DIR", help="keep each pipeline's samples and the figures (JSON) there")
    p.add_argument("--results-md", metavar="PATH", default=None, help="default: benchmarks/RESULTS.md")
    p.add_argument("--no-results-md", action="store_true", help="print the report only; write no RESULTS.md")
    return p


def collect(args: argparse.Namespace, log: Any) -> dict:
    from codetune.config import GenerateConfig, ModelConfig
    from codetune.device import resolve_precision, set_threads
    from codetune.evaluation.benchmarks import load_tasks
    from codetune.models import load_base

    threads = set_threads(args.threads)
    loaded = load_base(ModelConfig(name=args.model))
    model, tok = loaded.model.eval(), loaded.tokenizer
    tasks = load_tasks("humaneval")[: args.limit]
    precision = resolve_precision(args.precision, "cpu")
    cfg = GenerateConfig(max_new_tokens=args.max_new_tokens, batch_size=args.width)
    opts = {
        "model": args.model,
        "n_tasks": len(tasks),
        "width": args.width,
        "max_new_tokens": args.max_new_tokens,
        "precision": precision,
        "threads": threads,
    }
    res: dict[str, Any] = {"options": opts, "started": time.strftime("%Y-%m-%d %H:%M")}
    res["probe"] = run_probes(model, precision, args.width)
    res["shape"] = (
        model.config.hidden_size,
        getattr(model.config, "intermediate_size", 4 * model.config.hidden_size),
    )
    order = ["codetune"] + (["fixed"] if args.fixed_batches else []) + ([] if args.skip_seed_style else ["seed"])
    if not args.halves:
        for name in order:
            res[name] = measure(name, model, tok, tasks, cfg, precision, log)
    else:
        mid = len(tasks) // 2
        parts: dict[str, list[dict]] = {name: [] for name in order}
        for chunk, names in ((tasks[:mid], order), (tasks[mid:], order[::-1])):
            for name in names:
                parts[name].append(measure(name, model, tok, chunk, cfg, precision, log))
        res.update({name: merge(ps, args.width) for name, ps in parts.items()})
    opts["order"] = " | ".join(" ".join(o) for o in ((order, order[::-1]) if args.halves else (order,)))
    res["bounds"] = bounds(res["probe"], res["codetune"], args.width)
    return res


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    res = collect(args, log=lambda m: print(m, file=sys.stderr, flush=True))
    lines = report(res)
    lines.append(f"total wall time {time.perf_counter() - t0:.0f}s (started {res['started']})")
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("seed", "fixed", "codetune"):
            if name in res:
                rows = res[name].pop("samples")
                (out / f"samples_{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (out / "figures.json").write_text(json.dumps(res, indent=1, default=str))
    if not args.no_results_md:
        path = record_results(lines, argv if argv is not None else sys.argv[1:], args.results_md)
        print(f"figures written to {path}")
    return 0


def record_results(lines: list[str], argv: list[str], path: str | None = None) -> Path:
    """The printed report as the `humaneval_bench` section of RESULTS.md (benchmarks/results_md.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("results_md", Path(__file__).with_name("results_md.py"))
    results_md = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results_md)  # type: ignore[union-attr]
    return results_md.record_printed(SECTION, "benchmarks/humaneval_bench.py", lines, argv, path)


if __name__ == "__main__":
    sys.exit(main())
