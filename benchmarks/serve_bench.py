"""`codetune serve` under 1, 4 and 16 concurrent clients against a naive server, and the bandwidth bound.

Issue #19, "Measured". In one run, with the bundled model, two servers on loopback, each its own process:

* codetune  `codetune serve --model M` (continuous batching: requests that arrive while others decode join
            at the next step).
* naive     the server a user would first write, defined in this file (`build_naive_app`): FastAPI, one
            request at a time through HF `model.generate` under a lock, streamed with `TextIteratorStreamer`,
            OpenAI `/v1/completions` compatible, so the same client drives both. It decodes in the same
            precision as codetune (`--precision`; bf16 autocast where bf16 is fast), so the comparison
            measures serving, not dtype.

Both are driven by the official `openai` client (`AsyncOpenAI`, one event loop, no retries): at each level
of `--levels` (1, 4, 16) that many clients each send `--requests` (20) streamed completions one after another,
prompts from HumanEval (client c's request r gets prompt c * requests + r, the same for both servers), greedy,
`--max-tokens` (64) with `ignore_eos` and no stop strings, so every completion is exactly that many tokens
(counted from the final chunk's `usage`; the report says how many were not). The servers take turns at
each level, in alternating order (naive first at the first level, codetune first at the next, ...) against
drift, and with `--halves` each level in two halves A B | B A (the naive server's 16-client turn is long);
each server gets warm-up requests first. Printed per server and level: p50/p95 time to first token (TTFT:
from sending the request to its first non-empty text chunk), p50/p95 total latency, aggregate tokens/s
(every completion token of the level / its wall time), and the server's CPU use; the idle server's CPU
while the other one runs is printed too (it should be ~0).

Bound: a decoding step reads every weight once, so one stream can at best make a token every
weight bytes / read bandwidth (`weight_bytes` and `probe_bandwidth` from benchmarks/humaneval_bench.py);
single-stream decoding is the 1-client level's per-request (latency - TTFT) / (tokens - 1), median.
Targets (printed, never asserted): at the highest level, codetune's aggregate tokens/s >= 4x the naive
server's and its p95 latency lower; at 1 client no worse: each prompt went to both servers alone, so
latency and decoding time per token are compared prompt by prompt (paired bootstrap 95% CI of the mean
difference, sign-flip permutation p), PASS when the interval's upper end is below +5% of the naive server's
mean (non-inferiority; the p95 and tokens/s point estimates are printed beside it). The report replaces the
`serve_bench` section of benchmarks/RESULTS.md (`--section` names another, e.g. for a 1-client-only run).

    .venv/bin/python benchmarks/serve_bench.py --halves --out /tmp/serve_bench    # full: ~50 min quiet, 2 cores
    .venv/bin/python benchmarks/serve_bench.py --requests 2 --max-tokens 16 --no-results-md       # smoke run
    .venv/bin/python benchmarks/serve_bench.py --levels 1 --requests 60 --halves --section serve_bench_1client
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SECTION = "serve_bench"
HERE = Path(__file__).resolve().parent
SERVERS = ("naive", "codetune")
NONINFERIORITY_MARGIN = 0.05  # "no worse at 1 client": the paired 95% CI of the difference below +5%


def _sibling(name: str) -> Any:
    """Import benchmarks/<name>.py (this folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_serve_bench_{name}", HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


# ---------------------------------------------------------------------------------------------- naive server


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj) if not isinstance(obj, str) else obj}\n\n"


