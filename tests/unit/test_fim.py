"""FIM: the sentinels and prompt layouts (codetune.fim), which examples become FIM and where they are cut
(codetune.data.fim), and the training examples built from them (training.plan.encode)."""

import math

import pytest

from codetune.config import DataConfig
from codetune.data.fim import cut_points, fim_split
from codetune.fim import (
    SENTINELS,
    add_fim_tokens,
    fim_ids,
    fim_prompt,
    fim_stop_ids,
    fim_tokens,
    text_ids,
)


@pytest.fixture()
def tok(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture()
def fim_tok(tiny_tokenizer_dir):
    """The tiny tokenizer with the sentinels (what add_fim_tokens does to it, without a model)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    tok.add_special_tokens({"extra_special_tokens": list(SENTINELS)}, replace_extra_special_tokens=False)
    return tok


@pytest.fixture(scope="module")
def samples(code_samples):
    """n three-line functions (FIM needs a body worth cutting)."""
    return lambda n: code_samples(n, lambda i: f"    x = a * {i}\n    y = x + {i % 7}\n    return y\n", stem="f")


# ------------------------------------------------------------------------------------- codetune.fim


def test_add_fim_tokens_adds_the_sentinels_in_order_and_is_idempotent(tiny_model_dir, tok):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    n = len(tok)
    before_in = model.get_input_embeddings().weight.detach().clone()
    before_out = model.get_output_embeddings().weight.detach().clone()
    assert fim_tokens(tok) is None
    tokens = add_fim_tokens(model, tok)
    assert tokens.ids == [n, n + 1, n + 2]
    assert [tok.convert_ids_to_tokens(i) for i in tokens.ids] == list(SENTINELS)
    assert fim_tokens(tok) == tokens and model.config.vocab_size == n + 3
    for w, before in (
        (model.get_input_embeddings().weight, before_in),
        (model.get_output_embeddings().weight, before_out),
    ):
        assert w.shape[0] == n + 3
        assert torch.equal(w[:n], before)  # every old row as it was
        for i in tokens.ids:  # the new rows: the mean of the old ones (deterministic)
            assert torch.allclose(w[i], before.mean(0), atol=1e-6)
    again = add_fim_tokens(model, tok)
    assert again == tokens and len(tok) == n + 3 and model.get_input_embeddings().weight.shape[0] == n + 3


def test_add_fim_tokens_keeps_tied_embeddings_tied_and_covers_a_tokenizer_that_has_them(tiny_model_dir, fim_tok):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.tie_word_embeddings = True
    model = AutoModelForCausalLM.from_config(config)  # random, tied
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    rows = model.get_input_embeddings().weight.shape[0]
    tokens = add_fim_tokens(model, fim_tok)  # the tokenizer has them already (an adapter's): the model grows
    assert tokens.ids == [rows, rows + 1, rows + 2]
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert model.get_input_embeddings().weight.shape[0] == rows + 3


def test_fim_prompt_layouts():
    assert fim_prompt("A", "B") == "<fim_prefix>A<fim_suffix>B<fim_middle>"
    assert fim_prompt("A", "B", "spm") == "<fim_prefix><fim_suffix>B<fim_middle>A"
    with pytest.raises(ValueError, match="psm, spm"):
        fim_prompt("A", "B", "pms")


def test_fim_ids_are_the_sentinels_and_plain_text_pieces(fim_tok):
    t = fim_tokens(fim_tok)
    prefix, suffix = "def f(x):\n    y = ", "\n    return y\n"
    pre, suf = text_ids(fim_tok, prefix), text_ids(fim_tok, suffix)
    assert fim_ids(fim_tok, prefix, suffix, "psm") == [t.prefix, *pre, t.suffix, *suf, t.middle]
    assert fim_ids(fim_tok, prefix, suffix, "spm") == [t.prefix, t.suffix, *suf, t.middle, *pre]
    # code that spells a sentinel stays text: no sentinel id comes out of it
    sneaky = text_ids(fim_tok, "s = '<fim_middle>'")
    assert t.middle not in sneaky and fim_tok.decode(sneaky) == "s = '<fim_middle>'"
    assert fim_ids(fim_tok, "", "", "psm") == t.ids


def test_fim_ids_start_with_bos_where_the_tokenizer_adds_one(fim_tok, monkeypatch):
    t = fim_tokens(fim_tok)
    monkeypatch.setattr("codetune.fim.bos_ids", lambda tokenizer: [7])
    assert fim_ids(fim_tok, "a", "b", "psm")[:2] == [7, t.prefix]


def test_fim_ids_without_sentinels_and_stop_ids(tok, fim_tok):
    with pytest.raises(ValueError, match="add_fim_tokens"):
        fim_ids(tok, "a", "b", "psm")
    assert fim_stop_ids(tok) == {tok.eos_token_id}
    assert fim_stop_ids(fim_tok) == {fim_tok.eos_token_id, *fim_tokens(fim_tok).ids}


# ------------------------------------------------------------------------------- codetune.data.fim


@pytest.mark.parametrize("mode", ["psm", "spm"])
@pytest.mark.parametrize("split", ["char", "line"])
def test_fim_split_cuts_the_body_and_keeps_the_prompt_in_the_prefix(mode, split, samples):
    seen_middles = set()
    for s in samples(200):
        f = fim_split(s, seed=3, rate=1.0, mode=mode, split=split)
        assert f is not None and f.mode == mode
        assert f.prefix.startswith(s.prompt)
        assert f.prefix + f.middle + f.suffix == s.prompt + s.target
        i = len(f.prefix) - len(s.prompt)
        j = i + len(f.middle)
        assert i in cut_points(s.target, split) and j in cut_points(s.target, split)
        if split == "line":  # whole lines: each piece of the body starts at a line start
            assert i == 0 or s.target[i - 1] == "\n"
            assert j in (0, len(s.target)) or s.target[j - 1] == "\n"
        seen_middles.add(f.middle)
    assert len(seen_middles) > 5  # the cut points vary from example to example


def test_cut_points():
    assert cut_points("ab\ncd\n", "line") == [0, 3, 6]
    assert cut_points("ab\ncd", "line") == [0, 3, 5]
    assert cut_points("ab", "char") == [0, 1, 2]


def test_fim_rate_is_respected_and_seeded(samples):
    samples = samples(2000)
    rate, n = 0.5, len(samples)
    picked = [fim_split(s, seed=0, rate=rate, mode="psm", split="char") for s in samples]
    k = sum(f is not None for f in picked)
    # binomial(2000, 0.5): sd = 22.4; 5 sd either side fails by chance with p < 1e-6
    assert abs(k - n * rate) < 5 * math.sqrt(n * rate * (1 - rate))
    again = [fim_split(s, seed=0, rate=rate, mode="psm", split="char") for s in samples]
    assert again == picked  # same seed, same examples, same cuts
    other = [fim_split(s, seed=1, rate=rate, mode="psm", split="char") for s in samples]
    assert other != picked
    # a higher rate: a superset, cut at the same points
    more = [fim_split(s, seed=0, rate=0.9, mode="psm", split="char") for s in samples]
    assert all(m == f for f, m in zip(picked, more) if f is not None)
    assert sum(m is not None for m in more) > k
    assert all(fim_split(s, seed=0, rate=0.0, mode="psm", split="char") is None for s in samples)


def test_fim_mode_both_gives_each_layout_half_the_time(samples):
    got = [fim_split(s, seed=0, rate=1.0, mode="both", split="line") for s in samples(2000)]
    n_psm = sum(f.mode == "psm" for f in got)
    assert abs(n_psm - 1000) < 5 * math.sqrt(500)
    assert {f.mode for f in got} == {"psm", "spm"}
    with pytest.raises(ValueError, match="psm, spm or both"):
        fim_split(samples(1)[0], seed=0, rate=1.0, mode="mps", split="line")


# ------------------------------------------------------------------------------ training examples


def test_rate_zero_gives_todays_examples(fim_tok, samples):
    from codetune.training.plan import encode

    samples = samples(30)
    today = encode(fim_tok, samples)
    assert encode(fim_tok, samples, DataConfig(fim_rate=0.0, fim_mode="spm"), seed=4) == today
    assert not any(e.fim for e in today)


@pytest.mark.parametrize("mode", ["psm", "spm", "both"])
@pytest.mark.parametrize("split", ["char", "line"])
def test_fim_examples_are_the_fim_prompt_then_the_middle_with_loss_on_middle_and_eos(
    fim_tok, mode, split, samples
):
    from codetune.training.plan import encode

    samples = samples(60)
    data = DataConfig(fim_rate=0.5, fim_mode=mode, fim_split=split)
    encoded = encode(fim_tok, samples, data, seed=2)
    plain = encode(fim_tok, samples)
    t = fim_tokens(fim_tok)
    eos = fim_tok.eos_token_id
    n_fim = 0
    for s, e, p in zip(samples, encoded, plain):
        f = fim_split(s, seed=2, rate=0.5, mode=mode, split=split)
        assert e.fim == (f is not None)
        if f is None:
            assert e == p  # left-to-right as today
            continue
        n_fim += 1
        prompt = fim_ids(fim_tok, f.prefix, f.suffix, f.mode)
        middle = text_ids(fim_tok, f.middle)
        assert e.input_ids == prompt + middle + [eos]
        assert e.labels == [-100] * len(prompt) + middle + [eos]  # loss on the middle and EOS only
        assert e.input_ids[0] == t.prefix  # no BOS for this tokenizer
        if f.mode == "psm":  # <fim_prefix> prefix <fim_suffix> suffix <fim_middle>
            at = e.input_ids.index(t.suffix)
            shown_prefix = fim_tok.decode(e.input_ids[1:at])
            assert fim_tok.decode(e.input_ids[at + 1 : len(prompt) - 1]) == f.suffix
        else:  # <fim_prefix> <fim_suffix> suffix <fim_middle> prefix
            assert e.input_ids[:2] == [t.prefix, t.suffix]
            shown_prefix = fim_tok.decode(prompt[prompt.index(t.middle) + 1 :])
        assert prompt.count(t.middle) == 1 and shown_prefix == f.prefix and shown_prefix.startswith(s.prompt)
    assert 10 < n_fim < 50


def test_training_with_fim_needs_the_sentinels(tok, samples):
    from codetune.config import RunConfig
    from codetune.errors import CodetuneError
    from codetune.training.plan import plan_steps

    cfg = RunConfig.model_validate({"data": {"fim_rate": 0.5}})
    with pytest.raises(CodetuneError, match="no FIM tokens"):
        plan_steps(tok, samples(4), cfg)
