"""Continuous batching: `width` rows decode together and a row that finishes hands its slot to the next prompt.

A decoding step costs about the same whether its rows are useful or not (it streams every weight, and on
a CPU it multiplies every row by every weight), so the loop keeps the batch full of unfinished rows:

* A row stops at the end of the function (`codetune.stopping`), at EOS or at `max_new_tokens`; its slot
  then takes the next prompt, prefilled on its own (no padding) and copied into the slot of the
  preallocated cache (`codetune.kv_cache`). No step runs a finished row; when no prompt is left, the
  batch shrinks.
* Rows of any lengths share a step: each has its own positions (`position_ids`) and a mask over the cache.
* The stop rule runs on a row's text only when its newest token can have ended the function (`StopWatch`),
  not on every row's whole text at every step.
* Sampling draws each row's tokens from its own generator, seeded by (seed, prompt index, sample): a
  sample does not depend on which rows shared its batch. Greedy when n_samples == 1.

`unsupported(model, capacity)` says when the loop cannot drive a model; `codetune.generate` then uses HF
`generate`.
"""

from __future__ import annotations

import hashlib
import inspect
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from codetune import languages, stopping
from codetune.config import GenerateConfig

# Architectures whose forward the loop drives (position_ids + a 4D mask + cache.update), each tested.
DRIVEN = ("llama", "mistral", "qwen2", "gpt2")


def unsupported(model: Any, capacity: int) -> str | None:
    """Why the refill loop cannot drive `model` for sequences up to `capacity` tokens, or None when it can.

    This is the one place that decides; `codetune.generate` falls back to HF `generate` when it says why.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    peft_cfg = getattr(model, "active_peft_config", None)
    if peft_cfg is not None and getattr(peft_cfg, "is_prompt_learning", False):
        return "a prompt-learning adapter prepends virtual tokens, which the loop does not place"
    cfg = base.config
    if cfg.model_type not in DRIVEN:
        return f"architecture '{cfg.model_type}' is not one the loop is tested on ({', '.join(DRIVEN)})"
    if getattr(cfg, "is_encoder_decoder", False) or getattr(cfg, "add_cross_attention", False):
        return "the model has cross-attention"
    attn = getattr(cfg, "_attn_implementation", None)
    if attn not in ("sdpa", "eager"):
        return f"attention implementation '{attn}' (the loop passes a 4D mask, for sdpa or eager)"
    if any(t != "full_attention" for t in getattr(cfg, "layer_types", None) or []):
        return "the model has sliding-window or linear-attention layers"
    window = getattr(cfg, "sliding_window", None)
    if window is not None and getattr(cfg, "use_sliding_window", True) and window < capacity:
        return f"a sliding window of {window} tokens is shorter than the sequences ({capacity})"
    if "cache" not in inspect.signature(base.forward).parameters:
        return "this transformers version's forward takes no `cache` argument"
    return None


# ---------------------------------------------------------------------------------------------- stop rule

_NEWLINE, _BRACE, _TEXT, _TAIL_TEXT, _UNSURE = 1, 2, 4, 8, 16


def _token_flags(text: str) -> int:
    flags = 0
    if "\n" in text:
        flags |= _NEWLINE
        if text.rsplit("\n", 1)[1].strip():
            flags |= _TAIL_TEXT
    if "}" in text:
        flags |= _BRACE
    if text.strip():
        flags |= _TEXT
    if "\ufffd" in text:  # part of a character split across tokens: what it is shows only in context
        flags |= _UNSURE
    return flags


def token_texts(tokenizer: Any) -> list[str]:
    """The text of each token id decoded alone, special tokens as "" (what the stop rule and healing see)."""
    single = [[i] for i in range(len(tokenizer))]
    backend = getattr(tokenizer, "backend_tokenizer", None)  # a fast tokenizer's own: 10x batch_decode's speed
    if backend is not None:
        return backend.decode_batch(single, skip_special_tokens=True)
    return tokenizer.batch_decode(single, skip_special_tokens=True)


class StopWatch:
    """Says, from a row's newest token alone, whether its text can have just reached the end of the function.

    Indent rule (Python): the end is the first non-blank line indented at or left of the `def`, so a row
    can end only at the token that puts the first visible character on a new line; the watch tracks
    whether the row's current line is still blank. Brace rule: the end is a closing brace, or a newline
    that ends a line-bound literal before it, so only tokens with `}` or a newline can end it. Any other
    rule: every token. Only then does the full rule (`stopping.is_complete`) run on the row's text.
    """

    def __init__(self, tokenizer: Any, language: str, texts: Sequence[str] | None = None) -> None:
        lang = languages.lookup(language)
        self.kind = lang.stop.kind if lang is not None else None  # unknown: stopping raises on the first check
        self.flags = [_token_flags(t) for t in (token_texts(tokenizer) if texts is None else texts)]
        self.tokenizer = tokenizer

    def start(self, prompt: str) -> bool:
        """The blank-line state of a new row: the completion's first line continues the prompt's last one."""
        return prompt == "" or prompt.endswith("\n")

    def needs_check(self, row: _Row, token: int) -> bool:
        """Whether `token`, just appended to `row`, can have ended the function; updates the row's state."""
        if token < len(self.flags):
            f = self.flags[token]
        else:
            f = _token_flags(self.tokenizer.decode([token], skip_special_tokens=True))
        if self.kind == "braces":
            return bool(f & (_NEWLINE | _BRACE))
        if self.kind != "indent":
            return True
        check = bool(f & (_NEWLINE | _UNSURE)) or (row.line_blank and bool(f & _TEXT))
        if f & _UNSURE:
            row.line_blank = True  # check again at the next visible character
        elif f & _NEWLINE:
            row.line_blank = not f & _TAIL_TEXT
        elif f & _TEXT:
            row.line_blank = False
        return check


