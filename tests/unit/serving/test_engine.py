"""The serving engine on the tiny model: against HF `generate`, batched, with adapters, stops, healing, limits."""

from __future__ import annotations

import threading

import pytest
import torch

from codetune.serving.engine import (
    Engine,
    Event,
    InvalidRequest,
    Overloaded,
    PromptTooLong,
    SamplingParams,
    Stopped,
    UnknownModel,
)

# No trailing whitespace (so no healing): the engine must give exactly what HF `generate` gives.
PROMPTS = [
    "def add(a, b):",
    'def clamp(x, lo, hi):\n    """Clamp x into the closed interval [lo, hi]."""\n    if x < lo:',
    "class Stack:\n    def push(self, item):",
    "x",
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matrices: one thread is faster, and much faster on a machine busy with other work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _base(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()


class Collect:
    """A request's callback: records its events; `wait()` until it is done."""

    def __init__(self, on_event=None) -> None:
        self.events: list[Event] = []
        self.finished = threading.Event()
        self.on_event = on_event

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(self, event)
        if event.kind in ("done", "error"):
            self.finished.set()

    def wait(self) -> Collect:
        assert self.finished.wait(120), "the request never finished"
        return self

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if e.kind == "text")

    @property
    def done(self) -> Event:
        assert self.events[-1].kind == "done", self.events[-1]
        assert [e.kind for e in self.events].count("done") == 1
        return self.events[-1]


def _run(engine: Engine, prompt: str, model: str | None = None, **params) -> Collect:
    c = Collect()
    engine.submit(prompt, SamplingParams(**params), model=model, on_event=c)
    return c.wait()


def _started(model, tok, **kw) -> Engine:
    kw.setdefault("base_name", "tiny")
    engine = Engine(model, tok, **kw)
    engine.start()
    return engine


def _hf_greedy(model, tok, prompt: str, n: int) -> tuple[str, int, str]:
    """(text, tokens, finish reason) of HF greedy `generate`, the reference."""
    enc = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
    new = out[0, enc["input_ids"].shape[1] :].tolist()
    if tok.eos_token_id in new:
        new = new[: new.index(tok.eos_token_id) + 1]
    reason = "stop" if new[-1] == tok.eos_token_id else "length"
    return tok.decode(new, skip_special_tokens=True), len(new), reason


def _steer(model, pairs: dict[int, int], boost: float = 50.0):
    """Make the model write token `pairs[t]` after token `t` (whatever else it would write)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    vocab = inner.get_output_embeddings().weight.shape[0]
    table = torch.zeros(vocab, vocab)
    for prev, nxt in pairs.items():
        table[prev, nxt] = boost
    seen = {}

    def remember(module, args, kwargs):
        seen["ids"] = kwargs.get("input_ids", args[0] if args else None)

    def add(module, args, out):
        ids = seen["ids"][:, -out.shape[1] :]
        return out + table[ids].to(out.dtype)

    inner.get_input_embeddings().register_forward_pre_hook(remember, with_kwargs=True)
    inner.get_output_embeddings().register_forward_hook(add)
    return model


def _chain(tok, before: str, text: str) -> dict[int, int]:
    """Steering pairs so that, after `before`, the model writes `text` (token by token as the tokenizer
    splits before + text); the tokens of the chain must differ so each has one successor."""
    ids = tok(before + text, add_special_tokens=False)["input_ids"]
    head = tok(before, add_special_tokens=False)["input_ids"]
    assert ids[: len(head)] == head, "the text changes how `before` tokenizes"
    chain = ids[len(head) - 1 :]
    assert len(set(chain)) == len(chain), [tok.decode([t]) for t in chain]
    return dict(zip(chain, chain[1:]))


# ---------------------------------------------------------------------------------------------- decoding


def test_greedy_requests_equal_hf_generate(tiny_model_dir, tok):
    model = _base(tiny_model_dir)
    engine = _started(model, tok)
    try:
        for prompt in PROMPTS:
            want_text, want_n, want_reason = _hf_greedy(model, tok, prompt, 30)
            got = _run(engine, prompt, max_tokens=30, temperature=0)
            assert got.text == want_text
            assert (got.done.completion_tokens, got.done.finish_reason) == (want_n, want_reason)
            assert got.done.prompt_tokens == len(tok(prompt)["input_ids"])
    finally:
        engine.close()


def _requests():
    """Requests of different lengths, caps and sampling: each must come out as it does alone."""
    out = []
    for i, prompt in enumerate(PROMPTS):
        out.append((prompt, {"max_tokens": 12 + 7 * i, "temperature": 0, "ignore_eos": True}))
        out.append((prompt, {"max_tokens": 20, "temperature": 0.9, "top_p": 0.9, "seed": i}))
    return out


def test_concurrent_requests_share_steps_and_each_gets_what_it_gets_alone(tiny_model_dir, tok):
    model = _base(tiny_model_dir)
    engine = _started(model, tok, max_batch=3)
    try:
        alone = [_run(engine, p, **kw).text for p, kw in _requests()]
        assert engine.stats()["max_rows_in_step"] == 1
    finally:
        engine.close()
    engine = Engine(model, tok, base_name="tiny", max_batch=3)  # all queued before the thread starts
    got = [Collect() for _ in _requests()]
    for c, (p, kw) in zip(got, _requests()):
        engine.submit(p, SamplingParams(**kw), on_event=c)
    assert engine.stats()["queued"] == len(got)
    engine.start()
    try:
        assert [c.wait().text for c in got] == alone
        stats = engine.stats()
        assert stats["max_rows_in_step"] == 3  # three rows per step; the others waited for a slot
        assert stats["requests_done"] == len(got) and stats["slots_busy"] == 0 and stats["queued"] == 0
    finally:
        engine.close()


def test_a_request_submitted_while_another_decodes_joins_at_the_next_step(tiny_model_dir, tok):
    model = _base(tiny_model_dir)
    engine = _started(model, tok)
    try:
        long_alone = _run(engine, PROMPTS[1], max_tokens=60, temperature=0, ignore_eos=True).text
        short_alone = _run(engine, PROMPTS[0], max_tokens=5, temperature=0, ignore_eos=True).text
        reached, go = threading.Event(), threading.Event()

        def hold_first_event(c, event):  # on the engine thread: the engine waits here
            if len(c.events) == 1:
                reached.set()
                assert go.wait(60)

        order = []
        first = Collect(lambda c, e: (hold_first_event(c, e), e.kind == "done" and order.append("long")))
        second = Collect(lambda c, e: e.kind == "done" and order.append("short"))
        engine.submit(PROMPTS[1], SamplingParams(max_tokens=60, temperature=0, ignore_eos=True), on_event=first)
        assert reached.wait(60)
        engine.submit(PROMPTS[0], SamplingParams(max_tokens=5, temperature=0, ignore_eos=True), on_event=second)
        go.set()
        assert (first.wait().text, second.wait().text) == (long_alone, short_alone)
        assert order == ["short", "long"]  # the short one did not wait for the long one
        assert engine.stats()["max_rows_in_step"] == 2
    finally:
        engine.close()


def test_same_seed_repeats_and_another_seed_differs(tiny_model_dir, tok):
    engine = _started(_base(tiny_model_dir), tok)
    try:
        kw = {"max_tokens": 24, "temperature": 1.0, "top_p": 0.95, "ignore_eos": True}
        a = [_run(engine, p, seed=3, **kw).text for p in PROMPTS]
        assert [_run(engine, p, seed=3, **kw).text for p in PROMPTS] == a
        assert [_run(engine, p, seed=4, **kw).text for p in PROMPTS] != a
        assert [_run(engine, p, seed=3, choice=1, **kw).text for p in PROMPTS] != a  # choices differ
        greedy = [_run(engine, p, max_tokens=24, temperature=0, ignore_eos=True).text for p in PROMPTS]
        assert greedy != a
    finally:
        engine.close()


def test_ignore_eos_asks_for_exactly_max_tokens(tiny_model_dir, tok):
    model = _steer(_base(tiny_model_dir), dict.fromkeys(range(len(tok)), tok.eos_token_id))  # EOS every time
    engine = _started(model, tok)
    try:
        stopped = _run(engine, "def f():", max_tokens=7, temperature=0).done
        assert (stopped.finish_reason, stopped.completion_tokens, stopped.stop_detail) == ("stop", 1, "eos")
        full = _run(engine, "def f():", max_tokens=7, temperature=0, ignore_eos=True)
        assert (full.done.finish_reason, full.done.completion_tokens, full.text) == ("length", 7, "")
        assert full.done.stop_detail is None
    finally:
        engine.close()


# ---------------------------------------------------------------------------------------------- adapters


def test_each_row_gets_its_own_adapter_in_one_mixed_batch(tiny_model_dir, tiny_adapter_dirs, tok):
    from peft import PeftModel

    from codetune.serving.adapters import load_for_serving

    model, tokenizer, base_name = load_for_serving(str(tiny_model_dir), tiny_adapter_dirs)
    refs = {base_name: _base(tiny_model_dir)}
    for name, path in tiny_adapter_dirs.items():
        refs[name] = PeftModel.from_pretrained(_base(tiny_model_dir), str(path)).eval()
    want = {(m, p): _hf_greedy(ref, tok, p, 20) for m, ref in refs.items() for p in PROMPTS}

    engine = Engine(model, tokenizer, base_name=base_name, adapters=list(tiny_adapter_dirs))
    assert engine.models == [base_name, "a", "b"]
    got = {}
    for m in refs:
        for p in PROMPTS:
            got[(m, p)] = Collect()
            engine.submit(p, SamplingParams(max_tokens=20, temperature=0), model=m, on_event=got[(m, p)])
    engine.start()
    try:
        for key, c in got.items():
            assert (c.wait().text, c.done.completion_tokens, c.done.finish_reason) == want[key], key
        # Base, a and b rows in the same steps (every request but those that end at their first token).
        assert engine.stats()["max_rows_in_step"] == sum(c.done.completion_tokens > 1 for c in got.values())
        assert engine.stats()["max_rows_in_step"] >= len(got) - 1
    finally:
        engine.close()
    for p in PROMPTS:  # the adapters change the outputs, each differently
        texts = [want[(m, p)][0] for m in refs]
        assert len(set(texts)) == 3, (p, texts)


# ---------------------------------------------------------------------------------------------- text


def test_stop_strings_cut_before_the_first_match_and_end_the_request(tiny_model_dir, tok):
    engine = _started(_base(tiny_model_dir), tok)
    try:
        kw = {"max_tokens": 40, "temperature": 0, "ignore_eos": True}
        full = _run(engine, PROMPTS[0], **kw)
        text = full.text
        assert len(text) > 20
        stop = text[8:14]
        misses = [f"<never {i}>" for i in range(12)]
        cut = _run(engine, PROMPTS[0], stop=[*misses, stop], **kw)
        assert cut.text == text[: text.index(stop)]
        assert cut.done.finish_reason == "stop" and cut.done.completion_tokens < 40
        assert (cut.done.stop_detail, cut.done.stop_word) == ("stop_string", stop)
        unmatched = _run(engine, PROMPTS[0], stop=[text[8:14] + "\x00"], **kw)  # its start is held, then sent
        assert unmatched.text == text and unmatched.done.finish_reason == "length"
    finally:
        engine.close()


def test_stop_at_function_end_cuts_where_the_function_ends(tiny_model_dir, tok):
    body = "\n    return a + b\nprint(add)"
    engine = _started(_steer(_base(tiny_model_dir), _chain(tok, "def add(a, b):", body)), tok)
    try:
        got = _run(engine, "def add(a, b):", max_tokens=40, temperature=0, stop_at_function_end=True)
        assert got.text == "\n    return a + b\n" and got.done.finish_reason == "stop"
        assert got.done.stop_detail == "function_end"
        free = _run(engine, "def add(a, b):", max_tokens=40, temperature=0)
        assert free.text.startswith("\n    return a + b\nprint(")  # without the rule it writes on
    finally:
        engine.close()


def test_brace_languages_stop_after_the_closing_brace(tiny_model_dir, tok):
    body = " return x;}\ng"
    engine = _started(_steer(_base(tiny_model_dir), _chain(tok, "function f(x) {", body)), tok)
    try:
        kw = {"max_tokens": 40, "temperature": 0, "stop_at_function_end": True, "language": "javascript"}
        got = _run(engine, "function f(x) {", **kw)
        assert got.text == " return x;}" and got.done.finish_reason == "stop"
    finally:
        engine.close()


def test_a_trailing_newline_and_indent_is_healed_not_returned(tiny_model_dir, tok):
    """The model writes EOS right after the prompt's "\\n" + indentation (as a trained adapter does), and the
    body after the natural token boundary; healing reproduces the run and returns the body only."""
    prompt = "def add(a, b):\n    "
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    pairs = _chain(tok, "def add(a, b):", "\n    return a + b")
    pairs[ids[-1]] = tok.eos_token_id  # from the prompt as sent: EOS at once
    engine = _started(_steer(_base(tiny_model_dir), pairs), tok)
    try:
        got = _run(engine, prompt, max_tokens=10, temperature=0)
        assert got.text.startswith("return a + b"), got.text
        unhealed = _run(engine, prompt, max_tokens=10, temperature=0, heal=False)
        assert (unhealed.text, unhealed.done.completion_tokens, unhealed.done.stop_detail) == ("", 1, "eos")
        assert got.done.prompt_tokens == len(tok(prompt)["input_ids"])  # the prompt as sent
        # The natural split of "\n    return" is "\n   " + " return": two tokens reproduce the run.
        natural = tok("def add(a, b):\n    return", add_special_tokens=False)["input_ids"]
        assert ids[-1] not in natural
    finally:
        engine.close()


def test_healing_a_single_newline_gives_what_generate_gives_when_trimming_it(tiny_model_dir, tok):
    from codetune.config import GenerateConfig
    from codetune.generate import generate

    model = _base(tiny_model_dir)
    prompts = ["def add(a, b):\n", 'def clamp(x, lo, hi):\n    """Clamp x."""\n']
    for p in prompts:  # the model's greedy token after the trimmed prompt starts with a newline
        head = tok(p[:-1], add_special_tokens=False)["input_ids"]
        _steer(model, {head[-1]: tok("\n", add_special_tokens=False)["input_ids"][0]}, boost=5.0)
    cfg = GenerateConfig(max_new_tokens=24, batch_size=1)
    ref = {}
    for batch in generate(model, tok, prompts, "python", cfg, device="cpu", precision="fp32", progress=False):
        ref.update({g.index: g for g in batch})
    engine = _started(model, tok)
    try:
        for i, p in enumerate(prompts):
            got = _run(engine, p, max_tokens=24, temperature=0, stop_at_function_end=True)
            assert got.text == ref[i].completion
            assert got.done.completion_tokens == ref[i].n_new_tokens
    finally:
        engine.close()


# ---------------------------------------------------------------------------------------------- limits


def test_the_queue_is_bounded(tiny_model_dir, tok):
    engine = Engine(_base(tiny_model_dir), tok, base_name="tiny", max_batch=1, max_queue=1)
    kw = {"max_tokens": 4, "temperature": 0}
    first, second = Collect(), Collect()
    engine.submit("x", SamplingParams(**kw), on_event=first)
    engine.submit("x", SamplingParams(**kw), on_event=second)
    with pytest.raises(Overloaded, match="1 slots are busy and 1 requests are waiting") as exc:
        engine.submit("x", SamplingParams(**kw), on_event=Collect())
    assert exc.value.http_status == 503
    engine.start()
    try:
        assert first.wait().done.finish_reason and second.wait().done.finish_reason
        assert _run(engine, "x", **kw).done.completion_tokens >= 1  # room again
    finally:
        engine.close()


def test_cancel_frees_the_slot_for_the_next_request(tiny_model_dir, tok):
    engine = Engine(_base(tiny_model_dir), tok, base_name="tiny", max_batch=1)
    handles = {}
    first = Collect(lambda c, e: len(c.events) == 2 and handles["first"].cancel())
    handles["first"] = engine.submit(
        PROMPTS[0], SamplingParams(max_tokens=400, temperature=0, ignore_eos=True), on_event=first
    )
    second = Collect()
    engine.submit(PROMPTS[1], SamplingParams(max_tokens=5, temperature=0), on_event=second)
    engine.start()
    try:
        assert first.wait().done.finish_reason == "cancelled"
        assert first.done.completion_tokens < 400
        assert second.wait().done.finish_reason in ("stop", "length")
        stats = engine.stats()
        assert (stats["slots_busy"], stats["queued"], stats["requests_done"]) == (0, 0, 2)
    finally:
        engine.close()


def test_a_request_cancelled_while_queued_never_takes_a_slot(tiny_model_dir, tok):
    engine = Engine(_base(tiny_model_dir), tok, base_name="tiny", max_batch=1, max_queue=4)
    first, second = Collect(), Collect()
    engine.submit("x", SamplingParams(max_tokens=6, temperature=0), on_event=first)
    engine.submit("x", SamplingParams(max_tokens=6, temperature=0), on_event=second).cancel()
    engine.start()
    try:
        assert second.wait().done.finish_reason == "cancelled" and second.done.completion_tokens == 0
        assert first.wait().done.finish_reason in ("stop", "length")
    finally:
        engine.close()


def test_close_cancels_every_request_and_refuses_new_ones(tiny_model_dir, tok):
    engine = _started(_base(tiny_model_dir), tok, max_batch=1)
    decoding, waiting = Collect(lambda c, e: len(c.events) == 1 and engine.close()), Collect()
    engine.submit(PROMPTS[0], SamplingParams(max_tokens=400, temperature=0, ignore_eos=True), on_event=decoding)
    engine.submit(PROMPTS[1], SamplingParams(max_tokens=400), on_event=waiting)
    assert decoding.wait().done.finish_reason == "cancelled"
    assert waiting.wait().done.finish_reason == "cancelled"
    with pytest.raises(Stopped):
        engine.submit("x", SamplingParams(), on_event=Collect())


def test_requests_the_engine_refuses(tiny_model_dir, tok):
    engine = Engine(_base(tiny_model_dir), tok, base_name="tiny", context=4096)
    assert engine.context == 512  # the model's position limit
    with pytest.raises(UnknownModel, match="model 'nope' is not loaded; use one of: tiny") as e404:
        engine.submit("x", SamplingParams(), model="nope", on_event=Collect())
    assert e404.value.http_status == 404
    long_prompt = "x = 1\n" * 60
    n = engine.count_tokens(long_prompt)
    assert 100 < n < 500
    with pytest.raises(PromptTooLong, match=f"the prompt has {n} tokens") as e400:
        engine.submit(long_prompt, SamplingParams(max_tokens=513 - n), on_event=Collect())
    assert e400.value.http_status == 400
    for bad, field in [
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"stop_at_function_end": True, "language": "cobol"}, "language"),
    ]:
        with pytest.raises(InvalidRequest, match=f"`{field}`"):
            engine.submit("x", SamplingParams(**bad), on_event=Collect())
    assert engine.stats()["queued"] == 0
    engine.close()


def test_a_failing_callback_cancels_its_own_request_only(tiny_model_dir, tok):
    engine = _started(_base(tiny_model_dir), tok)
    try:

        def explode(c, event):
            if event.kind == "text":
                raise RuntimeError("client went away")

        broken, fine = Collect(explode), Collect()
        engine.submit(PROMPTS[0], SamplingParams(max_tokens=50, temperature=0, ignore_eos=True), on_event=broken)
        engine.submit(PROMPTS[1], SamplingParams(max_tokens=8, temperature=0), on_event=fine)
        assert broken.wait().done.finish_reason == "cancelled"
        assert fine.wait().done.finish_reason in ("stop", "length")
    finally:
        engine.close()


def test_a_failed_prefill_is_an_error_event_and_the_engine_serves_on(tiny_model_dir, tok, monkeypatch):
    from codetune import decoding

    engine = _started(_base(tiny_model_dir), tok)
    real = decoding.prefill
    calls = []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return real(*a, **k)

    monkeypatch.setattr(decoding, "prefill", flaky)
    try:
        failed = _run(engine, "x", max_tokens=4)
        assert [e.kind for e in failed.events] == ["error"] and "out of memory" in failed.events[0].message
        assert _run(engine, "x", max_tokens=4, temperature=0).done.finish_reason in ("stop", "length")
        assert engine.stats()["slots_busy"] == 0
    finally:
        engine.close()


def test_the_cache_grows_while_rows_decode(tiny_model_dir, tok):
    model = _base(tiny_model_dir)
    engine = _started(model, tok)
    try:
        short_kw = {"max_tokens": 30, "temperature": 0, "ignore_eos": True}
        long_kw = {"max_tokens": 400, "temperature": 0, "ignore_eos": True}
        short_alone = _run(engine, PROMPTS[1], **short_kw).text
        long_alone = _run(engine, PROMPTS[0], **long_kw).text
        engine.close()
        engine = _started(model, tok)
        reached, go = threading.Event(), threading.Event()

        def hold(c, event):
            if len(c.events) == 1:
                reached.set()
                assert go.wait(60)

        short, long = Collect(hold), Collect()
        engine.submit(PROMPTS[1], SamplingParams(**short_kw), on_event=short)
        assert reached.wait(60)
        assert engine._cache is None or engine._cache.capacity == 256  # sized for the short row
        engine.submit(PROMPTS[0], SamplingParams(**long_kw), on_event=long)
        go.set()
        assert (short.wait().text, long.wait().text) == (short_alone, long_alone)
        assert engine._cache.capacity == 512 and engine.stats()["max_rows_in_step"] == 2
    finally:
        engine.close()


def test_bf16_gives_what_generate_gives_in_bf16_with_bf16_weights_and_cache(tiny_model_dir, tok):
    from codetune.config import GenerateConfig
    from codetune.generate import generate

    cfg = GenerateConfig(max_new_tokens=24, batch_size=4)
    ref = {}
    for batch in generate(_base(tiny_model_dir), tok, PROMPTS, "python", cfg, device="cpu", precision="bf16"):
        ref.update({g.index: g for g in batch})
    model = _base(tiny_model_dir)
    engine = _started(model, tok, precision="bf16")
    try:
        assert model.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16  # cast once
        for i, p in enumerate(PROMPTS):
            got = _run(engine, p, max_tokens=24, temperature=0, stop_at_function_end=True)
            assert (got.text, got.done.completion_tokens) == (ref[i].completion, ref[i].n_new_tokens)
        assert engine._cache.layers[0].keys.dtype == torch.bfloat16
    finally:
        engine.close()


def test_a_failed_step_ends_its_rows_with_an_error_and_the_engine_serves_on(tiny_model_dir, tok, monkeypatch):
    from codetune import decoding

    engine = Engine(_base(tiny_model_dir), tok, base_name="tiny")
    real = decoding.forward_logits
    steps = []

    def flaky(*a, **k):
        if "position_ids" in k:  # a decoding step, not a prefill
            steps.append(1)
            if len(steps) == 2:
                raise RuntimeError("device lost")
        return real(*a, **k)

    monkeypatch.setattr(decoding, "forward_logits", flaky)
    rows = [Collect(), Collect()]
    for c, p in zip(rows, PROMPTS):
        engine.submit(p, SamplingParams(max_tokens=20, temperature=0, ignore_eos=True), on_event=c)
    engine.start()
    try:
        for c in rows:
            kinds = [e.kind for e in c.wait().events]
            assert kinds[-1] == "error" and "done" not in kinds and "device lost" in c.events[-1].message
        assert _run(engine, PROMPTS[2], max_tokens=6, temperature=0, ignore_eos=True).done.completion_tokens == 6
        assert engine.stats()["slots_busy"] == 0
    finally:
        engine.close()


def test_a_character_split_across_tokens_reaches_the_client_whole(tiny_model_dir, tok):
    body = " return 'é→"
    engine = _started(_steer(_base(tiny_model_dir), _chain(tok, "def f():", body)), tok)
    try:
        got = _run(engine, "def f():", max_tokens=len(tok(body)["input_ids"]), temperature=0)
        assert got.text == body and got.done.finish_reason == "length"
        pieces = [e.text for e in got.events if e.kind == "text"]
        assert all("\ufffd" not in t for t in pieces)
        assert len(pieces) < got.done.completion_tokens  # some tokens completed no character
    finally:
        engine.close()


def test_mixed_adapters_in_bf16_give_what_generate_gives_per_adapter(tiny_model_dir, tiny_adapter_dirs, tok):
    from peft import PeftModel

    from codetune.config import GenerateConfig
    from codetune.generate import generate
    from codetune.serving.adapters import load_for_serving

    cfg = GenerateConfig(max_new_tokens=16, batch_size=4)
    want = {}
    for name in ["base", *tiny_adapter_dirs]:
        ref = _base(tiny_model_dir)
        if name != "base":
            ref = PeftModel.from_pretrained(ref, str(tiny_adapter_dirs[name])).eval()
        for batch in generate(ref, tok, PROMPTS, "python", cfg, device="cpu", precision="bf16", progress=False):
            want.update({(name, g.index): g.completion for g in batch})
    model, tokenizer, _ = load_for_serving(str(tiny_model_dir), tiny_adapter_dirs)
    engine = Engine(model, tokenizer, base_name="base", adapters=list(tiny_adapter_dirs), precision="bf16")
    got = {}
    for name in ["base", *tiny_adapter_dirs]:
        for i, p in enumerate(PROMPTS):
            got[(name, i)] = Collect()
            kw = {"max_tokens": 16, "temperature": 0, "stop_at_function_end": True}
            engine.submit(p, SamplingParams(**kw), model=name, on_event=got[(name, i)])
    engine.start()
    try:
        assert {k: c.wait().text for k, c in got.items()} == want
    finally:
        engine.close()
