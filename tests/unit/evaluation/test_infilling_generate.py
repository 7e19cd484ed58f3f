"""Generating middles: FIM prompts as token ids (generate.TokenPrompt), greedy until EOS or a sentinel,
written resumably by experiments/infilling.generate_middles; the sentinels' provenance (prepare_fim)."""

from __future__ import annotations

import json

import pytest
import torch

from codetune import decoding
from codetune.config import GenerateConfig, ModelConfig
from codetune.errors import CodetuneError
from codetune.evaluation.benchmarks import Task
from codetune.experiments.infilling import generate_middles, infilling_items, prepare_fim
from codetune.fim import add_fim_tokens, fim_ids, fim_stop_ids, fim_tokens
from codetune.generate import TokenPrompt, generate, ids_containing
from codetune.rundir import BenchmarkDir

BODIES = ["    y = x + 1\n    return y\n", "    if x:\n        return 1\n    return 2\n"]
TASKS = [
    Task(
        f"T/{i}", "python", f"def f{i}(x):\n    pass\n", f"def check(c):\n    assert c(1) == {i}\n", f"f{i}", "", b
    )
    for i, b in enumerate(BODIES)
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matrices: one thread is faster, and much faster on a machine busy with other work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _load(tiny_model_dir):
    from codetune.models import load_base

    loaded = load_base(ModelConfig(name=str(tiny_model_dir)))
    return loaded.model.eval(), loaded.tokenizer


@pytest.fixture(scope="module")
def fim_model(tiny_model_dir):
    model, tok = _load(tiny_model_dir)
    add_fim_tokens(model, tok)
    return model, tok


def _greedy(model, ids, stops, n):
    """The reference: a full forward per token, argmax, up to the first stop id (kept) or n tokens."""
    seq, out = list(ids), []
    for _ in range(n):
        with torch.no_grad():
            token = int(model(torch.tensor([seq])).logits[0, -1].argmax())
        out.append(token)
        seq.append(token)
        if token in stops:
            break
    return out


def _prompts(tok, stops_for):
    items = infilling_items(TASKS, "single_line")
    return [
        TokenPrompt(tuple(fim_ids(tok, it.prefix, it.suffix, "psm")), frozenset(stops_for(i)))
        for i, it in enumerate(items)
    ]


def _generate(model, tok, prompts, cfg):
    out = {}
    for batch in generate(model, tok, prompts, "python", cfg, device="cpu", precision="fp32", progress=False):
        for g in batch:
            out[g.index] = g
    return out


@pytest.mark.parametrize("path", ["loop", "hf"])
def test_token_prompts_decode_greedily_until_their_own_stop_ids(fim_model, path, monkeypatch):
    model, tok = fim_model
    base_stops = fim_stop_ids(tok)
    assert base_stops == {tok.eos_token_id, *fim_tokens(tok).ids}
    free = _prompts(tok, lambda i: base_stops)
    refs = [_greedy(model, p.ids, base_stops, 12) for p in free]
    # prompt i also stops at the (i+2)-th token the reference wrote: a stop id ends the row at its first
    # occurrence, with nothing of it in the text
    prompts = [TokenPrompt(p.ids, p.stop_ids | {refs[i][i + 2]}) for i, p in enumerate(free)]
    if path == "hf":
        monkeypatch.setattr(decoding, "unsupported", lambda model, capacity: "forced by the test")
    cfg = GenerateConfig(max_new_tokens=12, batch_size=2)
    got = _generate(model, tok, prompts, cfg)
    assert sorted(got) == list(range(len(prompts)))
    for i, p in enumerate(prompts):
        ref = _greedy(model, p.ids, p.stop_ids, 12)
        g = got[i]
        assert g.n_new_tokens == len(ref) and g.stop == "stop_token"
        assert g.completion == g.raw == tok.decode(ref[:-1], skip_special_tokens=True)


@pytest.mark.parametrize("path", ["loop", "hf"])
def test_an_end_id_ends_a_row_and_stays_in_its_text(fim_model, path, monkeypatch):
    model, tok = fim_model
    stops = fim_stop_ids(tok)
    free = _prompts(tok, lambda i: stops)
    refs = [_greedy(model, p.ids, stops, 12) for p in free]
    # prompt i ends at the first occurrence of the (i+1)-th token the reference wrote, which it keeps
    ends = [refs[i][i + 1] for i in range(len(free))]
    prompts = [TokenPrompt(p.ids, p.stop_ids, frozenset({ends[i]})) for i, p in enumerate(free)]
    if path == "hf":
        monkeypatch.setattr(decoding, "unsupported", lambda model, capacity: "forced by the test")
    got = _generate(model, tok, prompts, GenerateConfig(max_new_tokens=12, batch_size=2))
    for i, p in enumerate(prompts):
        ref = _greedy(model, p.ids, p.stop_ids | p.end_ids, 12)
        if ref[-1] in p.stop_ids:  # a stop id came first
            continue
        assert ref[-1] == ends[i]
        assert got[i].stop == "end_token" and got[i].n_new_tokens == len(ref)
        assert got[i].raw == tok.decode(ref, skip_special_tokens=True)


def test_ids_containing_a_newline(fim_model):
    _, tok = fim_model
    ids = ids_containing(tok, "\n")
    assert ids and all("\n" in tok.decode([i]) for i in ids)
    assert tok.encode("\n", add_special_tokens=False)[0] in ids
    assert not ids & {tok.encode("x", add_special_tokens=False)[0]}


def test_max_new_tokens_ends_a_row_without_a_stop_id(fim_model):
    model, tok = fim_model
    prompts = _prompts(tok, lambda i: {tok.eos_token_id})
    ref = [_greedy(model, p.ids, p.stop_ids, 5) for p in prompts]
    got = _generate(model, tok, prompts, GenerateConfig(max_new_tokens=5, batch_size=3))
    for i, r in enumerate(ref):
        if tok.eos_token_id not in r:
            assert got[i].stop == "max_new_tokens" and got[i].n_new_tokens == 5
            assert got[i].raw == tok.decode(r, skip_special_tokens=True)


def test_generate_middles_writes_samples_caps_single_lines_and_resumes(fim_model, tmp_path):
    model, tok = fim_model
    items = infilling_items(TASKS, "single_line")
    bdir = BenchmarkDir(tmp_path / "infilling")
    cfg = GenerateConfig(max_new_tokens=999, batch_size=4, n_samples=3)  # sampling settings are ignored
    kw = dict(max_new_tokens=200, device="cpu", precision="fp32", progress=False, fim_tokens="added_untrained")
    samples, seconds = generate_middles(model, tok, items, cfg, bdir, **kw)
    assert seconds > 0 and [s["task_id"] for s in samples] == [it.task_id for it in items]
    assert json.loads(bdir.samples.read_text().splitlines()[0])["task_id"] == items[0].task_id
    for s, it in zip(samples, items):
        assert (
            s["base_task_id"] == it.base_id and s["kind"] == "single_line" and s["fim_tokens"] == "added_untrained"
        )
        assert s["n_new_tokens"] <= 64  # single_line: at most 64 new tokens whatever max_new_tokens says
        assert s["completion"] == s["raw"][: s["raw"].index("\n") + 1] if "\n" in s["raw"] else s["raw"]
        # decoding ended at the first token that holds a newline (or before any)
        assert (s["stop"] == "end_token") == ("\n" in s["raw"])
    assert generate_middles(model, tok, items, cfg, bdir, **kw) == (samples, 0.0)  # kept

    # Resume: a killed run left the first two middles in the partial file; only the rest are generated.
    partial = [
        {"index": i, "sample": 0, "completion": "KEPT", "raw": f"KEPT{i}\n", "n_new_tokens": 1, "stop": "eos"}
        for i in (0, 1)
    ]
    bdir.samples.unlink()
    bdir.samples_partial.write_text("".join(json.dumps({**r, "_elapsed_s": 1.0}) + "\n" for r in partial))
    again, _ = generate_middles(model, tok, items, cfg, bdir, **kw)
    assert [s["raw"] for s in again[:2]] == ["KEPT0\n", "KEPT1\n"] and again[0]["completion"] == "KEPT0\n"
    assert again[2:] == samples[2:]
    assert not bdir.samples_partial.exists()


def test_prepare_fim_adds_missing_sentinels_and_says_what_their_rows_are(tiny_model_dir):
    model, tok = _load(tiny_model_dir)
    assert fim_tokens(tok) is None
    with pytest.raises(CodetuneError, match="trained with FIM"):
        prepare_fim(model, tok, trained=True, native=False)
    rows = model.get_input_embeddings().weight.shape[0]
    assert prepare_fim(model, tok, trained=False, native=False) == "added_untrained"
    assert fim_tokens(tok) is not None and model.get_input_embeddings().weight.shape[0] == rows + 3
    assert prepare_fim(model, tok, trained=False, native=False) == "added_untrained"  # idempotent
    assert model.get_input_embeddings().weight.shape[0] == rows + 3
    assert prepare_fim(model, tok, trained=False, native=True) == "native"
    assert prepare_fim(model, tok, trained=True, native=False) == "trained"


def _fim_lora(tiny_tokenizer_dir, tied: bool):
    """A tiny Llama (tied or untied head) under a LoRA adapter whose sentinel rows are trained (set by hand)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from codetune.config import LoraConfig
    from codetune.models import apply_lora

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=tied,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = apply_lora(LlamaForCausalLM(cfg), LoraConfig(r=4, alpha=8, dropout=0.0), tokenizer=tok, fim=True)
    with torch.no_grad():
        for module in model.modules():
            for p in getattr(module, "trainable_tokens_delta", {}).values():
                p.normal_(std=3.0)  # large: the sentinels' logits and embeddings differ from the untrained rows
    return model.eval(), tok


@pytest.mark.parametrize("tied", [False, True])
def test_a_fim_adapters_rows_are_merged_while_generating_with_the_same_result(tiny_tokenizer_dir, tied):
    from codetune.generate import _token_layers, bf16_decoding, merged_token_rows

    model, tok = _fim_lora(tiny_tokenizer_dir, tied)
    layers = _token_layers(model)
    assert len(layers) == 2  # input embedding and head (tied: the head's layer shares the rows)
    base = model.get_base_model()
    before = base.get_input_embeddings().token_adapter.base_layer.weight.clone()
    prompts = _prompts(tok, lambda i: fim_stop_ids(tok))
    refs = [_greedy(model, p.ids, p.stop_ids, 8) for p in prompts]  # unmerged: peft's own path
    seen = []
    real_forward = type(model).forward

    def spy(self, *a, **kw):
        seen.append(all(layer.merged for layer in layers))
        return real_forward(self, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(model), "forward", spy)
        got = _generate(model, tok, prompts, GenerateConfig(max_new_tokens=8, batch_size=2))
    assert seen and all(seen)  # every forward of the generation ran with the rows merged
    assert [got[i].n_new_tokens for i in range(len(prompts))] == [len(r) for r in refs]
    assert [got[i].raw for i in range(len(prompts))] == [
        tok.decode(r[:-1] if r[-1] in prompts[0].stop_ids else r, skip_special_tokens=True) for r in refs
    ]
    assert not any(layer.merged for layer in layers)  # restored
    assert torch.equal(base.get_input_embeddings().token_adapter.base_layer.weight, before)

    ids = torch.tensor([list(prompts[0].ids)])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = model(input_ids=ids).logits.float()
        with bf16_decoding(model) as changed:
            assert not changed  # a wrapped head with its rows not merged is left alone
        with merged_token_rows(model) as n, bf16_decoding(model) as changed:
            assert n == len(layers) and changed
            fast = model(input_ids=ids).logits.float()
    # the same logits up to bf16 rounding (the trained sentinel columns included: their rows are std 3 off
    # the untrained ones, so a head without them would be far off)
    assert torch.allclose(fast, plain, rtol=0.02, atol=0.1)
    assert torch.equal(fast.argmax(-1), plain.argmax(-1))