# ---------------------------------------------------------------------------------------------- rows


@dataclass
class _Row:
    index: int  # prompt index
    sample: int
    n_prompt: int  # prompt tokens, in the cache at columns [0, n_prompt)
    ids: list[int]  # generated tokens; all but the last are in the cache
    gen: torch.Generator | None
    line_blank: bool


def start_ids(tokenizer: Any) -> list[int]:
    """What an empty prompt decodes from: BOS (EOS without one), as HF `generate` does without input."""
    bos = tokenizer.bos_token_id
    return [tokenizer.eos_token_id if bos is None else bos]


def row_seed(seed: int, index: int, sample: int) -> int:
    digest = hashlib.sha256(f"codetune:{seed}:{index}:{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def pick_tokens(
    logits: torch.Tensor,
    temperature: Sequence[float],
    top_p: Sequence[float],
    gens: Sequence[torch.Generator | None],
) -> list[int]:
    """logits (rows, vocab) -> one token id per row, each row by its own rule: argmax where its generator is
    None or its temperature 0 (greedy), else temperature + top-p sampling from its generator.

    Rows sharing (temperature, top_p) are sampled together; a row's token depends only on its own logits
    and generator, not on which rows share the batch.
    """
    out = logits.argmax(-1).tolist()
    groups: dict[tuple[float, float], list[int]] = {}
    for r, (t, g) in enumerate(zip(temperature, gens)):
        if g is not None and t > 0:
            groups.setdefault((t, top_p[r]), []).append(r)
    for (t, p_max), rows in groups.items():
        sub = logits if len(rows) == logits.shape[0] else logits[rows]
        picked = _sample(sub, t, p_max, [gens[r] for r in rows])
        for r, token in zip(rows, picked):
            out[r] = token
    return out


def _sample(logits: torch.Tensor, temperature: float, top_p: float, gens: list) -> list[int]:
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    p, idx = probs.sort(dim=-1, descending=True, stable=True)
    keep = (p.cumsum(-1) - p) < top_p  # the smallest prefix with mass >= top_p (never empty)
    cum = (p * keep).cumsum(-1)  # (rows, vocab)
    u = torch.stack([torch.rand((), generator=g, device=logits.device) for g in gens])
    at = torch.searchsorted(cum, (u * cum[:, -1])[:, None], right=True).clamp(max=cum.shape[1] - 1)
    return idx.gather(-1, at)[:, 0].tolist()