def build_naive_app(model: Any, tok: Any, model_name: str, precision: str = "fp32") -> Any:
    """The first server a user writes: one `generate` at a time under a lock, streamed by TextIteratorStreamer."""
    import threading

    import torch
    from fastapi import Body, FastAPI
    from fastapi.responses import JSONResponse, StreamingResponse
    from transformers import TextIteratorStreamer

    app = FastAPI()
    lock = threading.Lock()  # one request at a time: generate() calls would fight over the cores anyway

    def generate_kwargs(body: dict) -> dict:
        max_tokens = int(body.get("max_tokens") or 16)
        temperature = float(body.get("temperature", 1.0))
        kw: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": tok.pad_token_id}
        if temperature > 0:
            kw.update(do_sample=True, temperature=temperature, top_p=float(body.get("top_p", 1.0)))
        else:
            kw["do_sample"] = False
        if body.get("ignore_eos"):
            kw["min_new_tokens"] = max_tokens  # EOS is masked until max_tokens: exactly that many tokens
        return kw

    def run_generate(inputs: dict, kw: dict, out: dict, streamer: Any = None) -> None:
        try:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                out["ids"] = model.generate(**inputs, **kw, streamer=streamer)
        except Exception as exc:  # noqa: BLE001 - reported to the client as the stream's end
            out["error"] = repr(exc)
            if streamer is not None:
                streamer.end()

    def usage(inputs: dict, out: dict) -> dict:
        prompt = int(inputs["input_ids"].shape[1])
        done = int(out["ids"].shape[1]) - prompt if "ids" in out else 0
        return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}

    def chunk(text: str, finish: str | None = None, use: dict | None = None) -> dict:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return {
            "id": "cmpl-naive",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": [choice] if use is None else [],
            "usage": use,
        }

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/v1/completions")
    async def completions(body: dict = Body(...)) -> Any:  # noqa: B008 - FastAPI's way to take the JSON body
        prompt = body["prompt"] if isinstance(body["prompt"], str) else body["prompt"][0]
        inputs = dict(tok(prompt, return_tensors="pt"))
        kw = generate_kwargs(body)
        if not body.get("stream"):
            out: dict = {}

            def locked() -> None:  # in a worker thread: waiting for the lock must not block the event loop
                with lock:
                    run_generate(inputs, kw, out)

            await asyncio.to_thread(locked)
            if "error" in out:
                return JSONResponse({"error": {"message": out["error"]}}, status_code=500)
            text = tok.decode(out["ids"][0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            use = usage(inputs, out)
            res = chunk(text, "length" if use["completion_tokens"] >= kw["max_new_tokens"] else "stop")
            return {**res, "usage": use}
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def events() -> Any:  # a sync generator: starlette steps it in its thread pool
            out: dict = {}
            with lock:
                streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
                worker = threading.Thread(target=run_generate, args=(inputs, kw, out, streamer))
                worker.start()
                for text in streamer:
                    if text:
                        yield _sse(chunk(text))
                worker.join()
            if "error" in out:
                yield _sse({"error": {"message": out["error"], "type": "server_error"}})
                return
            use = usage(inputs, out)
            finish = "length" if use["completion_tokens"] >= kw["max_new_tokens"] else "stop"
            yield _sse(chunk("", finish))
            if with_usage:
                yield _sse(chunk("", use=use))
            yield _sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def naive_main(argv: list[str]) -> int:
    """`serve_bench.py naive-server --model M --port P`: load the model, then serve until SIGINT/SIGTERM."""
    p = argparse.ArgumentParser(prog="serve_bench.py naive-server")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    import torch
    import uvicorn

    from codetune.config import ModelConfig
    from codetune.device import limit_onednn_cache
    from codetune.models import load_base

    limit_onednn_cache()  # as `codetune`'s CLI does for every command
    if args.threads:  # else torch's default, as in `codetune serve`
        torch.set_num_threads(args.threads)
    loaded = load_base(ModelConfig(name=args.model))
    app = build_naive_app(loaded.model.eval(), loaded.tokenizer, args.model, args.precision)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


# ---------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    """(status, parsed body) of a GET; (0, None) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return 0, None


def engine_counters(url: str) -> dict | None:
    """codetune's engine counters from GET /health (`engine`: steps, max_rows_in_step, ...); None elsewhere."""
    status, body = get_json(url + "/health")
    engine = body.get("engine") if status == 200 and isinstance(body, dict) else None
    return engine if isinstance(engine, dict) and "steps" in engine else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc; 0.0 where unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class ServerProcess:
    """A server in a child process on a loopback port, ready once GET /health answers 200."""

    def __init__(self, name: str, cmd: list[str], port: int, log_path: Path) -> None:
        self.name, self.cmd, self.port, self.log_path = name, cmd, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 900.0) -> float:
        """Start it and wait for /health; returns seconds to ready. Raises RuntimeError with the log's tail."""
        t0 = time.perf_counter()
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        while time.perf_counter() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited ({self.proc.returncode}):\n{self.log_tail()}")
            if get_json(self.url + "/health", timeout=2.0)[0] == 200:
                return time.perf_counter() - t0
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.name} server not ready after {timeout_s:.0f}s:\n{self.log_tail()}")

    def cpu_s(self) -> float:
        return cpu_seconds(self.proc.pid) if self.proc else 0.0

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def naive_command(model: str, port: int, precision: str, threads: int | None) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "naive-server", "--model", model, "--port", str(port)]
    cmd += ["--precision", precision] + (["--threads", str(threads)] if threads else [])
    return cmd


