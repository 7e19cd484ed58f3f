"""`codetune serve` end to end: the real command in a subprocess on a free loopback port, a tiny Llama with
two LoRA adapters, driven by the official `openai` client, curl and plain HTTP.

Two servers: `server` (a copy of the tiny model with a chat template, adapters "a" and "b") for the APIs,
and `small` (one slot, one queue place, an API key, a long context) for overload, disconnects and auth.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PROMPT = "def add(a, b):"
KEY = "sekret-key"
LONG_CONTEXT = 8192


def _helpers():
    spec = importlib.util.spec_from_file_location("_codetune_serve_helpers", Path(__file__).with_name("_serve.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


H = _helpers()


@pytest.fixture(scope="module")
def chat_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with a ChatML-style chat template."""
    out = tmp_path_factory.mktemp("chat_model") / "tiny-chat"
    shutil.copytree(tiny_model_dir, out)
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    return out


@pytest.fixture(scope="module")
def long_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model allowed LONG_CONTEXT positions (rotary embeddings have no table to outgrow), so a
    request can run long enough for a test to overload the server and walk away mid-stream."""
    out = tmp_path_factory.mktemp("long_model") / "tiny-long"
    shutil.copytree(tiny_model_dir, out)
    config = json.loads((out / "config.json").read_text())
    config["max_position_embeddings"] = LONG_CONTEXT
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def server(chat_model_dir, tiny_adapter_dirs, tmp_path_factory):
    s = H.Server(
        [
            "--model", str(chat_model_dir),
            "--adapter", f"a={tiny_adapter_dirs['a']}",
            "--adapter", f"b={tiny_adapter_dirs['b']}", "--default-model", "a",
            "--max-batch", "4", "--max-queue", "8", "--context", "512",
            "--device", "cpu", "--precision", "fp32", "--timeout", "120",
        ],
        tmp_path_factory.mktemp("serve_main"),
    )  # fmt: skip
    yield s
    code = s.stop()
    assert code == 0 and "Traceback" not in s.stderr(), s.stderr()


@pytest.fixture(scope="module")
def small(long_model_dir, tmp_path_factory):
    s = H.Server(
        [
            "--model", str(long_model_dir), "--max-batch", "1", "--max-queue", "1",
            "--context", str(LONG_CONTEXT), "--api-key", KEY,
            "--device", "cpu", "--precision", "fp32",
        ],
        tmp_path_factory.mktemp("serve_small"),
    )  # fmt: skip
    yield s
    code = s.stop()
    assert code == 0 and "Traceback" not in s.stderr(), s.stderr()


AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def client(server):
    openai = pytest.importorskip("openai", reason="pip install openai (the `test` extra)")
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def base(chat_model_dir) -> str:
    return str(chat_model_dir)  # the --model value is the base model's name


@pytest.fixture(scope="module")
def tokenizer(chat_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(chat_model_dir)


@pytest.fixture(scope="module")
def greedy_reference(chat_model_dir, tiny_adapter_dirs, tokenizer):
    """Greedy text from plain transformers (and plain PeftModel.from_pretrained for an adapter)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    def complete(adapter: str | None, prompt: str, n: int) -> str:
        model = AutoModelForCausalLM.from_pretrained(chat_model_dir, dtype=torch.float32)
        if adapter is not None:
            model = PeftModel.from_pretrained(model, str(tiny_adapter_dirs[adapter]))
        model.eval()
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
            )  # fmt: skip
        return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)

    return complete


# --- health and models ---------------------------------------------------------------------------


def test_health_reports_idle_slots(server):
    body = server.health()
    assert body["status"] == "ok"
    assert (body["slots_idle"], body["slots_processing"], body["queued"]) == (4, 0, 0)


def test_models_lists_the_base_and_each_adapter_with_its_parent(client, base, tiny_adapter_dirs):
    models = {m.id: m for m in client.models.list().data}
    assert list(models) == [base, "a", "b"]
    assert models[base].parent is None
    assert models["a"].parent == base and models["b"].parent == base
    assert models["a"].root == str(tiny_adapter_dirs["a"].resolve())


