"""The refill decoding loop against HF `generate`, on tiny random models of each driven architecture."""

import pytest
import torch

from codetune import decoding
from codetune.config import GenerateConfig
from codetune.generate import Generation, generate
from codetune.kv_cache import SlotCache

# Different lengths (so rows of a step differ), more prompts than rows (so rows are refilled).
PROMPTS = [
    "def add(a, b):\n    ",
    'def clamp(x, lo, hi):\n    """Clamp x into the closed interval [lo, hi]."""\n    if x < lo:\n',
    "def f(x):",
    "class Stack:\n    def push(self, item):\n        ",
    'def size(self):\n    """How many items are stacked."""\n',
    "def mul(x, y=2):\n    total = x * 3 + y\n    for i in range(4):\n        total += i\n",
    "def g():\n",
]

M = 29  # steering (`_steer`): a rule for the tokens whose id % M == r


def _python_stops(tok) -> dict[int, str]:
    """After a token with id % M == 0 a newline, after a newline a name at column 0 (the function ends),
    and sometimes EOS: rows end for each of the three reasons, at different lengths."""
    newline = tok.convert_tokens_to_ids(tok.tokenize("\n"))[0]
    return {0: "\n", newline % M: "return", 17: "EOS"}


def _tiny(kind: str, tok, attn: str = "sdpa", steer: dict[int, str] | None = None):
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, MistralConfig, OPTConfig, Qwen2Config

    ids = {"eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id, "bos_token_id": tok.eos_token_id}
    common = {"vocab_size": len(tok), **ids}
    llama_like = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
    }
    cfg = {
        "llama": lambda: LlamaConfig(**common, **llama_like),
        "mistral": lambda: MistralConfig(**common, **llama_like, sliding_window=None),
        "qwen2": lambda: Qwen2Config(**common, **llama_like),
        "gpt2": lambda: GPT2Config(**common, n_embd=32, n_layer=2, n_head=4, n_positions=512),
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
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation=attn).eval()
    return _steer(model, tok, _python_stops(tok) if steer is None else steer)


def _steer(model, tok, rules: dict[int, str]):
    """Make the random model write `rules[r]` after any token whose id % M == r, so that lines end, functions
    close and EOS comes (a random model rarely writes a newline). The boost depends only on the position's
    input token, so every decoding path sees the same logits."""
    boost = torch.zeros(M, len(tok))
    for r, text in rules.items():
        boost[r, tok.convert_tokens_to_ids(tok.tokenize(text))[0] if text != "EOS" else tok.eos_token_id] = 2.0
    seen = {}

    def remember(module, args, kwargs):
        seen["ids"] = kwargs.get("input_ids", args[0] if args else None)

    def add(module, args, out):
        ids = seen["ids"][:, -out.shape[1] :]
        return out + boost[ids % M]

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner.get_input_embeddings().register_forward_pre_hook(remember, with_kwargs=True)
    inner.get_output_embeddings().register_forward_hook(add)
    return model


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matrices: one thread is faster, and much faster on a machine busy with other work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def _run(model, tok, cfg, prompts=PROMPTS, language="python", **kw):
    out = {}
    for batch in generate(
        model, tok, prompts, language, cfg, device="cpu", precision="fp32", progress=False, **kw
    ):
        assert len({g.index for g in batch}) == 1 and len(batch) == cfg.n_samples  # a prompt's samples together
        for g in batch:
            out[(g.index, g.sample)] = g
    return out


