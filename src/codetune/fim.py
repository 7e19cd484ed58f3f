"""Fill-in-the-middle (FIM): the three sentinel tokens, the prompt layouts, and adding the tokens to a model.

A FIM prompt shows the model the code before the cursor (prefix) and after it (suffix) and asks for what
goes between (the middle), which it writes and ends with EOS. The layouts are StarCoder's, whose token
names editor templates already know:

    PSM: <fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>   then the model writes {middle}<eos>
    SPM: <fim_prefix><fim_suffix>{suffix}<fim_middle>{prefix}   then the model writes {middle}<eos>

SPM is StarCoder's variant (Bavarian et al. 2022, appendix D): the prefix comes last, right before the
middle, so the middle continues it as in left-to-right text.

A model whose tokenizer lacks the sentinels (the bundled SmolLM2, GPT-2) gets them from `add_fim_tokens`:
new special tokens, their embedding rows mean-initialised. LoRA training with `data.fim_rate > 0` trains
those rows (peft `trainable_token_indices`) and saves the tokenizer with the adapter, so a FIM adapter
loads with `codetune.models.attach_adapter`, or with plain peft after `add_fim_tokens(base, tokenizer)`:

    tok = AutoTokenizer.from_pretrained(adapter_dir)            # has the sentinels
    add_fim_tokens(base, tok)                                    # resizes base's embeddings to match
    model = PeftModel.from_pretrained(base, adapter_dir)         # loads LoRA + the sentinels' rows
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SENTINELS = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")  # StarCoder's names; added in this order
MODES = ("psm", "spm")


@dataclass(frozen=True)
class FimTokens:
    """The ids of the three sentinels in one tokenizer."""

    prefix: int
    suffix: int
    middle: int

    @property
    def ids(self) -> list[int]:
        """[prefix, suffix, middle]."""
        return [self.prefix, self.suffix, self.middle]


def _token_id(tokenizer: Any, token: str) -> int | None:
    """The id of `token` as one token of this tokenizer, or None (no unk fallback)."""
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or isinstance(tid, list):
        return None
    if tokenizer.convert_ids_to_tokens(tid) != token:  # the unk id, or an id of another token
        return None
    return int(tid)


def fim_tokens(tokenizer: Any) -> FimTokens | None:
    """The sentinels' ids in `tokenizer`, or None when it lacks any of them."""
    ids = [_token_id(tokenizer, s) for s in SENTINELS]
    if any(i is None for i in ids):
        return None
    return FimTokens(*ids)  # type: ignore[arg-type]


def add_fim_tokens(model: Any, tokenizer: Any) -> FimTokens:
    """Give `tokenizer` and `model` the three sentinels; return their ids. Idempotent.

    Missing sentinels are added to the tokenizer as special tokens, in `SENTINELS` order. The model's input
    (and output, when untied) embeddings grow to cover them (transformers' `resize_token_embeddings`; tied
    embeddings stay tied), and every row the sentinels take that was not a sentinel row before is set to the
    mean of the other rows: deterministic, so the same base gets the same rows in every process (a FIM
    adapter replaces them with its trained rows). `model` may be a PeftModel: its base model is resized.

    A model already covering the ids (e.g. loaded after a tokenizer that had them) is left as it is.
    """
    missing = [s for s in SENTINELS if _token_id(tokenizer, s) is None]
    if missing:
        tokenizer.add_special_tokens({"extra_special_tokens": missing}, replace_extra_special_tokens=False)
    tokens = fim_tokens(tokenizer)
    if tokens is None:  # the tokenizer refused them: an internal error, not a user one
        raise RuntimeError(f"tokenizer {type(tokenizer).__name__} did not add {missing}")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    rows = base.get_input_embeddings().weight.shape[0]
    need = max(tokens.ids) + 1
    new_rows = [tid for name, tid in zip(SENTINELS, tokens.ids) if tid >= rows or name in missing]
    if need > rows:
        base.resize_token_embeddings(need, mean_resizing=False)
    if new_rows:
        _mean_init(base, new_rows)
    return tokens


def _mean_init(model: Any, rows: list[int]) -> None:
    """Set `rows` of the input and (untied) output embeddings to the mean of the other rows."""
    import torch

    inp = model.get_input_embeddings()
    out = model.get_output_embeddings()
    mats = [inp.weight]
    if out is not None and out.weight.data_ptr() != inp.weight.data_ptr():
        mats.append(out.weight)
    with torch.no_grad():
        for w in mats:
            keep = torch.ones(w.shape[0], dtype=torch.bool, device=w.device)
            keep[rows] = False
            w[rows] = w[keep].mean(dim=0, dtype=torch.float32).to(w.dtype)
        bias = getattr(out, "bias", None) if out is not None else None
        if bias is not None:
            keep = torch.ones(bias.shape[0], dtype=torch.bool, device=bias.device)
            keep[rows] = False
            bias[rows] = bias[keep].mean()


def fim_prompt(prefix: str, suffix: str, mode: str = "psm") -> str:
    """The FIM prompt as text (PSM or SPM, see the module docstring); the model writes the middle, then EOS.

    For display and for servers that take text; to tokenize, use `fim_ids`, which never reads code text
    as a sentinel.
    """
    p, s, m = SENTINELS
    if mode == "psm":
        return f"{p}{prefix}{s}{suffix}{m}"
    if mode == "spm":
        return f"{p}{s}{suffix}{m}{prefix}"
    raise ValueError(f"unknown FIM mode {mode!r}; choose one of {', '.join(MODES)}")


def text_ids(tokenizer: Any, text: str) -> list[int]:
    """`text` tokenized as plain text: no special tokens added, and none read from the text itself
    (a literal "<fim_middle>" in code stays characters)."""
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def bos_ids(tokenizer: Any) -> list[int]:
    """[BOS] when the tokenizer puts one before a text (Llama-2 style), else []."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return [bos] if ids and ids[0] == bos else []


def fim_ids(tokenizer: Any, prefix: str, suffix: str, mode: str) -> list[int]:
    """`fim_prompt(prefix, suffix, mode)` as token ids, tokenized piece by piece: the sentinels' ids with
    the prefix and suffix tokenized as plain text between them; BOS first when the tokenizer adds one.

    Raises ValueError when the tokenizer has no sentinels (see `add_fim_tokens`).
    """
    tokens = fim_tokens(tokenizer)
    if tokens is None:
        raise ValueError("this tokenizer has no FIM tokens; add them with codetune.fim.add_fim_tokens")
    pre, suf = text_ids(tokenizer, prefix), text_ids(tokenizer, suffix)
    if mode == "psm":
        body = [tokens.prefix, *pre, tokens.suffix, *suf, tokens.middle]
    elif mode == "spm":
        body = [tokens.prefix, tokens.suffix, *suf, tokens.middle, *pre]
    else:
        raise ValueError(f"unknown FIM mode {mode!r}; choose one of {', '.join(MODES)}")
    return bos_ids(tokenizer) + body


def fim_stop_ids(tokenizer: Any) -> set[int]:
    """Ids that end a generated middle: EOS and the three sentinels (those the tokenizer has)."""
    out = {int(tokenizer.eos_token_id)} if tokenizer.eos_token_id is not None else set()
    tokens = fim_tokens(tokenizer)
    if tokens is not None:
        out.update(tokens.ids)
    return out