def serve_args(model: str, precision: str, extra: list[str]) -> list[str]:
    """`codetune serve`'s arguments but the port: the naive server's model, device and precision."""
    return ["--model", model, "--device", "cpu", "--precision", precision, *extra]


def codetune_command(args: list[str], port: int) -> list[str]:
    launcher = "import sys; from codetune.cli import console_main; sys.exit(console_main())"
    return [sys.executable, "-c", launcher, "serve", *args, "--port", str(port)]


# ---------------------------------------------------------------------------------------------- client driver


@dataclass
class RequestRecord:
    """One streamed completion as the client saw it (times in seconds from the level's start)."""

    client: int
    index: int
    prompt: int
    start_s: float
    ttft_s: float | None = None  # to the first non-empty text chunk
    latency_s: float | None = None  # to the end of the stream
    tokens: int | None = None  # usage.completion_tokens of the final chunk
    prompt_tokens: int | None = None  # usage.prompt_tokens
    chunks: int = 0  # non-empty text chunks
    chars: int = 0
    finish_reason: str | None = None
    error: str | None = None


async def stream_completion(client: Any, model: str, prompt: str, max_tokens: int, rec: RequestRecord) -> None:
    """Send one streamed completion and fill `rec` from what arrives (an exception becomes `rec.error`)."""
    t0 = time.perf_counter()
    try:
        stream = await client.completions.create(
            model=model,
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.text:
                    if rec.ttft_s is None:
                        rec.ttft_s = time.perf_counter() - t0
                    rec.chunks, rec.chars = rec.chunks + 1, rec.chars + len(choice.text)
                rec.finish_reason = choice.finish_reason or rec.finish_reason
            if chunk.usage is not None:
                rec.tokens, rec.prompt_tokens = chunk.usage.completion_tokens, chunk.usage.prompt_tokens
    except Exception as exc:  # noqa: BLE001 - any failure is a counted error, not a crashed benchmark
        rec.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
    rec.latency_s = time.perf_counter() - t0


def make_client(base_url: str) -> Any:
    from openai import AsyncOpenAI

    # No retries (a retried request would hide a failure and skew its latency); no client-side timeout
    # shorter than the slowest naive request at 16 clients.
    return AsyncOpenAI(base_url=base_url + "/v1", api_key="none", max_retries=0, timeout=3600.0)


async def drive(
    base_url: str,
    model: str,
    prompts: list[str],
    clients: int,
    requests: int,
    max_tokens: int,
    first: int = 0,
    per_client: int | None = None,
) -> dict:
    """`clients` concurrent clients, each sending `requests` streamed completions one after another.

    Client c's r-th request is its request `first + r` of `per_client` (default `requests`), and gets prompt
    c * per_client + first + r: a level measured in parts sends the prompts it would send in one go.
    Returns {"wall_s", "records": [RequestRecord]}.
    """
    per_client = per_client or requests
    client = make_client(base_url)
    records: list[RequestRecord] = []
    t_level = time.perf_counter()

    async def one_client(c: int) -> None:
        for r in range(first, first + requests):
            i = (c * per_client + r) % len(prompts)
            rec = RequestRecord(client=c, index=r, prompt=i, start_s=time.perf_counter() - t_level)
            records.append(rec)
            await stream_completion(client, model, prompts[i], max_tokens, rec)

    try:
        await asyncio.gather(*(one_client(c) for c in range(clients)))
    finally:
        wall = time.perf_counter() - t_level
        await client.close()
    records.sort(key=lambda x: (x.client, x.index))
    return {"wall_s": wall, "records": records}


# ---------------------------------------------------------------------------------------------- figures


def percentile(xs: list[float], q: float) -> float | None:
    """The q-th percentile with linear interpolation between order statistics (numpy's default)."""
    if not xs:
        return None
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(run: dict, max_tokens: int) -> dict:
    """Percentiles, throughput and counts of one server at one level (`run` as `drive` returns it)."""
    recs = [r if isinstance(r, RequestRecord) else RequestRecord(**r) for r in run["records"]]
    ok = [r for r in recs if r.error is None]
    ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
    lat = [r.latency_s for r in ok if r.latency_s is not None]
    tokens = sum(r.tokens or 0 for r in ok)
    # Decoding after the first token: one stream's time per token (the first came with the prompt's forward).
    per_token = [
        (r.latency_s - r.ttft_s) / (r.tokens - 1) for r in ok if r.tokens and r.tokens > 1 and r.ttft_s is not None
    ]
    steps = run.get("engine_steps")  # codetune's decoding steps in the level (GET /health before and after)
    return {
        "requests": len(recs),
        "errors": len(recs) - len(ok),
        "first_error": next((r.error for r in recs if r.error), None),
        "tokens": tokens,
        "not_max_tokens": sum(r.tokens != max_tokens for r in ok),
        "no_text": sum(r.ttft_s is None for r in ok),
        "wall_s": run["wall_s"],
        "tok_per_s": tokens / run["wall_s"] if run["wall_s"] > 0 else 0.0,
        "ttft_p50": percentile(ttft, 50),
        "ttft_p95": percentile(ttft, 95),
        "latency_p50": percentile(lat, 50),
        "latency_p95": percentile(lat, 95),
        "decode_s_per_token_p50": percentile(per_token, 50),
        "chunks_per_request": sum(r.chunks for r in ok) / len(ok) if ok else 0.0,
        "prompt_tokens_mean": sum(r.prompt_tokens or 0 for r in ok) / len(ok) if ok else 0.0,
        "engine_steps": steps,
        # Rows per decoding step: every token but each request's first (that one comes with its prefill).
        "rows_per_step": (tokens - len(ok)) / steps if steps else None,
        "max_rows_in_step": run.get("max_rows_in_step"),
        "cpu_s": run.get("cpu_s"),
        "idle_cpu_s": run.get("idle_cpu_s"),
        "client_cpu_s": run.get("client_cpu_s"),
    }


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(res: dict) -> list[str]:
    """The printed figures, one list of lines (also written to RESULTS.md)."""
    o, p = res["options"], res.get("probe")
    ready = ", ".join(f"{n} ready in {t:.0f}s" for n, t in res["ready_s"].items())
    lines = [
        f"model {o['model']}, {o['precision']}; levels {o['levels']} concurrent clients x {o['requests']} streamed "
        f"completions each, max_tokens {o['max_tokens']}, greedy, ignore_eos (no stop strings: every completion "
        f"{o['max_tokens']} tokens), HumanEval prompts; official openai client (AsyncOpenAI, no retries)",
        f"servers: {ready}; codetune serve {' '.join(o['serve_args'])}; order per level {res['order']}",
    ]
    if p:
        lines.append(
            f"probes: {p['weight_bytes'] / 1e6:.0f} MB of weights ({p['weight_dtype']}), read bandwidth "
            f"{p['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s"
        )
    head = (
        f"{'clients':>7} {'server':9} {'reqs':>4} {'err':>3} {'TTFT p50':>8} {'p95':>6} {'lat p50':>7} {'p95':>6} "
        f"{'tok/s':>7} {'tokens':>6} {'s/tok':>6} {'cpu':>4} {'rows/step':>9}"
    )
    lines += [head, "-" * len(head)]
    for lvl in res["levels"]:
        for name in SERVERS:
            s = lvl.get(name)
            if s is None:
                continue
            cpu = f"{s['cpu_s'] / s['wall_s'] / o['cores']:.0%}" if s.get("cpu_s") is not None else "-"
            rows = "-" if s["rows_per_step"] is None else f"{s['rows_per_step']:.1f} ({s['max_rows_in_step']})"
            lines.append(
                f"{lvl['clients']:>7} {name:9} {s['requests']:>4} {s['errors']:>3} {_fmt(s['ttft_p50']):>8} "
                f"{_fmt(s['ttft_p95']):>6} {_fmt(s['latency_p50']):>7} {_fmt(s['latency_p95']):>6} "
                f"{s['tok_per_s']:>7.1f} {s['tokens']:>6} {_fmt(s['decode_s_per_token_p50'], '.3f'):>6} {cpu:>4} "
                f"{rows:>9}"
            )
    lines.append(
        "(seconds; tok/s: the level's completion tokens / its wall time; s/tok: median (latency - TTFT) / "
        "(tokens - 1); cpu: the server's CPU time / wall time / cores; rows/step: codetune's decoding rows "
        "per step, (tokens - requests) / its engine's steps in the level (widest step since the server started))"
    )
    lines += _notes(res) + _bound_lines(res) + _targets(res)
    return lines


def _notes(res: dict) -> list[str]:
    out = []
    for lvl in res["levels"]:
        for name in SERVERS:
            s = lvl.get(name)
            if s is None:
                continue
            if s["errors"]:
                out.append(
                    f"note: {name} at {lvl['clients']} clients: {s['errors']} errors, first: {s['first_error']}"
                )
            if s["not_max_tokens"]:
                out.append(
                    f"note: {name} at {lvl['clients']} clients: {s['not_max_tokens']} completions were not "
                    f"{res['options']['max_tokens']} tokens (or reported no usage)"
                )
            if s.get("idle_cpu_s") is not None and s["idle_cpu_s"] > 0.05 * s["wall_s"]:
                out.append(
                    f"note: while {name} ran at {lvl['clients']} clients the other server used "
                    f"{s['idle_cpu_s']:.1f}s CPU ({s['idle_cpu_s'] / s['wall_s']:.0%} of a core)"
                )
    chunks = {n: [lvl[n]["chunks_per_request"] for lvl in res["levels"] if n in lvl] for n in SERVERS}
    if all(chunks.values()):
        out.append(
            "text chunks per request: "
            + ", ".join(f"{n} {sum(c) / len(c):.1f}" for n, c in chunks.items())
            + " (TextIteratorStreamer releases text at word boundaries; TTFT waits for the first chunk)"
        )
    prompts = [lvl[n]["prompt_tokens_mean"] for lvl in res["levels"] for n in SERVERS if n in lvl]
    if prompts:
        out.append(
            f"prompts: {sum(prompts) / len(prompts):.0f} tokens per request on average (usage.prompt_tokens), each "
            f"prefilled whole by either server: batching shares decoding steps, not prefill"
        )
    idle = [lvl[n]["idle_cpu_s"] for lvl in res["levels"] for n in SERVERS if lvl.get(n, {}).get("idle_cpu_s")]
    client = [
        lvl[n]["client_cpu_s"] for lvl in res["levels"] for n in SERVERS if lvl.get(n, {}).get("client_cpu_s")
    ]
    if idle or client:
        out.append(
            f"idle server CPU during the other's turns: {sum(idle):.1f}s in all; the benchmark client's own CPU: "
            f"{sum(client):.1f}s in all"
        )
    return out


def _bound_lines(res: dict) -> list[str]:
    p = res.get("probe")
    if not p:
        return []
    step = p["weight_bytes"] / p["bandwidth_bytes_per_s"]
    out = [
        f"bound: one decoding stream reads every weight once per token: {p['weight_bytes'] / 1e6:.0f} MB / "
        f"{p['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s = {1000 * step:.1f} ms/token ({1 / step:.0f} tokens/s)"
    ]
    single = next((lvl for lvl in res["levels"] if lvl["clients"] == 1), None)
    for name in SERVERS:
        s = (single or {}).get(name)
        if s and s["decode_s_per_token_p50"]:
            d = s["decode_s_per_token_p50"]
            out.append(
                f"single stream, {name}: {1000 * d:.1f} ms/token ({1 / d:.1f} tokens/s) = {d / step:.1f}x the bound "
                f"({100 * step / d:.0f}% of it)"
            )
    return out


def _targets(res: dict) -> list[str]:
    both = [lvl for lvl in res["levels"] if all(n in lvl for n in SERVERS)]
    if not both:
        return []
    out = ["targets (printed, never asserted):"]
    top = max(both, key=lambda lvl: lvl["clients"])
    if top["clients"] > 1:
        out += _top_targets(top)
    one = next((lvl for lvl in both if lvl["clients"] == 1), None)
    if one is not None:
        out += _single_targets(res, one)
    return out


def _top_targets(top: dict) -> list[str]:
    out = []
    ct, nv = top["codetune"], top["naive"]
    ratio = ct["tok_per_s"] / nv["tok_per_s"] if nv["tok_per_s"] else math.inf
    out.append(
        f"  [{_verdict(ratio >= 4)}] {top['clients']} clients: aggregate tokens/s >= 4x the naive server's: "
        f"{ratio:.1f}x ({ct['tok_per_s']:.1f} vs {nv['tok_per_s']:.1f})"
    )
    lower = (
        ct["latency_p95"] is not None and nv["latency_p95"] is not None and ct["latency_p95"] < nv["latency_p95"]
    )
    out.append(
        f"  [{_verdict(lower)}] {top['clients']} clients: p95 latency lower than the naive server's: "
        f"{_fmt(ct['latency_p95'])}s vs {_fmt(nv['latency_p95'])}s"
    )
    return out


def paired_single(res: dict) -> dict[str, dict] | None:
    """At 1 client each prompt went to both servers alone: the per-prompt differences (codetune - naive) of
    latency and of decoding time per token, as paired bootstraps (mean difference, 95% CI, p) and a sign-flip
    permutation p. None when the level lacks a server or a pair."""
    from codetune.stats.paired import paired_bootstrap, paired_permutation_test

    by: dict[str, dict[int, dict]] = {n: {} for n in SERVERS}
    for part in res["raw"]:
        if part["clients"] == 1 and part["server"] in by:
            for r in part["records"]:
                if (
                    r["error"] is None
                    and r["latency_s"] is not None
                    and r["ttft_s"] is not None
                    and r["tokens"] > 1
                ):
                    by[part["server"]][r["index"]] = r
    common = sorted(set(by["codetune"]) & set(by["naive"]))
    if len(common) < 2:
        return None
    measures = {
        "latency_s": lambda r: r["latency_s"],
        "decode_s_per_token": lambda r: (r["latency_s"] - r["ttft_s"]) / (r["tokens"] - 1),
    }
    out = {}
    for name, f in measures.items():
        a = [f(by["codetune"][i]) for i in common]
        b = [f(by["naive"][i]) for i in common]
        boot = paired_bootstrap(a, b, n_boot=10000, seed=0)
        out[name] = {**boot, "perm_p": paired_permutation_test(a, b, seed=0), "naive_mean": sum(b) / len(b)}
    return out


def _single_targets(res: dict, one: dict) -> list[str]:
    """1 client, no worse: judged on the per-prompt paired differences (the point estimates beside)."""
    ct, nv = one["codetune"], one["naive"]
    out = [
        f"  point estimates at 1 client: {ct['tok_per_s']:.1f} vs {nv['tok_per_s']:.1f} tokens/s, p95 latency "
        f"{_fmt(ct['latency_p95'])}s vs {_fmt(nv['latency_p95'])}s, p95 TTFT {_fmt(ct['ttft_p95'])}s vs "
        f"{_fmt(nv['ttft_p95'])}s (codetune vs naive)"
    ]
    paired = paired_single(res)
    if paired is None:
        return out + ["  [MISS] 1 client: no worse than the naive server: no prompt was answered by both"]
    for name, unit in (("latency_s", "s"), ("decode_s_per_token", "s/token")):
        d = paired[name]
        base = d["naive_mean"]
        # Non-inferiority: the whole interval below +MARGIN of the naive server's mean; a point estimate
        # inside the noise is not a result either way.
        ok = d["ci_high"] < NONINFERIORITY_MARGIN * base
        out.append(
            f"  [{_verdict(ok)}] 1 client: {name} no worse than the naive server (paired over {d['n']} prompts, "
            f"codetune - naive): {d['diff']:+.4f} {unit} ({d['diff'] / base:+.1%}), 95% CI [{d['ci_low']:+.4f}, "
            f"{d['ci_high']:+.4f}] ({d['ci_low'] / base:+.1%}, {d['ci_high'] / base:+.1%}), bootstrap p "
            f"{d['p_value']:.3f}, permutation p {d['perm_p']:.3f}; PASS when the upper bound is below "
            f"+{NONINFERIORITY_MARGIN:.0%}"
        )
    return out


# ---------------------------------------------------------------------------------------------- probes


def run_probes(model_name: str, precision: str) -> dict:
    """Weight bytes of the model as served and the machine's read bandwidth (humaneval_bench's probes)."""
    import gc

    from codetune.config import ModelConfig
    from codetune.models import load_base

    hb = _sibling("humaneval_bench")
    model = load_base(ModelConfig(name=model_name)).model
    nbytes = hb.weight_bytes(model)  # fp32 as loaded
    del model
    gc.collect()
    # bf16 decoding reads each weight as bf16 at best (what a model stored in bf16 streams per step).
    dtype = "bf16" if precision == "bf16" else "fp32"
    nbytes = nbytes // 2 if dtype == "bf16" else nbytes
    return {"weight_bytes": nbytes, "weight_dtype": dtype, "bandwidth_bytes_per_s": hb.probe_bandwidth(nbytes)}


# ---------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m", help="model for both servers (codetune serve --model)")
    p.add_argument("--levels", default="1,4,16", help="concurrent clients, comma-separated")
    p.add_argument("--requests", type=int, default=20, help="streamed completions per client at each level")
    p.add_argument("--max-tokens", type=int, default=64, help="tokens per completion (ignore_eos: exactly this)")
    p.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16"),
        help="both servers' (auto: bf16 where fast)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="the naive server's torch threads (default: torch's, as codetune serve)",
    )
    p.add_argument("--servers", default="naive,codetune", help="which servers to measure (comma-separated)")
    p.add_argument("--warmup", type=int, default=2, help="uncounted requests per server before the first level")
    p.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for codetune serve (repeat; e.g. --serve-arg=--max-batch --serve-arg=16)",
    )
    p.add_argument(
        "--halves",
        action="store_true",
        help="measure each level in two halves of the requests, servers in turn A B | B A, so a machine whose "
        "speed drifts during the long naive turns favours neither",
    )
    p.add_argument("--no-probes", action="store_true", help="skip the weight-bytes and bandwidth probes")
    p.add_argument("--out", metavar="DIR", help="keep every request's record, the figures and the server logs")
    p.add_argument("--results-md", metavar="PATH", default=None, help="default: benchmarks/RESULTS.md")
    p.add_argument("--section", default=SECTION, help=f"the RESULTS.md section to replace (default {SECTION})")
    p.add_argument("--no-results-md", action="store_true", help="print the report only; write no RESULTS.md")
    return p


