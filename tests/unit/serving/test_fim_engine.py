"""Serving fill-in-the-middle on the tiny model: a tiny FIM adapter (built with peft directly) loaded next
to a plain one, the PSM prompt the engine reads, middles equal to peft alone in a mixed batch, the stop at
the sentinels, and refusals for models without FIM."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from codetune import fim
from codetune.serving.engine import Engine, Event, Infill, NoFim, SamplingParams

PREFIX = 'def clamp(x, lo, hi):\n    """Clamp x."""\n    if x < lo:\n        '  # ends in indentation: never healed
SUFFIX = "\n    return x\n"


def build_fim_adapter(base_dir: Path, out: Path, seed: int = 3) -> Path:
    """A LoRA adapter as codetune saves one trained with FIM, built with peft directly: the base gets the
    sentinels (`fim.add_fim_tokens`), LoRA trains their rows (peft's `trainable_token_indices`: the input
    embedding, and the LM head when untied), every weight random and non-zero, saved with its tokenizer."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    tok = AutoTokenizer.from_pretrained(base_dir)
    ids = fim.add_fim_tokens(model, tok).ids
    rows = {"embed_tokens": ids}
    if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
        rows["lm_head"] = ids
    torch.manual_seed(seed)
    cfg = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
        trainable_token_indices=rows,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():  # "trained" rows: unlike the mean-initialised ones, at the scale of the other rows
        for name, p in peft_model.named_parameters():
            if "trainable_tokens_delta" in name:
                p.copy_(torch.randn_like(p) * model.config.initializer_range)
    # The vocabulary grew: peft would save the whole embedding ("auto") and warn. The sentinel rows are saved
    # as trainable tokens; the other rows are the base's (add_fim_tokens is deterministic), as codetune saves.
    peft_model.save_pretrained(out, save_embedding_layers=False)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fim_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return build_fim_adapter(tiny_model_dir, tmp_path_factory.mktemp("fim_adapter") / "f")


@pytest.fixture(scope="module")
def served(tiny_model_dir, tiny_adapter_dirs, fim_dir):
    from codetune.serving.adapters import load_served

    return load_served(str(tiny_model_dir), {"a": tiny_adapter_dirs["a"], "f": fim_dir})


def _engine(served, **kw) -> Engine:
    engine = Engine(
        served.model,
        served.tokenizer,
        base_name=served.base_name,
        adapters=["a", "f"],
        fim_models=served.fim_models,
        untrained_ids=served.untrained_ids,
        **kw,
    )
    return engine


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.finished = threading.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if event.kind in ("done", "error"):
            self.finished.set()

    def wait(self) -> Collect:
        assert self.finished.wait(120), "the request never finished"
        assert self.events[-1].kind == "done", self.events[-1]
        return self

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if e.kind == "text")

    @property
    def done(self) -> Event:
        return self.events[-1]


def _greedy(model, ids: list[int], n: int, stops: set[int]) -> list[int]:
    """Greedy tokens of `model` alone, one whole forward per token: the reference."""
    out: list[int] = []
    with torch.no_grad():
        for _ in range(n):
            t = int(model(torch.tensor([ids + out])).logits[0, -1].argmax())
            out.append(t)
            if t in stops:
                break
    return out