# --- /v1/completions ------------------------------------------------------------------------------


def test_completion_text_finish_reason_and_usage(client, base, tokenizer):
    r = client.completions.create(model=base, prompt=PROMPT, max_tokens=8, temperature=0)
    (choice,) = r.choices
    assert isinstance(choice.text, str) and choice.finish_reason in ("stop", "length")
    assert r.object == "text_completion" and r.model == base
    assert r.usage.prompt_tokens == len(tokenizer(PROMPT)["input_ids"])
    assert 1 <= r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_ignore_eos_gives_exactly_max_tokens(client, base):
    r = client.completions.create(model=base, prompt=PROMPT, max_tokens=9, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 9 and r.choices[0].finish_reason == "length"


def test_the_base_serves_the_plain_base_model(client, base, greedy_reference):
    r = client.completions.create(model=base, prompt=PROMPT, max_tokens=12, temperature=0)
    assert r.choices[0].text == greedy_reference(None, PROMPT, 12)


def test_each_adapter_gives_its_own_output_also_batched_together(client, base, greedy_reference):
    def ask(model: str) -> str:
        return client.completions.create(model=model, prompt=PROMPT, max_tokens=12, temperature=0).choices[0].text

    alone = {m: ask(m) for m in (base, "a", "b")}
    assert len(set(alone.values())) == 3, alone  # base, a and b all differ
    assert alone["a"] == greedy_reference("a", PROMPT, 12)
    assert alone["b"] == greedy_reference("b", PROMPT, 12)
    with ThreadPoolExecutor(6) as pool:  # the three at once (and twice each): mixed-adapter batches
        together = list(pool.map(ask, [base, "a", "b"] * 2))
    assert together == [alone[base], alone["a"], alone["b"]] * 2


def test_list_prompts_and_n_choices_in_prompt_major_order(client, base, tokenizer):
    prompts = [PROMPT, "class Stack:"]
    r = client.completions.create(model=base, prompt=prompts, n=2, max_tokens=6, temperature=1.0, seed=3)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.choices[0].text != r.choices[1].text  # one seed, yet each choice its own sample
    alone = client.completions.create(model=base, prompt="class Stack:", max_tokens=6, temperature=1.0, seed=3)
    assert r.choices[2].text == alone.choices[0].text  # choice 0 of a prompt: the same as asking alone
    assert r.usage.prompt_tokens == sum(len(tokenizer(p)["input_ids"]) for p in prompts)


def test_echo_puts_the_prompt_in_front(client, base):
    plain = client.completions.create(model=base, prompt=PROMPT, max_tokens=5, temperature=0).choices[0].text
    echoed = client.completions.create(model=base, prompt=PROMPT, max_tokens=5, temperature=0, echo=True)
    assert echoed.choices[0].text == PROMPT + plain


def test_same_seed_repeats_exactly_and_another_seed_differs(client, base):
    def sample(seed: int) -> str:
        r = client.completions.create(model=base, prompt=PROMPT, max_tokens=10, temperature=1.0, seed=seed)
        return r.choices[0].text

    first = sample(11)
    assert sample(11) == first
    assert any(sample(s) != first for s in (12, 13, 14))


def test_stop_strings_cut_the_text_before_the_match(client, base):
    text = (
        client.completions.create(
            model=base, prompt=PROMPT, max_tokens=40, temperature=0, extra_body={"ignore_eos": True}
        )
        .choices[0]
        .text
    )
    assert len(text) > 6, text
    stops = [text[4:6], "never-appears-xyz"]
    r = client.completions.create(
        model=base, prompt=PROMPT, max_tokens=40, temperature=0, stop=stops, extra_body={"ignore_eos": True}
    )
    assert r.choices[0].text == text[: text.index(stops[0])]
    assert r.choices[0].finish_reason == "stop"


def test_stop_at_function_end_is_the_language_rule(client, base, tiny_adapter_dirs):
    from codetune.stopping import truncate

    prompt = 'def f(x):\n    """Twice x."""\n    return'
    for model in (base, "a", "b"):
        full = (
            client.completions.create(
                model=model, prompt=prompt, max_tokens=80, temperature=0, extra_body={"ignore_eos": True}
            )
            .choices[0]
            .text
        )
        cut = client.completions.create(
            model=model, prompt=prompt, max_tokens=80, temperature=0,
            extra_body={"ignore_eos": True, "stop_at_function_end": True, "language": "python"},
        ).choices[0].text  # fmt: skip
        assert cut == truncate("python", prompt, full), model


def test_streamed_completion_is_the_same_text_ending_with_done(server, client, base):
    plain = client.completions.create(model=base, prompt=PROMPT, max_tokens=12, temperature=0)
    chunks = list(
        client.completions.create(
            model=base, prompt=PROMPT, max_tokens=12, temperature=0, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    assert "".join(c.choices[0].text for c in chunks if c.choices) == plain.choices[0].text
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    conn, resp = server.open_stream("/v1/completions", {"prompt": PROMPT, "max_tokens": 3, "stream": True})
    try:
        assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
        assert H.sse_payloads(resp.read().decode())[-1] == "[DONE]"
    finally:
        conn.close()


# --- /v1/chat/completions -------------------------------------------------------------------------


def test_chat_uses_the_chat_template_and_streams_deltas(client, base, tokenizer):
    messages = [{"role": "system", "content": "You write Python."}, {"role": "user", "content": "add two numbers"}]
    r = client.chat.completions.create(model="a", messages=messages, max_tokens=8, temperature=0)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert r.usage.prompt_tokens == len(tokenizer(rendered)["input_ids"])
    stream = list(
        client.chat.completions.create(model="a", messages=messages, max_tokens=8, temperature=0, stream=True)
    )
    assert stream[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in stream) == r.choices[0].message.content
    assert stream[-1].choices[0].finish_reason == r.choices[0].finish_reason


def test_chat_without_a_template_is_one_400(small):
    status, body = small.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, AUTH)
    err = body["error"]
    assert status == 400 and err["param"] == "messages" and err["code"] == "no_chat_template"
    assert "/v1/completions" in err["message"] and "\n" not in err["message"]


# --- llama.cpp's /completion ----------------------------------------------------------------------


def _curl(url: str, body: dict, *extra: str) -> str:
    # No Content-Type header, as `curl -d` users send it (a form type): the server reads JSON anyway.
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "120", *extra, "-d", json.dumps(body), url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout


def test_llamacpp_completion_with_curl(server, client, base, tokenizer):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    body = {"prompt": PROMPT, "n_predict": 12, "temperature": 0, "model": "b"}
    got = json.loads(_curl(server.url + "/completion", body))
    want = client.completions.create(model="b", prompt=PROMPT, max_tokens=12, temperature=0)
    assert got["content"] == want.choices[0].text and got["stop"] is True
    assert got["tokens_predicted"] == want.usage.completion_tokens
    assert got["tokens_evaluated"] == len(tokenizer(PROMPT)["input_ids"])
    assert got["timings"]["predicted_n"] == got["tokens_predicted"]
    assert {"prompt_ms", "predicted_ms", "predicted_per_second"} <= set(got["timings"])
    lines = H.sse_payloads(_curl(server.url + "/completion", {**body, "stream": True}, "-N"))
    events = [json.loads(line) for line in lines]
    assert all(e["stop"] is False for e in events[:-1]) and events[-1]["stop"] is True
    assert "".join(e["content"] for e in events) == got["content"]
    assert events[-1]["tokens_predicted"] == got["tokens_predicted"]


def test_a_request_naming_no_model_gets_the_default_model(server, base):
    body = {"prompt": PROMPT, "n_predict": 10, "temperature": 0, "ignore_eos": True}
    unnamed = server.post("/completion", body)[1]
    assert (
        unnamed["model"] == "a"
        and unnamed["content"] == server.post("/completion", {**body, "model": "a"})[1]["content"]
    )
    assert unnamed["content"] != server.post("/completion", {**body, "model": base})[1]["content"]
    status, r = server.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 3})
    assert status == 200 and r["model"] == "a"