def _make_servers(args: argparse.Namespace, names: list[str], precision: str, logs: Path) -> dict:
    servers: dict[str, ServerProcess] = {}
    for name in names:
        port = free_port()
        cmd = (
            naive_command(args.model, port, precision, args.threads)
            if name == "naive"
            else codetune_command(serve_args(args.model, precision, args.serve_arg), port)
        )
        servers[name] = ServerProcess(name, cmd, port, logs / f"{name}.log")
    return servers


def merge_runs(runs: list[dict]) -> dict:
    """One server's parts of a level (`--halves`) as one run: records joined, times and counters summed."""
    out: dict[str, Any] = {"records": [r for run in runs for r in run["records"]]}
    out["records"].sort(key=lambda r: (r.client, r.index))
    for key in ("wall_s", "cpu_s", "idle_cpu_s", "client_cpu_s", "engine_steps"):
        values = [run.get(key) for run in runs]
        out[key] = None if None in values else sum(values)
    out["max_rows_in_step"] = runs[-1].get("max_rows_in_step")
    return out


def _measure(
    args: argparse.Namespace, servers: dict, name: str, prompts: list[str], clients: int, part: tuple, log: Any
) -> dict:
    """One server at one level, requests [first, first + count) of every client: `drive` plus CPU and counters."""
    first, count = part
    srv = servers[name]
    others = [s for n, s in servers.items() if n != name]
    cpu0, idle0 = srv.cpu_s(), sum(s.cpu_s() for s in others)
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    log(f"[serve_bench] {name}: {clients} clients x {count} requests ...")
    before = engine_counters(srv.url)
    run = asyncio.run(
        drive(srv.url, args.model, prompts, clients, count, args.max_tokens, first=first, per_client=args.requests)
    )
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    after = engine_counters(srv.url)
    if before and after:
        run["engine_steps"] = after["steps"] - before["steps"]
        run["max_rows_in_step"] = after["max_rows_in_step"]  # since the server started
    run["cpu_s"] = srv.cpu_s() - cpu0
    run["idle_cpu_s"] = sum(s.cpu_s() for s in others) - idle0
    run["client_cpu_s"] = (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime)
    summary = summarize(run, args.max_tokens)
    log(
        f"[serve_bench] {name}: {run['wall_s']:.1f}s, {summary['tok_per_s']:.1f} tok/s, {summary['errors']} errors"
    )
    return run