def _fresh(tiny_model_dir, adapter: Path | None = None, fim_adapter: bool = False):
    """The base alone (its own vocabulary), or with one adapter loaded the plain peft way."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    if fim_adapter:
        fim.add_fim_tokens(model, tok)  # then plain peft loads the trained rows (fim.py's docstring)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter)).eval()
    return model, tok


def test_only_the_adapter_trained_with_fim_takes_fim(served, fim_dir):
    tokens = fim.fim_tokens(served.tokenizer)
    assert served.fim_models == ["f"] and tokens is not None
    assert served.untrained_ids == tokens.ids  # added for "f"; rows the base and "a" never trained
    engine = _engine(served)
    assert engine.fim_models == ["f"]
    assert engine.takes_fim("f") and not engine.takes_fim("a") and not engine.takes_fim(None)


def test_a_fim_adapter_named_before_a_plain_one_loads(tiny_model_dir, tiny_adapter_dirs, fim_dir):
    """peft cannot load a plain adapter after one with trained token rows; the order given must not matter."""
    from codetune.serving.adapters import load_served

    s = load_served(str(tiny_model_dir), [("f", fim_dir), ("a", tiny_adapter_dirs["a"])])
    assert s.fim_models == ["f"] and set(s.model.peft_config) == {"f", "a"}


def test_the_engine_reads_the_psm_layout_tokenized_piece_by_piece(served, monkeypatch):
    """The ids prefilled are [BOS] extra <fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle_start,
    each piece as plain text: the prefix's trailing indentation is kept (no healing), a sentinel written in
    the code stays characters."""
    from codetune import decoding

    seen: list[list[int]] = []
    real = decoding.prefill

    def spy(model, ids, *a, **k):
        seen.append(list(ids))
        return real(model, ids, *a, **k)

    monkeypatch.setattr(decoding, "prefill", spy)
    tok = served.tokenizer
    t = fim.fim_tokens(tok)
    engine = _engine(served)
    engine.start()
    try:
        suffix = SUFFIX + "# <fim_middle> in a comment\n"
        fills = [Infill(suffix), Infill(suffix, middle_start="return ", extra="\n\n--- snippet ---\n\nx = 1\n")]
        for fill in fills:
            c = Collect()
            engine.submit(PREFIX, SamplingParams(max_tokens=3, temperature=0, infill=fill), model="f", on_event=c)
            c.wait()
            assert c.done.prompt_tokens == len(seen[-1]) == engine.count_tokens(PREFIX, fill)
    finally:
        engine.close()
    text = lambda s: tok(s, add_special_tokens=False, split_special_tokens=True)["input_ids"]  # noqa: E731
    assert seen[0] == fim.fim_ids(tok, PREFIX, suffix, "psm")
    assert seen[0] == [t.prefix, *text(PREFIX), t.suffix, *text(suffix), t.middle]  # the tiny tokenizer: no BOS
    assert seen[0].count(t.middle) == 1 and text(PREFIX)[-1] != text(PREFIX.rstrip())[-1]
    extra = "\n\n--- snippet ---\n\nx = 1\n"
    assert seen[1] == [*text(extra), t.prefix, *text(PREFIX), t.suffix, *text(suffix), t.middle, *text("return ")]


@pytest.fixture(scope="module")
def tied(tiny_model_dir, tiny_adapter_dirs, tmp_path_factory):
    """The tiny model with tied input/output embeddings (as the bundled SmolLM2 has), its own FIM adapter
    ("a" fits it too: LoRA on the attention only), and both served."""
    import shutil

    from transformers import AutoConfig, LlamaForCausalLM

    from codetune.serving.adapters import load_served

    base = tmp_path_factory.mktemp("tied") / "tiny-tied"
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.tie_word_embeddings = True
    torch.manual_seed(5)
    LlamaForCausalLM(config).save_pretrained(base)
    for f in Path(tiny_model_dir).glob("*token*"):
        shutil.copy(f, base / f.name)
    f_dir = build_fim_adapter(base, base.parent / "f")
    return base, f_dir, load_served(str(base), {"a": tiny_adapter_dirs["a"], "f": f_dir})


@pytest.mark.parametrize("embeddings", ["untied", "tied"])
def test_middles_in_a_mixed_batch_equal_each_model_alone(
    embeddings, served, tied, tiny_model_dir, tiny_adapter_dirs, fim_dir
):
    """Base, plain adapter "a" and FIM adapter "f" (a middle, and left to right) decode in the same steps;
    each gives what its model alone gives: "f" as plain peft loads it, "a" and the base over their own
    vocabulary (the sentinel rows added for "f" change nothing for them)."""
    if embeddings == "tied":
        tiny_model_dir, fim_dir, served = tied
    n = 12
    tok = served.tokenizer
    stops = fim.fim_stop_ids(tok)
    f_model, _ = _fresh(tiny_model_dir, fim_dir, fim_adapter=True)
    a_model, a_tok = _fresh(tiny_model_dir, tiny_adapter_dirs["a"])
    base_model, _ = _fresh(tiny_model_dir)
    plain = "def add(a, b):"
    expected = {
        "f-fim": _greedy(f_model, fim.fim_ids(tok, PREFIX, SUFFIX, "psm"), n, stops),
        "f": _greedy(f_model, tok(plain)["input_ids"], n, stops),
        "a": _greedy(a_model, a_tok(plain)["input_ids"], n, {tok.eos_token_id}),
        "base": _greedy(base_model, a_tok(plain)["input_ids"], n, {tok.eos_token_id}),
    }
    requests = {
        "f-fim": (PREFIX, "f", Infill(SUFFIX)),
        "f": (plain, "f", None),
        "a": (plain, "a", None),
        "base": (plain, None, None),
    }
    engine = _engine(served, max_batch=4)
    got = {}
    for key, (prompt, model, fill) in requests.items():  # queued before the engine starts: one batch
        got[key] = Collect()
        params = SamplingParams(max_tokens=n, temperature=0, infill=fill)
        engine.submit(prompt, params, model=model, on_event=got[key])
    engine.start()
    try:
        for key, c in got.items():
            c.wait()
            want = expected[key]
            assert c.text == tok.decode(want, skip_special_tokens=True), key
            assert c.done.completion_tokens == len(want), key
    finally:
        engine.close()
    assert engine.stats()["max_rows_in_step"] == 4  # they did share the decoding steps
    assert len(set(map(tuple, expected.values()))) == 4  # the four models differ: the test can tell them apart


def test_a_sentinel_ends_a_middle_and_models_without_fim_never_write_one(served, monkeypatch):
    """With every sentinel made the likeliest token: a middle ends at once ("stop", like EOS), a FIM model
    left to right too, and rows of the base and "a" write what they wrote before (their sentinel rows were
    never trained: they are not tokens those models can write)."""
    from codetune import decoding

    tok = served.tokenizer
    plain = "def add(a, b):"

    def run(engine: Engine, prompt: str, model: str | None, fill: Infill | None) -> Collect:
        c = Collect()
        engine.submit(prompt, SamplingParams(max_tokens=6, temperature=0, infill=fill), model=model, on_event=c)
        return c.wait()

    engine = _engine(served)
    engine.start()
    try:
        before = {m: run(engine, plain, m, None).text for m in (None, "a")}
    finally:
        engine.close()
    sentinels = torch.tensor(fim.fim_tokens(tok).ids)
    real = decoding.forward_logits

    def boosted(*a, **k):
        logits = real(*a, **k)
        logits[:, sentinels] += 1e4
        return logits

    monkeypatch.setattr(decoding, "forward_logits", boosted)
    engine = _engine(served)
    engine.start()
    try:
        middle = run(engine, PREFIX, "f", Infill(SUFFIX))
        assert middle.text == "" and middle.done.finish_reason == "stop" and middle.done.stop_detail == "eos"
        assert middle.done.completion_tokens == 1
        ignored = run(engine, plain, "f", None)
        assert ignored.done.finish_reason == "stop" and ignored.done.completion_tokens == 1
        for m in (None, "a"):
            c = run(engine, plain, m, None)
            assert c.text == before[m] and c.done.completion_tokens == 6, m
    finally:
        engine.close()


def test_fim_requests_to_models_without_fim_are_refused(served, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    engine = _engine(served)
    params = SamplingParams(max_tokens=2, infill=Infill(SUFFIX))
    for model in ("a", None):
        with pytest.raises(NoFim) as exc:
            engine.submit(PREFIX, params, model=model, on_event=Collect())
        assert exc.value.param == "suffix" and "fill-in-the-middle" in str(exc.value)
        assert "send `model` as one of: f" in str(exc.value)
    # Text that merely names the sentinels (a chat about FIM) is the HTTP layer's call: the engine serves it.
    # (/v1/completions and /completion refuse a prompt in the FIM layout for "a": tests/integration.)
    c = Collect()
    engine.start()
    engine.submit(fim.fim_prompt(PREFIX, SUFFIX), SamplingParams(max_tokens=2), model="a", on_event=c)
    assert c.wait().done.finish_reason in ("stop", "length")
    engine.close()

    # No FIM model at all (the tokenizer has no sentinels): the fix is to serve a FIM adapter.
    plain = Engine(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        AutoTokenizer.from_pretrained(tiny_model_dir),
        base_name="tiny",
    )
    with pytest.raises(NoFim) as exc:
        plain.submit(PREFIX, params, on_event=Collect())
    assert "data.fim_rate > 0" in str(exc.value) and "\n" not in str(exc.value)
    plain.close()


def test_bf16_serves_a_fim_adapter_beside_a_plain_one(tiny_model_dir, tiny_adapter_dirs, fim_dir):
    """bf16 stores the frozen Linear weights in bf16 (the LM head's base rows too); the trained sentinel rows
    stay fp32 and are cast as peft merges them: every row of a mixed batch still decodes."""
    from codetune.serving.adapters import load_served

    s = load_served(str(tiny_model_dir), {"a": tiny_adapter_dirs["a"], "f": fim_dir})
    engine = _engine(s, precision="bf16")
    got = [Collect() for _ in range(3)]
    for c, (prompt, model, fill) in zip(
        got, [(PREFIX, "f", Infill(SUFFIX)), ("x = 1", "a", None), ("x", None, None)]
    ):
        engine.submit(prompt, SamplingParams(max_tokens=4, temperature=0, infill=fill), model=model, on_event=c)
    engine.start()
    try:
        for c in got:
            assert c.wait().done.finish_reason in ("stop", "length")
    finally:
        engine.close()
