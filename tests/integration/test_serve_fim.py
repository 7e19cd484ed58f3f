"""`codetune serve` filling in the middle, end to end over loopback HTTP: the tiny model with a plain
adapter "a" and a tiny FIM adapter "f" (the default model), driven by the `openai` client and plain HTTP:
`suffix` in /v1/completions and llama.cpp's /infill, streamed and not, Continue's autocomplete request, and
400 for every model without FIM.

The server is the command's own parts (its argument parser, adapter checks, loader, app and uvicorn on a
bound loopback socket) run in this process, in a thread: a subprocess would import torch and load the
model again (tests/integration/test_serve.py runs the command itself in a subprocess)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from codetune import fim

pytestmark = pytest.mark.slow

PREFIX = 'def clamp(x, lo, hi):\n    """Clamp x into [lo, hi]."""\n    if x < lo:\n        '
SUFFIX = "\n    return x\n"
N = 10


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


H = _load("_codetune_serve_helpers", Path(__file__).with_name("_serve.py"))
ENGINE_TESTS = _load(
    "_codetune_fim_engine_tests", Path(__file__).parents[1] / "unit" / "serving" / "test_fim_engine.py"
)


@pytest.fixture(scope="module")
def fim_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return ENGINE_TESTS.build_fim_adapter(tiny_model_dir, tmp_path_factory.mktemp("serve_fim") / "f")


class InProcessServer(H.Server):
    """`codetune serve ARGV` as `commands.serve.run` assembles it, uvicorn in a thread; H.Server's HTTP calls."""

    def __init__(self, argv: list[str]) -> None:
        import argparse
        import threading
        from urllib.parse import urlsplit

        import uvicorn

        from codetune.commands import serve as cmd
        from codetune.serving.app import create_app
        from codetune.serving.state import ServerState, Settings

        parser = argparse.ArgumentParser()
        cmd.add_arguments(parser)
        args = parser.parse_args([*argv, "--host", "127.0.0.1", "--port", "0"])
        adapters = cmd.parse_adapters(args.adapter, args.model)
        cmd.check_default_model(args.default_model, args.model, adapters)
        self.sock = cmd.bind(args.host, args.port)
        self.url = cmd.url_of(self.sock)
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port
        up = threading.Event()
        self.failure: list[BaseException] = []
        state = ServerState(
            cmd.make_loader(args, adapters),
            Settings(timeout_s=args.timeout),
            on_ready=lambda b: up.set(),
            on_failure=lambda exc: (self.failure.append(exc), up.set()),
        )
        config = uvicorn.Config(create_app(state), log_level="warning", access_log=False, lifespan="on")
        self.uvicorn = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uvicorn.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        assert up.wait(H.READY_WITHIN_S) and not self.failure, self.failure

    def stop(self) -> int:
        self.uvicorn.should_exit = True
        self.thread.join(60)
        self.sock.close()
        return 0 if not self.thread.is_alive() else 1


@pytest.fixture(scope="module")
def server(tiny_model_dir, tiny_adapter_dirs, fim_dir):
    s = InProcessServer(
        [
            "--model", str(tiny_model_dir), "--adapter", f"a={tiny_adapter_dirs['a']}", "--adapter", f"f={fim_dir}",
            "--default-model", "f", "--max-batch", "4", "--context", "512",
            "--device", "cpu", "--precision", "fp32", "--timeout", "120",
        ]
    )  # fmt: skip
    yield s
    assert s.stop() == 0, "the server did not shut down"