def test_llamacpp_defaults_run_to_the_context_and_n_predict_zero_evaluates_only(server, tokenizer):
    status, body = server.post("/completion", {"prompt": PROMPT, "n_predict": 0})
    assert status == 200 and body["content"] == "" and body["tokens_predicted"] == 0
    assert body["tokens_evaluated"] == len(tokenizer(PROMPT)["input_ids"])
    status, body = server.post("/completion", {"prompt": PROMPT, "ignore_eos": True, "seed": 5})
    assert status == 200 and body["tokens_predicted"] == 512 - body["tokens_evaluated"]  # n_predict -1


# --- bad requests ---------------------------------------------------------------------------------

LONG_PROMPT = "x = 1\n" * 400  # well over the 512-token context

BAD = [
    # (path, body, status, param, words in the message)
    ("/v1/completions", {"prompt": "x", "model": "nope"}, 404, "model", ["'nope'", "a, b"]),
    ("/v1/completions", {"prompt": "x", "max_tokens": "many"}, 400, "max_tokens", ["integer"]),
    ("/v1/completions", {"prompt": "x", "max_tokens": 0}, 400, "max_tokens", ["greater than or equal to 1"]),
    ("/v1/completions", {"prompt": "x", "max_tokens": 100000}, 400, "max_tokens", ["context", "at most"]),
    ("/v1/completions", {"prompt": LONG_PROMPT}, 400, "prompt", ["context", "shorten"]),
    ("/v1/completions", {"prompt": "x", "temperature": -1}, 400, "temperature", ["greater than or equal"]),
    ("/v1/completions", {"prompt": "x", "top_p": 0}, 400, "top_p", ["greater than 0"]),
    ("/v1/completions", {"prompt": "x", "n": 0}, 400, "n", ["greater than or equal to 1"]),
    ("/v1/completions", {"max_tokens": 3}, 400, "prompt", ["required", '"prompt"']),
    ("/v1/completions", {"prompt": [1, 2, 3]}, 400, "prompt", ["token ids"]),
    ("/v1/completions", {"prompt": []}, 400, "prompt", ["empty"]),
    ("/v1/completions", {"prompt": "x", "stop": ["", "\n"]}, 400, "stop", ["empty stop string"]),
    ("/v1/completions", {"prompt": "x", "max_token": 5}, 400, "max_token", ["unknown field", "`max_tokens`"]),
    ("/v1/completions", {"prompt": "x", "language": "cobol"}, 400, "language", ["cobol", "python"]),
    ("/v1/completions", {"prompt": "x", "presence_penalty": 0.5}, 400, "presence_penalty", ["not supported"]),
    ("/v1/completions", {"prompt": "x", "suffix": "return a"}, 400, "suffix", ["fill-in-the-middle"]),
    ("/v1/completions", {"prompt": "x", "stream_options": {"include_usage": True}}, 400, None, ["`stream`"]),
    ("/v1/completions", b"{not json", 400, None, ["not valid JSON"]),
    ("/v1/completions", b"[1, 2]", 400, None, ["JSON object"]),
    ("/v1/completions", b"", 400, None, ["no body"]),
    ("/v1/chat/completions", {"messages": []}, 400, "messages", ["at least 1"]),
    ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, 400, "messages", ["role"]),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 9999}, 400,
     "max_tokens", ["context"]),
    ("/completion", {"prompt": "x", "n_predict": -2}, 400, "n_predict", ["greater than or equal to -1"]),
    ("/completion", {"prompt": "x", "top_k": 40}, 400, "top_k", ["not supported", "0"]),
    ("/completion", {"prompt": ["a", "b"]}, 400, "prompt", ["one prompt"]),
    ("/completion", {"prompt": "x", "model": "c"}, 404, "model", ["'c'"]),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "status", "param", "words"), BAD)