class _Picker:
    """The next token of each row: argmax (greedy), or temperature + top-p from the row's own generator."""

    def __init__(self, cfg: GenerateConfig, seed: int, device: str) -> None:
        self.sampling = cfg.n_samples > 1
        self.temperature, self.top_p, self.seed, self.device = cfg.temperature, cfg.top_p, seed, device

    def generator(self, index: int, sample: int) -> torch.Generator | None:
        if not self.sampling:
            return None
        return torch.Generator(device=self.device).manual_seed(row_seed(self.seed, index, sample))

    def pick(self, logits: torch.Tensor, rows: list[_Row]) -> list[int]:
        """logits (rows, vocab) -> one token id per row."""
        n = len(rows)
        return pick_tokens(logits, [self.temperature] * n, [self.top_p] * n, [r.gen for r in rows])


# ---------------------------------------------------------------------------------------------- forwards


def forward_logits(model: Any, device: str, precision: str, **kwargs: Any) -> torch.Tensor:
    """The model's last-position logits, (rows, vocab), under bf16 autocast when precision says so."""
    bf16 = precision == "bf16"
    with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
        out = model(use_cache=True, logits_to_keep=1, **kwargs)
    return out.logits[:, -1]


def prefill(
    model: Any, ids: list[int], device: str, precision: str, **kwargs: Any
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """One prompt alone (no padding): its per-layer (keys, values), (1, kv_heads, L, head_dim), and its
    next-token logits (1, vocab). `kwargs` go to the forward (peft's `adapter_names`)."""
    from transformers import DynamicCache

    dyn = DynamicCache()
    logits = forward_logits(
        model, device, precision, input_ids=torch.tensor([ids], device=device), cache=dyn, **kwargs
    )
    return [(layer.keys, layer.values) for layer in dyn.layers], logits


def mask_dtype(model: Any) -> torch.dtype | None:
    """The dtype of the additive mask eager attention wants; None (a boolean mask) for SDPA."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    eager = base.config._attn_implementation == "eager"
    return base.get_input_embeddings().weight.dtype if eager else None


# ---------------------------------------------------------------------------------------------- loop


class Decoder:
    """Decodes `order`'s prompts `width` rows at a time, refilling rows as they finish.

    `run()` yields (prompt index, the token ids of each sample) as soon as all samples of a prompt are
    done; ids end at EOS (included), at the end of the function, or at `max_new_tokens`. Counters:
    `steps` (decoding forwards), `row_steps` (rows they ran), `prefills`.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prompts: Sequence[str],
        prompt_ids: dict[int, list[int]],
        order: list[int],
        language: str,
        cfg: GenerateConfig,
        *,
        device: str,
        precision: str,
        seed: int = 0,
    ) -> None:
        self.model, self.tokenizer, self.language, self.cfg = model, tokenizer, language, cfg
        self.prompts, self.prompt_ids, self.device, self.precision = prompts, prompt_ids, device, precision
        self.jobs = deque((i, s) for i in order for s in range(cfg.n_samples))
        self.width = cfg.batch_size
        self.capacity = max((len(prompt_ids[i]) for i in order), default=1) + cfg.max_new_tokens
        self.watch = StopWatch(tokenizer, language)
        self.picker = _Picker(cfg, seed, device)
        self.rows: list[_Row | None] = []  # slot -> row; None = a hole for the next prompt
        self.done: dict[int, dict[int, list[int]]] = {}
        self.cache: Any = None
        self._prefilled: tuple[int, list, torch.Tensor] | None = None
        self._mask_dtype = mask_dtype(model)
        self.steps = self.row_steps = self.prefills = 0

    def run(self) -> Iterator[tuple[int, list[list[int]]]]:
        while self.jobs or self.rows:
            self._fill()
            self._compact()
            yield from self._finished_prompts()
            if self.rows:
                self._step()
        yield from self._finished_prompts()

    def _forward(self, **kwargs: Any) -> torch.Tensor:
        return forward_logits(self.model, self.device, self.precision, **kwargs)

    def _prefill(self, index: int) -> tuple[list, torch.Tensor]:
        """A prompt's per-layer (keys, values), (1, kv_heads, L, head_dim), and its next-token logits (1, vocab);
        kept for the prompt's next sample."""
        if self._prefilled is None or self._prefilled[0] != index:
            ids = self.prompt_ids[index] or start_ids(self.tokenizer)
            kv, logits = prefill(self.model, ids, self.device, self.precision)
            self._prefilled = (index, kv, logits)
            self.prefills += 1
        return self._prefilled[1], self._prefilled[2]

    def _fill(self) -> None:
        """Give each hole (and each slot up to `width`) the next prompt; a row done at its first token leaves."""
        from codetune.kv_cache import SlotCache

        slot = 0
        while self.jobs:
            while slot < len(self.rows) and self.rows[slot] is not None:
                slot += 1
            if slot >= self.width:
                return
            index, sample = self.jobs.popleft()
            kv, logits = self._prefill(index)
            n_prompt = kv[0][0].shape[2]
            gen = self.picker.generator(index, sample)
            row = _Row(index, sample, n_prompt, [], gen, self.watch.start(self.prompts[index]))
            if not self._accept(row, self.picker.pick(logits, [row])[0]):
                continue
            if self.cache is None:
                self.cache = SlotCache(len(kv), self.width, self.capacity, self.device)
            self.cache.write_prompt(slot, kv)
            if slot == len(self.rows):
                self.rows.append(row)
            else:
                self.rows[slot] = row

    def _compact(self) -> None:
        """Move the last rows into the holes, so the active rows are slots [0, n) (only when no prompt is left)."""
        rows, hole = self.rows, 0
        while True:
            while rows and rows[-1] is None:
                rows.pop()
            while hole < len(rows) and rows[hole] is not None:
                hole += 1
            if hole >= len(rows):
                return
            row = rows.pop()
            self.cache.move(len(rows), hole, row.n_prompt + len(row.ids) - 1)
            rows[hole] = row

    def _step(self) -> None:
        """One decoding forward over the active rows; rows that finish leave holes."""
        rows: list[_Row] = self.rows  # type: ignore[assignment]  # no holes after _compact
        last = torch.tensor([[r.ids[-1]] for r in rows], device=self.device)  # (n, 1)
        pos = torch.tensor([r.n_prompt + len(r.ids) - 1 for r in rows], device=self.device)  # (n,)
        self.cache.step(pos)
        logits = self._forward(
            input_ids=last,
            position_ids=pos[:, None],
            attention_mask=self.cache.mask(self._mask_dtype),
            cache=self.cache,
        )
        self.steps += 1
        self.row_steps += len(rows)
        for slot, (row, token) in enumerate(zip(rows, self.picker.pick(logits, rows))):
            if not self._accept(row, token):
                self.rows[slot] = None

    def _accept(self, row: _Row, token: int) -> bool:
        """Append `token` to the row; False (and the row is recorded as done) when the row stops here."""
        row.ids.append(token)
        stop = token == self.tokenizer.eos_token_id or len(row.ids) >= self.cfg.max_new_tokens
        if not stop and self.watch.needs_check(row, token):
            text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
            stop = stopping.is_complete(self.language, self.prompts[row.index], text)
        if stop:
            self.done.setdefault(row.index, {})[row.sample] = row.ids
        return not stop

    def _finished_prompts(self) -> Iterator[tuple[int, list[list[int]]]]:
        for index in [i for i, s in self.done.items() if len(s) == self.cfg.n_samples]:
            samples = self.done.pop(index)
            yield index, [samples[s] for s in range(self.cfg.n_samples)]
