"""The serve app in-process (starlette's TestClient), where a test must hold the server in a state: the
model still loading (503), and an engine that never gets to a request (the per-request timeout, 504).
The engine is the real one on the tiny model, left unstarted so nothing decodes."""

from __future__ import annotations

import json
import threading
import time

import pytest

from codetune.serving.app import create_app
from codetune.serving.state import Backend, ServerState, Settings


@pytest.fixture(scope="module")
def unstarted_backend(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codetune.serving.engine import Engine

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)

    def make() -> Backend:
        engine = Engine(model, tok, base_name="tiny", max_batch=2, max_queue=4, context=256)
        return Backend(engine=engine, tokenizer=tok, base_name="tiny", context=engine.context)

    return make


def _client(state: ServerState):
    from starlette.testclient import TestClient

    return TestClient(create_app(state))


def test_health_is_503_loading_until_the_model_is_up(unstarted_backend):
    release = threading.Event()
    ready = threading.Event()

    def load() -> Backend:
        assert release.wait(60)
        return unstarted_backend()

    state = ServerState(load, on_ready=lambda b: ready.set())
    with _client(state) as client:
        r = client.get("/health")
        assert r.status_code == 503 and r.json() == {"status": "loading"}
        r = client.post("/v1/completions", json={"prompt": "x"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "loading"
        assert client.get("/v1/models").status_code == 503
        assert client.get("/").status_code == 200  # the playground waits for /health itself
        release.set()
        assert ready.wait(60)
        r = client.get("/health")
        assert r.status_code == 200 and r.json()["slots_idle"] == 2


def test_a_failed_load_is_reported_and_health_says_error():
    from codetune.errors import ModelLoadError

    failures: list[BaseException] = []
    done = threading.Event()

    def load() -> Backend:
        raise ModelLoadError("no such model", "check --model")

    state = ServerState(load, on_failure=lambda exc: (failures.append(exc), done.set()))
    with _client(state) as client:
        assert done.wait(60)
        assert client.get("/health").json() == {"status": "error"}
    assert isinstance(failures[0], ModelLoadError)


def test_a_request_past_the_timeout_is_504_and_a_stream_ends_with_an_error_event(unstarted_backend):
    state = ServerState(unstarted_backend, Settings(timeout_s=0.3))
    with _client(state) as client:
        deadline = time.monotonic() + 60
        while state.status != "ok" and time.monotonic() < deadline:
            time.sleep(0.01)
        r = client.post("/v1/completions", json={"prompt": "def f(x):", "max_tokens": 4})
        err = r.json()["error"]
        assert r.status_code == 504 and err["code"] == "timeout" and "--timeout" in err["message"]
        with client.stream("POST", "/completion", json={"prompt": "def f(x):", "stream": True}) as s:
            assert s.status_code == 200
            payloads = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
        assert json.loads(payloads[-1])["error"]["code"] == "timeout"
        chat = {"messages": [{"role": "user", "content": "x"}], "stream": True}
        with client.stream("POST", "/v1/chat/completions", json=chat) as s:
            assert s.status_code == 400  # the tiny tokenizer has no chat template: refused before streaming
        with client.stream(
            "POST", "/v1/completions", json={"prompt": "def f(x):", "max_tokens": 4, "stream": True}
        ) as s:
            payloads = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
        assert json.loads(payloads[-2])["error"]["code"] == "timeout" and payloads[-1] == "[DONE]"