def _hf_one_by_one(model, tok, cfg, prompts=PROMPTS, language="python"):
    """The seed study's way: HF `generate`, one prompt at a time (the fallback path at width 1)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(decoding, "unsupported", lambda model, capacity: "forced by the test")
        return _run(model, tok, cfg.model_copy(update={"batch_size": 1}), prompts, language)


@pytest.mark.parametrize(
    ("kind", "attn"),
    [("llama", "sdpa"), ("llama", "eager"), ("gpt2", "sdpa"), ("mistral", "sdpa"), ("qwen2", "sdpa")],
)
def test_greedy_equals_hf_generate_prompt_by_prompt(tok, kind, attn, monkeypatch):
    model = _tiny(kind, tok, attn)
    assert decoding.unsupported(model, 512) is None
    moves = []
    real_move = SlotCache.move
    monkeypatch.setattr(SlotCache, "move", lambda self, *a: (moves.append(a), real_move(self, *a))[1])
    cfg = GenerateConfig(max_new_tokens=40, batch_size=4)  # 7 prompts: refills, then rows move into holes
    ours = _run(model, tok, cfg)
    ref = _hf_one_by_one(model, tok, cfg)
    assert ours == ref
    assert len(ours) == len(PROMPTS)
    assert len({g.stop for g in ours.values()}) >= 2 and len({g.n_new_tokens for g in ours.values()}) >= 3
    assert moves, "no row moved: the batch never shrank around a hole"


def test_a_brace_language_stops_at_the_closing_brace_as_hf_generate_does(tok):
    prompts = [
        "function f(x) {\n  ",
        "const g = (a, b) => {\n  return a",
        "function h() {",
        "let k = function () {\n",
    ]
    model = _tiny("llama", tok, steer={0: "}", 5: "{", 17: "EOS"})
    cfg = GenerateConfig(max_new_tokens=30, batch_size=2)
    ours = _run(model, tok, cfg, prompts, "javascript")
    assert ours == _hf_one_by_one(model, tok, cfg, prompts, "javascript")
    ends = [g for g in ours.values() if g.stop == "function_end"]
    assert ends and all(g.completion.endswith("}") for g in ends)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_tokens_equal_hf_generate_without_a_stop_rule_and_no_step_runs_a_finished_row(tok, kind):
    """Token for token against HF `generate` on each prompt alone; every row-step produced a token."""
    model = _tiny(kind, tok, steer={17: "EOS"})  # rows end at EOS or the cap, at different steps
    cfg = GenerateConfig(max_new_tokens=30, batch_size=3)
    ids = dict(zip(range(len(PROMPTS)), tok(PROMPTS)["input_ids"]))
    loop = decoding.Decoder(model, tok, PROMPTS, ids, list(ids), "python", cfg, device="cpu", precision="fp32")
    loop.watch.needs_check = lambda row, token: False  # no stop rule: rows end at EOS or the cap
    got = dict(loop.run())
    for i, prompt in enumerate(PROMPTS):
        enc = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=30, do_sample=False, pad_token_id=tok.pad_token_id)
        want = out[0, enc["input_ids"].shape[1] :].tolist()
        assert got[i] == [want]  # HF ends a lone row at EOS or the cap, as the loop does
    n_tokens = sum(len(s[0]) for s in got.values())
    assert loop.row_steps == n_tokens - len(PROMPTS)  # each row's first token comes from its prefill
    assert loop.steps >= n_tokens / cfg.batch_size - len(PROMPTS)


def test_a_row_that_ends_at_its_first_token_takes_no_step(tok):
    model = _tiny("llama", tok, steer=dict.fromkeys(range(M), "EOS"))
    cfg = GenerateConfig(max_new_tokens=20, batch_size=2)
    ids = dict(zip(range(len(PROMPTS)), tok(PROMPTS)["input_ids"]))
    loop = decoding.Decoder(model, tok, PROMPTS, ids, list(ids), "python", cfg, device="cpu", precision="fp32")
    got = dict(loop.run())
    assert got == {i: [[tok.eos_token_id]] for i in range(len(PROMPTS))}
    assert loop.steps == 0 and loop.prefills == len(PROMPTS)


def test_results_do_not_depend_on_skip_or_width(tok):
    model = _tiny("gpt2", tok)
    cfg = GenerateConfig(max_new_tokens=24, batch_size=3)
    full = _run(model, tok, cfg)
    resumed = _run(model, tok, cfg, skip={0, 2, 5})
    assert resumed == {k: v for k, v in full.items() if k[0] not in {0, 2, 5}}
    assert _run(model, tok, cfg.model_copy(update={"batch_size": 32})) == full


def test_sampling_is_reproducible_across_widths_and_skips(tok):
    model = _tiny("llama", tok)
    cfg = GenerateConfig(max_new_tokens=16, batch_size=2, n_samples=3, temperature=1.0, top_p=0.9)
    a = _run(model, tok, cfg, seed=7)
    assert _run(model, tok, cfg.model_copy(update={"batch_size": 5}), seed=7) == a
    assert _run(model, tok, cfg, seed=7, skip={1, 3}) == {k: v for k, v in a.items() if k[0] not in {1, 3}}
    assert len(a) == 3 * len(PROMPTS)
    per_prompt = [{a[(i, s)].raw for s in range(3)} for i in range(len(PROMPTS))]
    assert sum(len(s) > 1 for s in per_prompt) >= len(PROMPTS) // 2  # samples differ: it samples
    other = _run(model, tok, cfg, seed=8)
    assert other != a


def test_top_p_keeps_the_smallest_set_with_that_mass():
    picker = decoding._Picker(GenerateConfig(n_samples=2, temperature=1.0, top_p=0.5), seed=0, device="cpu")
    logits = torch.log(torch.tensor([[0.1, 0.6, 0.3], [0.35, 0.3, 0.35]]))
    rows = [decoding._Row(0, s, 1, [], picker.generator(s, 0), False) for s in range(2)]
    picks = [picker.pick(logits, rows) for _ in range(200)]
    assert {p[0] for p in picks} == {1}  # 0.6 >= 0.5 alone
    assert {p[1] for p in picks} == {0, 2}  # 0.35 < 0.5: the two largest (ties kept in vocabulary order)


def test_a_peft_model_runs_in_the_loop_with_its_adapter(tok):
    from codetune.config import LoraConfig
    from codetune.models import apply_lora

    base = _tiny("llama", tok)
    cfg = GenerateConfig(max_new_tokens=24, batch_size=3)
    plain = _run(base, tok, cfg)
    model = apply_lora(base, LoraConfig(r=4, alpha=8, dropout=0.0)).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a trained adapter: B is no longer zero
    assert decoding.unsupported(model, 512) is None
    ours = _run(model, tok, cfg)
    assert ours == _hf_one_by_one(model, tok, cfg)
    assert ours != plain  # the adapter took part


def test_an_architecture_the_loop_cannot_drive_goes_through_hf_generate(tok, monkeypatch):
    model = _tiny("opt", tok)
    why = decoding.unsupported(model, 512)
    assert why is not None and "'opt'" in why

    def no_loop(*a, **k):
        raise AssertionError("the refill loop ran on an unsupported model")

    monkeypatch.setattr(decoding, "Decoder", no_loop)
    cfg = GenerateConfig(max_new_tokens=12, batch_size=3)
    out = _run(model, tok, cfg)
    assert sorted(out) == [(i, 0) for i in range(len(PROMPTS))]
    assert all(0 < g.n_new_tokens <= 12 for g in out.values())


def test_unsupported_names_what_the_loop_cannot_do(tok):
    model = _tiny("mistral", tok)
    model.config.sliding_window = 16
    assert "sliding window of 16" in decoding.unsupported(model, 64)
    assert decoding.unsupported(model, 16) is None


def test_bf16_decoding_keeps_the_cache_in_bf16(tok, monkeypatch):
    model = _tiny("llama", tok)
    made = []
    real_init = SlotCache.__init__

    def spy(self, *a, **k):
        made.append(self)
        real_init(self, *a, **k)

    monkeypatch.setattr(SlotCache, "__init__", spy)
    cfg = GenerateConfig(max_new_tokens=8, batch_size=3)
    out = {}
    for batch in generate(model, tok, PROMPTS, "python", cfg, device="cpu", precision="bf16", progress=False):
        out.update({g.index: g for g in batch})
    assert sorted(out) == list(range(len(PROMPTS)))
    assert made and made[0].layers[0].keys.dtype == torch.bfloat16


def test_generations_keep_their_fields_and_trim_the_final_newline(tok):
    model = _tiny("llama", tok)
    prompts = ["def add(a, b):\n", "def f(x):\n    return x\n"]
    cfg = GenerateConfig(max_new_tokens=10, batch_size=2)
    out = _run(model, tok, cfg, prompts=prompts)
    for (i, _), g in out.items():
        assert isinstance(g, Generation) and g.index == i and g.sample == 0
        assert not g.raw.startswith("\n") and g.raw.startswith(g.completion.rstrip())
        assert g.stop in ("function_end", "eos", "max_new_tokens")
