"""Per-row sampling (`decoding.pick_tokens`) and the engine under concurrent submitters, other architectures and
edge prompts."""

from __future__ import annotations

import threading

import pytest
import torch

from codetune import decoding
from codetune.errors import ModelLoadError
from codetune.serving.engine import Engine, Event, SamplingParams


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_pick_tokens_gives_each_row_what_it_gets_alone():
    torch.manual_seed(0)
    logits = torch.randn(6, 50) * 3
    temps = [0.0, 0.7, 1.3, 0.7, 1.0, 0.0]
    top_ps = [1.0, 0.9, 1.0, 0.9, 0.5, 0.3]
    seeded = [None, 1, 2, 3, 4, 5]  # row 5: a generator but temperature 0 -> greedy
    for _ in range(20):
        gens = [None if s is None else _gen(s) for s in seeded]
        together = decoding.pick_tokens(logits, temps, top_ps, gens)
        alone = []
        for r in range(6):
            g = None if seeded[r] is None else _gen(seeded[r])
            alone.append(decoding.pick_tokens(logits[r : r + 1], [temps[r]], [top_ps[r]], [g])[0])
        assert together == alone
        seeded = [None if s is None else s + 10 for s in seeded]
    greedy = logits.argmax(-1).tolist()
    assert together[0] == greedy[0] and together[5] == greedy[5]


def test_pick_tokens_samples_within_top_p():
    logits = torch.log(torch.tensor([[0.1, 0.6, 0.3], [0.35, 0.3, 0.35], [0.2, 0.3, 0.5]]))
    gens = [_gen(1), _gen(2), _gen(3)]
    picks = [decoding.pick_tokens(logits, [1.0, 1.0, 1.0], [0.5, 0.5, 1.0], gens) for _ in range(300)]
    assert {p[0] for p in picks} == {1}  # 0.6 >= 0.5 alone
    assert {p[1] for p in picks} == {0, 2}  # the two largest (ties in vocabulary order)
    assert {p[2] for p in picks} == {0, 1, 2}  # top_p 1: every token can come


def _model(kind: str, tok, attn: str = "sdpa"):
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, OPTConfig

    common = {"vocab_size": len(tok), "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    cfg = {
        "llama": lambda: LlamaConfig(
            **common,
            bos_token_id=tok.eos_token_id,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
        ),
        "gpt2": lambda: GPT2Config(**common, n_embd=32, n_layer=2, n_head=4, n_positions=256),
        "opt": lambda: OPTConfig(
            **common,
            hidden_size=32,
            num_hidden_layers=2,
            ffn_dim=64,
            num_attention_heads=4,
            word_embed_proj_dim=32,
        ),
    }[kind]()
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg, attn_implementation=attn).eval()


class _Events(list):
    """A request's callback: the events so far; `result()` waits for the end: (text, last event)."""

    def __init__(self) -> None:
        super().__init__()
        self.finished = threading.Event()

    def __call__(self, event: Event) -> None:
        self.append(event)
        if event.kind in ("done", "error"):
            self.finished.set()

    def result(self) -> tuple[str, Event]:
        assert self.finished.wait(120), "the request never finished"
        return "".join(e.text for e in self if e.kind == "text"), self[-1]


def _submit(engine, prompt, **kw) -> _Events:
    events = _Events()
    engine.submit(prompt, SamplingParams(**kw), on_event=events)
    return events


def _collect(engine, prompt, **kw) -> tuple[str, Event]:
    return _submit(engine, prompt, **kw).result()


PROMPTS = ["def add(a, b):", "class Stack:\n    def push(self, item):", "x = [", "import os"]


@pytest.mark.parametrize(("kind", "attn"), [("llama", "eager"), ("gpt2", "sdpa"), ("gpt2", "eager")])
def test_other_architectures_and_eager_attention_equal_hf_generate(tok, kind, attn):
    model = _model(kind, tok, attn)
    engine = Engine(model, tok, base_name="m", max_batch=3)
    assert engine.context == 256
    outs = [_submit(engine, p, max_tokens=25, temperature=0) for p in PROMPTS]  # queued together: they share steps
    engine.start()
    try:
        for p, events in zip(PROMPTS, outs):
            enc = tok(p, return_tensors="pt")
            with torch.no_grad():
                ref = model.generate(**enc, max_new_tokens=25, do_sample=False, pad_token_id=tok.pad_token_id)
            new = ref[0, enc["input_ids"].shape[1] :].tolist()
            assert events.result()[0] == tok.decode(new, skip_special_tokens=True)
        assert engine.stats()["max_rows_in_step"] == 3
    finally:
        engine.close()


def test_a_model_the_loop_cannot_drive_is_refused(tok):
    with pytest.raises(ModelLoadError, match="cannot batch this model: architecture 'opt'"):
        Engine(_model("opt", tok), tok, base_name="m")


def test_submitters_on_many_threads_get_what_each_gets_alone(tiny_model_dir, tok):
    from transformers import AutoModelForCausalLM

    engine = Engine(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tok, base_name="m", max_batch=4)
    engine.start()
    try:
        jobs = [(p, {"max_tokens": 10 + i, "temperature": 0.8, "seed": i}) for i, p in enumerate(PROMPTS * 3)]
        alone = [_collect(engine, p, **kw)[0] for p, kw in jobs]
        got: dict[int, str] = {}

        def client(k: int) -> None:
            for i in range(k, len(jobs), 4):
                got[i] = _collect(engine, jobs[i][0], **jobs[i][1])[0]

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert [got[i] for i in range(len(jobs))] == alone
        assert engine.stats()["max_rows_in_step"] >= 2 and engine.stats()["slots_busy"] == 0
    finally:
        engine.close()


def test_tiny_top_p_is_greedy_in_a_mixed_batch(tiny_model_dir, tok):
    from transformers import AutoModelForCausalLM

    engine = Engine(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tok, base_name="m")
    greedy = {"max_tokens": 20, "temperature": 0, "ignore_eos": True}
    nucleus = {"max_tokens": 20, "temperature": 1.0, "top_p": 1e-6, "seed": 1, "ignore_eos": True}
    wide = {"max_tokens": 20, "temperature": 1.5, "seed": 2, "ignore_eos": True}
    outs = {
        name: _submit(engine, PROMPTS[0], **kw)
        for name, kw in [("greedy", greedy), ("nucleus", nucleus), ("wide", wide)]
    }
    engine.start()
    try:
        texts = {name: events.result()[0] for name, events in outs.items()}
        assert texts["nucleus"] == texts["greedy"] != texts["wide"]
        assert engine.stats()["max_rows_in_step"] == 3
    finally:
        engine.close()


def test_edge_prompts(tiny_model_dir, tok):
    from transformers import AutoModelForCausalLM

    engine = Engine(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tok, base_name="m")
    engine.start()
    try:
        text, done = _collect(engine, "", max_tokens=5, temperature=0, ignore_eos=True)
        assert (done.prompt_tokens, done.completion_tokens) == (0, 5)  # decoded from BOS
        text, done = _collect(engine, "\n", max_tokens=5, temperature=0, ignore_eos=True)
        assert done.prompt_tokens == 1 and done.completion_tokens == 5 and not text.startswith("\n")
        steps = engine.stats()["steps"]
        text, done = _collect(engine, "def f():", max_tokens=1, temperature=0)
        assert done.completion_tokens == 1 and engine.stats()["steps"] == steps  # its prefill gave the token
        assert engine.count_tokens("def f():\n    ") == len(tok("def f():\n    ")["input_ids"])
    finally:
        engine.close()