def _level(args: argparse.Namespace, servers: dict, k: int, clients: int, prompts: list[str], log: Any) -> tuple:
    """Every server at one level, taking turns: (summaries by server, raw parts, the order run)."""
    names = list(servers)
    turn = names if k % 2 == 0 else names[::-1]
    half = args.requests // 2
    if args.halves and half:
        plan = [(name, (0, half)) for name in turn] + [(name, (half, args.requests - half)) for name in turn[::-1]]
    else:
        plan = [(name, (0, args.requests)) for name in turn]
    runs: dict[str, list[dict]] = {name: [] for name in names}
    raw = []
    for name, part in plan:
        run = _measure(args, servers, name, prompts, clients, part, log)
        runs[name].append(run)
        records = [asdict(r) for r in run["records"]]
        raw.append({"server": name, "clients": clients, "first": part[0], **run, "records": records})
    summaries = {name: summarize(merge_runs(rs), args.max_tokens) for name, rs in runs.items()}
    return summaries, raw, " ".join(name for name, _ in plan)


def collect(args: argparse.Namespace, log: Any) -> dict:
    from codetune.device import resolve_precision
    from codetune.evaluation.benchmarks import load_tasks

    names = [n for n in SERVERS if n in args.servers.split(",")]
    levels = [int(x) for x in args.levels.split(",")]
    precision = resolve_precision(args.precision, "cpu")
    prompts = [t.prompt for t in load_tasks("humaneval")]
    opts = {
        "model": args.model,
        "precision": precision,
        "levels": levels,
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "serve_args": serve_args(args.model, precision, args.serve_arg),
        "cores": os.cpu_count() or 1,
    }
    res: dict[str, Any] = {"options": opts, "started": time.strftime("%Y-%m-%d %H:%M"), "levels": [], "raw": []}
    if not args.no_probes:
        log("[serve_bench] probes: weight bytes and read bandwidth (before the servers start) ...")
        res["probe"] = run_probes(args.model, precision)
    logs = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="serve_bench_"))
    logs.mkdir(parents=True, exist_ok=True)
    servers = _make_servers(args, names, precision, logs)
    res["ready_s"], order = {}, []
    try:
        for name, srv in servers.items():
            log(f"[serve_bench] starting {name}: {' '.join(srv.cmd[-6:])} (log {srv.log_path})")
            res["ready_s"][name] = srv.start()
            if args.warmup:
                asyncio.run(drive(srv.url, args.model, prompts, 1, args.warmup, min(args.max_tokens, 8)))
        for k, clients in enumerate(levels):
            summaries, raw, turns = _level(args, servers, k, clients, prompts, log)
            res["levels"].append({"clients": clients, **summaries})
            res["raw"] += raw
            order.append(turns)
    finally:
        for srv in servers.values():
            srv.stop()
    res["order"] = " | ".join(order)
    return res


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["naive-server"]:
        return naive_main(argv[1:])
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    res = collect(args, log=lambda m: print(m, file=sys.stderr, flush=True))
    lines = report(res)
    lines.append(f"total wall time {time.perf_counter() - t0:.0f}s (started {res['started']})")
    print("\n".join(lines))
    if args.out:
        (Path(args.out) / "figures.json").write_text(json.dumps(res, indent=1, default=str))
    if not args.no_results_md:
        path = _sibling("results_md").record_printed(
            args.section, "benchmarks/serve_bench.py", lines, argv, args.results_md
        )
        print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