def test_every_bad_request_is_one_4xx_json_line_naming_the_field(server, path, body, status, param, words):
    got, answer = server.post(path, body)
    assert got == status, answer
    err = answer["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["param"] == param, err
    assert "\n" not in err["message"] and all(w in err["message"] for w in words), err["message"]


def test_llamacpp_accepts_its_defaults_for_what_it_does_not_implement(server):
    body = {"prompt": PROMPT, "n_predict": 2, "top_k": 0, "min_p": 0, "repeat_penalty": 1.0, "cache_prompt": True}
    status, answer = server.post("/completion", body)
    assert status == 200, answer


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/nope", 404), ("GET", "/v1/completions", 405)])
def test_unknown_routes_answer_in_the_same_shape(server, method, path, status):
    got, body = server.request(method, path)
    assert got == status and "the endpoints are" in body["error"]["message"]


# --- one slot, one queue place: overload, disconnects, auth ---------------------------------------

RUN_LONG = {"prompt": "def f(x):", "max_tokens": LONG_CONTEXT - 100, "ignore_eos": True, "temperature": 0}


def test_api_key_is_required_except_for_health_and_the_playground(small):
    status, body = small.post("/v1/completions", {"prompt": "x", "max_tokens": 1})
    assert status == 401 and "--api-key" in body["error"]["message"]
    assert small.post("/v1/completions", {"prompt": "x"}, {"Authorization": "Bearer wrong"})[0] == 401
    assert small.post("/completion", {"prompt": "x"})[0] == 401
    assert small.request("GET", "/v1/models", headers=AUTH)[0] == 200
    assert small.request("GET", "/health")[0] == 200
    conn = small.connection()
    conn.request("GET", "/")
    assert conn.getresponse().status == 200
    conn.close()


def test_overload_is_503_and_disconnects_free_their_slots(small):
    steps_before = small.health()["engine"]["steps"]
    first = small.open_stream("/v1/completions", {**RUN_LONG, "stream": True}, AUTH)
    H.read_event(first[1])  # decoding in the one slot
    small.wait_health(lambda h: h["slots_processing"] == 1, "the first request in its slot")
    llama = {"prompt": RUN_LONG["prompt"], "n_predict": RUN_LONG["max_tokens"], "ignore_eos": True, "stream": True}
    second = small.open_stream("/completion", llama, AUTH)
    small.wait_health(lambda h: h["queued"] == 1, "the second request queued")
    status, body = small.post("/v1/completions", {**RUN_LONG}, AUTH)
    assert status == 503 and body["error"]["code"] == "overloaded", body
    for conn, _ in (first, second):
        conn.close()  # the clients walk away mid-stream
    small.wait_health(lambda h: h["slots_processing"] == 0 and h["queued"] == 0, "both slots freed")
    steps = small.health()["engine"]["steps"] - steps_before
    assert steps < RUN_LONG["max_tokens"], f"{steps} steps: a request ran to its end after its client left"


def test_a_client_leaving_a_request_that_is_not_streamed_frees_its_slot(small):
    steps_before = small.health()["engine"]["steps"]
    conn = small.connection()
    conn.request("POST", "/v1/completions", body=json.dumps(RUN_LONG).encode(), headers=AUTH)
    small.wait_health(lambda h: h["slots_processing"] == 1, "the request in its slot")
    conn.close()
    small.wait_health(lambda h: h["slots_processing"] == 0, "the slot freed")
    steps = small.health()["engine"]["steps"] - steps_before
    assert steps < RUN_LONG["max_tokens"], f"{steps} steps: the request ran to its end after its client left"
    status, body = small.post("/v1/completions", {"prompt": "x", "max_tokens": 2}, AUTH)
    assert status == 200 and body["usage"]["completion_tokens"] >= 1  # the slot serves the next request


def test_llamacpp_says_why_it_stopped(server):
    body = {"prompt": PROMPT, "n_predict": 30, "temperature": 0, "ignore_eos": True}
    status, full = server.post("/completion", body)
    assert status == 200 and full["stopped_limit"] is True and full["tokens_predicted"] == 30
    assert len(full["content"]) > 6, full
    word = full["content"][4:6]
    status, cut = server.post("/completion", {**body, "stop": [word]})
    assert status == 200 and cut["content"] == full["content"][: full["content"].index(word)]
    assert (cut["stopped_word"], cut["stopping_word"], cut["stopped_limit"], cut["stopped_eos"]) == (
        True, word, False, False,
    )  # fmt: skip
