"""GGUF export's pieces: llama.cpp's Q/K row order, q8_0's rounding, which configs it refuses, the vocabulary."""

from __future__ import annotations

import numpy as np
import pytest

from codetune.exporting import ExportError
from codetune.exporting.gguf_export import check_exportable, permute_for_llama_cpp, q8_0_error_bound


def test_q8_0_round_trip_is_within_the_derived_bound_and_the_bound_is_tight():
    import gguf

    rng = np.random.default_rng(0)
    # ordinary weights, tiny ones (f16 subnormal scales) and a block of zeros
    w = np.concatenate([rng.normal(0, 0.02, (8, 64)), rng.normal(0, 1e-6, (2, 64)), np.zeros((1, 64))])
    w = w.astype(np.float32)
    q8 = gguf.GGMLQuantizationType.Q8_0
    back = gguf.quants.dequantize(gguf.quants.quantize(w, q8), q8)
    err, bound = np.abs(back.astype(np.float64) - w), q8_0_error_bound(w)
    assert (err <= bound).all(), f"worst error / bound = {(err / np.maximum(bound, 1e-30)).max():.3f}"
    assert (err[:8] / bound[:8]).max() > 0.8  # not a bound that merely passes: some value comes close
    assert (back[-1] == 0).all()


def test_permutation_puts_each_rotary_pair_side_by_side():
    # HF rotates row i of a head with row i + d/2; llama.cpp rotates rows 2i and 2i+1 of the head.
    n_head, d = 3, 8
    rows = np.arange(n_head * d)[:, None] * np.ones((1, 5))
    out = permute_for_llama_cpp(rows, n_head)[:, 0].astype(int).reshape(n_head, d)
    for h in range(n_head):
        for i in range(d // 2):
            assert (out[h, 2 * i], out[h, 2 * i + 1]) == (h * d + i, h * d + i + d // 2)


def test_permutation_is_what_transformers_gguf_loader_undoes():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    w = np.random.default_rng(1).normal(size=(4 * 16, 12)).astype(np.float32)
    for n_head, n_kv in ((4, 4), (8, 4)):  # Q (heads = n_head) and K of a grouped-query model (n_kv)
        proc = LlamaTensorProcessor(config={"num_attention_heads": n_head, "num_key_value_heads": n_kv})
        for name, heads in (("blk.0.attn_q.weight", n_head), ("blk.0.attn_k.weight", n_kv)):
            back = proc.process(permute_for_llama_cpp(w, heads), name).weights
            np.testing.assert_array_equal(back, w)


def _llama_config(**kw):
    from transformers import LlamaConfig

    base = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4)
    return LlamaConfig(**{**base, **kw})


def test_unsupported_architectures_and_rope_scaling_are_one_error_each():
    from transformers import GPT2Config

    check_exportable(_llama_config())
    with pytest.raises(ExportError, match="supports the architectures llama, not 'gpt2'; export --merged DIR"):
        check_exportable(GPT2Config(n_layer=1, n_embd=32, n_head=4))
    scaled = _llama_config(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})
    with pytest.raises(ExportError, match="plain RoPE only, and this model uses 'linear'"):
        check_exportable(scaled)


def _vocab_gguf(path, tokenizer, vocab_size, source=None):
    """A GGUF with tokenizer metadata only, read back as {key: value}."""
    import gguf

    from codetune.exporting import gguf_vocab

    writer = gguf.GGUFWriter(str(path), "llama")
    if source is None:
        gguf_vocab.add_from_hf(writer, tokenizer, vocab_size)
    else:
        gguf_vocab.copy_from_gguf(writer, source, vocab_size)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    reader = gguf.GGUFReader(str(path))
    return {k: f.contents() for k, f in reader.fields.items() if k.startswith("tokenizer.")}


def test_vocabulary_from_the_hf_tokenizer_and_copied_from_a_gguf(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    n = len(tok) + 3  # an embedding padded past the tokenizer, as models often are
    meta = _vocab_gguf(tmp_path / "v.gguf", tok, n)
    assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "gpt2"
    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    assert len(tokens) == len(types) == n
    assert all(tokens[i] == t for t, i in tok.get_vocab().items())
    assert tokens[-3:] == [f"[PAD{i}]" for i in range(n - 3, n)] and types[-3:] == [5, 5, 5]  # UNUSED
    eos = tok.eos_token_id
    assert meta["tokenizer.ggml.eos_token_id"] == eos and types[eos] == 3  # CONTROL
    assert types.count(1) == len(tok) - 1  # NORMAL: all but <|endoftext|>
    merges = meta["tokenizer.ggml.merges"]
    assert len(merges) > 100 and all(len(m.split(" ")) == 2 for m in merges)
    assert meta["tokenizer.ggml.add_bos_token"] is False
    # Copied from that file, every key comes across with its value.
    assert _vocab_gguf(tmp_path / "copy.gguf", None, n, source=tmp_path / "v.gguf") == meta
    with pytest.raises(ExportError, match=f"has {n} tokens, the merged model {n + 1} embeddings"):
        _vocab_gguf(tmp_path / "bad.gguf", None, n + 1, source=tmp_path / "v.gguf")


def test_a_tokenizer_llama_cpp_could_not_split_the_same_way_is_refused(tiny_tokenizer_dir):
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    from codetune.exporting import gguf_vocab

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    with pytest.raises(ExportError, match="not one GGUF export can name for llama.cpp"):
        gguf_vocab.add_from_hf(_NullWriter(), tok, len(tok))


class _NullWriter:
    def __getattr__(self, name):
        return lambda *a, **k: None
