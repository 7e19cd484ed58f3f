"""The tokenizer half of a GGUF file: `tokenizer.*` metadata, copied from a source GGUF or built from HF.

A base that came from a GGUF (the bundled model) has its tokenizer metadata at hand: copying it keeps
whatever llama.cpp and transformers read from the original (the pre-tokenizer name, token types, chat
template) exactly as it was. Otherwise the metadata is built from the HF tokenizer, for byte-level BPE
(GPT-2, Llama 3, SmolLM, Qwen style): tokens by id, token types, merges, special ids. llama.cpp chooses its
pre-tokenizer regex by the name in `tokenizer.ggml.pre`, so that name must describe the HF tokenizer's
split: the GPT-2 regex of a plain `ByteLevel` pre-tokenizer is "gpt2"; a `Split` regex is named by the
table transformers' GGUF loader uses in the other direction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codetune.exporting import ExportError


def copy_from_gguf(writer: Any, source: Path, vocab_size: int) -> None:
    """Copy every `tokenizer.*` key of `source` into `writer`, with its GGUF value type."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(str(source))
    n_tokens = None
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        main = GGUFValueType(field.types[0])
        sub = GGUFValueType(field.types[-1]) if main == GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), main, sub_type=sub)
        if key == "tokenizer.ggml.tokens":
            n_tokens = len(field.data)
    if n_tokens != vocab_size:
        raise ExportError(
            f"the tokenizer of {source} has {n_tokens} tokens, the merged model {vocab_size} embeddings",
            "export from the base the adapter was trained on (--model)",
        )


def add_from_hf(writer: Any, tokenizer: Any, vocab_size: int) -> None:
    """Write the HF tokenizer's vocabulary, merges, token types and special ids as GGUF metadata."""
    from gguf import TokenType

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or not _is_byte_level(spec):
        raise ExportError(
            f"tokenizer type {model.get('type')!r} is not byte-level BPE, the one kind GGUF export builds itself",
            "export from a GGUF base (its tokenizer is copied), or convert with llama.cpp's convert_hf_to_gguf.py",
        )
    tokens, types = _tokens_and_types(tokenizer, vocab_size, TokenType)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    writer.add_tokenizer_model("gpt2")  # llama.cpp's name for byte-level BPE
    writer.add_tokenizer_pre(_pre_tokenizer_name(spec))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for attr, add in (
        ("bos_token_id", writer.add_bos_token_id),
        ("eos_token_id", writer.add_eos_token_id),
        ("unk_token_id", writer.add_unk_token_id),
        ("pad_token_id", writer.add_pad_token_id),
    ):
        token_id = getattr(tokenizer, attr, None)
        if token_id is not None:
            add(int(token_id))
    # What the tokenizer adds around a text on its own, as llama.cpp should.
    ids = tokenizer("a")["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    writer.add_add_bos_token(bool(bos is not None and ids[:1] == [bos]))
    writer.add_add_eos_token(bool(eos is not None and len(ids) > 1 and ids[-1:] == [eos]))
    if isinstance(getattr(tokenizer, "chat_template", None), str):
        writer.add_chat_template(tokenizer.chat_template)


def _tokens_and_types(tokenizer: Any, vocab_size: int, token_type: Any) -> tuple[list[str], list[int]]:
    """Tokens by id for every embedding row; rows past the tokenizer (padding) get unused placeholders."""
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    if max(by_id) >= vocab_size:
        raise ExportError(
            f"the tokenizer has ids up to {max(by_id)}, the model only {vocab_size} embeddings",
            "export with the tokenizer the model was trained with",
        )
    added = {i: tok for i, tok in tokenizer.added_tokens_decoder.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(int(token_type.UNUSED))
        elif i in added:
            tokens.append(by_id[i])
            types.append(int(token_type.CONTROL if added[i].special else token_type.USER_DEFINED))
        else:
            tokens.append(by_id[i])
            types.append(int(token_type.NORMAL))
    return tokens, types


def _pre_tokenizers(spec: dict) -> list[dict]:
    pre = spec.get("pre_tokenizer") or {}
    return list(pre.get("pretokenizers") or []) if pre.get("type") == "Sequence" else [pre] if pre else []


def _is_byte_level(spec: dict) -> bool:
    decoder = spec.get("decoder") or {}
    return any(p.get("type") == "ByteLevel" for p in _pre_tokenizers(spec)) and decoder.get("type") == "ByteLevel"


def _pre_tokenizer_name(spec: dict) -> str:
    """llama.cpp's name for the way this tokenizer splits text before BPE."""
    steps = _pre_tokenizers(spec)
    if len(steps) == 1 and steps[0].get("type") == "ByteLevel" and steps[0].get("use_regex", True):
        if not steps[0].get("add_prefix_space", False):  # llama.cpp's gpt2 split adds no leading space
            return "gpt2"
    splits = [s for s in steps if s.get("type") == "Split"]
    if len(splits) == 1 and len(steps) == 2:
        regex = (splits[0].get("pattern") or {}).get("Regex")
        for name, known in _known_splits().items():
            if regex == known:
                return name
    raise ExportError(
        f"the tokenizer's pre-tokenizer ({json.dumps(spec.get('pre_tokenizer'))[:120]}) is not one GGUF export "
        "can name for llama.cpp",
        "export from a GGUF base (its tokenizer is copied), or convert with llama.cpp's convert_hf_to_gguf.py",
    )


def _known_splits() -> dict[str, str]:
    """llama.cpp pre-tokenizer name -> the split regex, as transformers' GGUF loader maps them back."""
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS
    except ImportError:  # another transformers layout: only the GPT-2 regex is known then
        return {}
    return dict(GGUF_PRE_TOKENIZER_SPLITS)