@pytest.fixture(scope="module")
def tokenizer(fim_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(fim_dir)  # the adapter's: the base's with the sentinels


@pytest.fixture(scope="module")
def reference(tiny_model_dir, fim_dir, tokenizer):
    """The greedy middle of "f" loaded the plain peft way, and the PSM ids it was read from."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is faster, and the rest of the session gets its own back
    try:
        model, _ = ENGINE_TESTS._fresh(tiny_model_dir, fim_dir, fim_adapter=True)
        ids = fim.fim_ids(tokenizer, PREFIX, SUFFIX, "psm")
        out = ENGINE_TESTS._greedy(model, ids, N, fim.fim_stop_ids(tokenizer))
    finally:
        torch.set_num_threads(before)
    return {"ids": ids, "text": tokenizer.decode(out, skip_special_tokens=True), "n": len(out)}


@pytest.fixture(scope="module")
def client(server):
    openai = pytest.importorskip("openai", reason="pip install openai (the `test` extra)")
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_say_which_take_fim(server, tiny_model_dir):
    status, body = server.request("GET", "/v1/models")
    assert status == 200
    assert {m["id"]: m["fim"] for m in body["data"]} == {str(tiny_model_dir): False, "a": False, "f": True}


def test_suffix_with_the_openai_client_streamed_and_not(client, reference):
    r = client.completions.create(model="f", prompt=PREFIX, suffix=SUFFIX, max_tokens=N, temperature=0)
    assert r.choices[0].text == reference["text"]
    assert r.usage.prompt_tokens == len(reference["ids"]) and r.usage.completion_tokens == reference["n"]
    chunks = client.completions.create(
        model="f", prompt=PREFIX, suffix=SUFFIX, max_tokens=N, temperature=0, stream=True
    )
    parts = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(parts) == reference["text"]


def test_infill_over_plain_http_streamed_and_not(server, reference):
    body = {"input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": N, "temperature": 0}
    status, answer = server.post("/infill", body)  # no model: the --default-model, "f"
    assert status == 200, answer
    assert answer["content"] == reference["text"] and answer["stop"] is True and answer["model"] == "f"
    assert answer["tokens_evaluated"] == len(reference["ids"]) and answer["tokens_predicted"] == reference["n"]
    assert answer["prompt"] == fim.fim_prompt(PREFIX, SUFFIX)  # the PSM layout, shown as text
    conn, resp = server.open_stream("/infill", {**body, "stream": True})
    try:
        assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
        payloads = [json.loads(p) for p in H.sse_payloads(resp.read().decode())]
    finally:
        conn.close()
    assert all(not p["stop"] for p in payloads[:-1]) and payloads[-1]["stop"] is True
    assert "".join(p["content"] for p in payloads) == reference["text"]
    assert payloads[-1]["tokens_evaluated"] == len(reference["ids"])


def test_infill_prompt_is_the_start_of_the_middle(server, tokenizer):
    """llama.cpp's `prompt` goes after <fim_middle>: the middle the model continues, not echoed back."""
    start = "return "
    body = {"input_prefix": PREFIX, "input_suffix": SUFFIX, "prompt": start, "n_predict": 0}
    status, answer = server.post("/infill", body)
    assert status == 200 and answer["content"] == "" and answer["tokens_predicted"] == 0
    want = fim.fim_ids(tokenizer, PREFIX, SUFFIX, "psm") + tokenizer(start, add_special_tokens=False)["input_ids"]
    assert answer["tokens_evaluated"] == len(want) and answer["prompt"] == fim.fim_prompt(PREFIX, SUFFIX) + start


def test_continues_autocomplete_request_reads_the_sentinels(server, reference):
    """Continue's openai provider renders its default autocomplete template (StarCoder's sentinels) into
    `prompt` and streams /v1/completions: the server reads the same ids as for `suffix`, same middle."""
    body = {
        "model": "f",
        "prompt": f"<fim_prefix>{PREFIX}<fim_suffix>{SUFFIX}<fim_middle>",
        "max_tokens": N,
        "temperature": 0.0,
        "stop": ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>", "<|endoftext|>", "</fim_middle>"],
        "stream": True,
    }
    conn, resp = server.open_stream("/v1/completions", body, headers={"Authorization": "Bearer undefined"})
    try:
        assert resp.status == 200
        payloads = H.sse_payloads(resp.read().decode())
    finally:
        conn.close()
    assert payloads[-1] == "[DONE]"
    text = "".join(json.loads(p)["choices"][0]["text"] for p in payloads[:-1] if json.loads(p)["choices"])
    assert text == reference["text"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/completions", {"model": "a", "prompt": PREFIX, "suffix": SUFFIX}, "suffix"),
        ("/v1/completions", {"model": "__BASE__", "prompt": "", "suffix": SUFFIX}, "suffix"),
        ("/infill", {"model": "a", "input_prefix": PREFIX, "input_suffix": SUFFIX}, "input_suffix"),
        ("/v1/completions", {"model": "a", "prompt": f"<fim_prefix>{PREFIX}<fim_suffix>x<fim_middle>"}, "prompt"),
        ("/completion", {"model": "a", "prompt": f"<fim_prefix>{PREFIX}<fim_suffix>x<fim_middle>"}, "prompt"),
    ],
)
def test_models_without_fim_answer_400_naming_the_fix(server, tiny_model_dir, path, body, param):
    body = {k: (str(tiny_model_dir) if v == "__BASE__" else v) for k, v in body.items()}
    status, answer = server.post(path, body)
    assert status == 400, answer
    err = answer["error"]
    assert err["param"] == param and err["code"] == "fim_not_supported"
    assert "fill-in-the-middle" in err["message"] and "`model` as one of: f" in err["message"]


def test_an_empty_suffix_on_a_model_without_fim_is_left_to_right(server):
    status, answer = server.post("/v1/completions", {"model": "a", "prompt": "def add(a, b):", "suffix": "",
                                                     "max_tokens": 3, "temperature": 0})  # fmt: skip
    assert status == 200 and answer["choices"][0]["finish_reason"] in ("stop", "length")


def test_a_server_without_fim_answers_infill_with_the_fix(tiny_model_dir):
    """No FIM adapter served: /infill and `suffix` are 400, saying to serve an adapter trained with FIM."""
    from starlette.testclient import TestClient
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codetune.serving.app import create_app
    from codetune.serving.engine import Engine
    from codetune.serving.state import Backend, ServerState

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    engine = Engine(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tok, base_name="tiny", context=256)
    state = ServerState(lambda: Backend(engine=engine, tokenizer=tok, base_name="tiny", context=256))
    with TestClient(create_app(state)) as http:
        deadline = time.monotonic() + 120
        while http.get("/health").status_code != 200:
            assert time.monotonic() < deadline, "the engine never came up"
            time.sleep(0.05)
        for path, body, param in [
            ("/infill", {"input_prefix": "def f():\n    ", "input_suffix": "\n"}, "input_suffix"),
            ("/v1/completions", {"prompt": "def f():\n    ", "suffix": "\n    return 1\n"}, "suffix"),
        ]:
            r = http.post(path, json=body)
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert err["param"] == param and "data.fim_rate > 0" in err["message"], err
