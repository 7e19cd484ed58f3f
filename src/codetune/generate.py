"""Generation that stops per sample at the end of the function (by the language's stop rule in
`codetune.stopping`), at EOS or at `max_new_tokens`.

Prompts may also come tokenized, as `TokenPrompt`s (fill-in-the-middle prompts, whose sentinel tokens no
text can spell): those are decoded from their ids as given and stop only at their own stop ids (EOS and
the FIM sentinels, kept out of the text), at their end ids (kept: a single-line middle ends with the token
that holds its newline) or at `max_new_tokens`, with no end-of-function rule.

`generate` runs `codetune.decoding`'s loop (a full batch of rows, each refilled with the next prompt as
it finishes, over the preallocated cache of `codetune.kv_cache`); for a model that loop cannot drive, HF
`generate` in fixed left-padded batches. Both yield the same `Generation` records.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from codetune import stopping
from codetune.config import GenerateConfig

log = logging.getLogger(__name__)


@dataclass
class Generation:
    """One generated completion of one prompt."""

    index: int  # position of the prompt in the input list
    sample: int  # 0..n_samples-1
    completion: str  # cut at the end of the function
    raw: str  # everything decoded before the cut
    n_new_tokens: int
    # text prompts: function_end | eos | max_new_tokens; a TokenPrompt: eos | stop_token | end_token |
    # max_new_tokens
    stop: str


@dataclass(frozen=True)
class TokenPrompt:
    """A prompt given as token ids, decoded until one of `stop_ids` (kept out of the text), one of `end_ids`
    (kept in it) or max_new_tokens."""

    ids: tuple[int, ...]
    stop_ids: frozenset[int]
    end_ids: frozenset[int] = frozenset()


def ids_containing(tokenizer: Any, text: str) -> frozenset[int]:
    """The ids of every token whose decoded text contains `text` (e.g. "\n": the tokens that end a line)."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=True)
    return frozenset(i for i, t in enumerate(texts) if text in t)


Prompt = str | TokenPrompt


def _stop_criteria(tokenizer: Any, prompts: list[str], width: int, language: str, n_samples: int):
    from transformers import StoppingCriteria

    class FunctionEnd(StoppingCriteria):
        """Per-row stop once the decoded continuation contains the end of the function."""

        def __call__(self, input_ids, scores, **kwargs):  # (rows, width + new)
            import torch

            new = input_ids[:, width:]
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            done = [stopping.is_complete(language, prompts[r // n_samples], t) for r, t in enumerate(texts)]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return FunctionEnd()


@contextmanager
def bf16_decoding(model: Any, enabled: bool = True) -> Iterator[bool]:
    """While inside (generation under bf16 autocast), cast once what autocast would cast every token.

    * The LM head: a tied head's weight is the fp32 embedding matrix, which autocast re-casts to bf16 at
      every decoding step (49152 x 576 for SmolLM2: a large share of a step on CPU; generation speed is
      in benchmarks/RESULTS.md). Inside, the head uses a bf16
      copy made once; the logits are bitwise the same.
    * Rotary tables: their fp32 cos/sin promote bf16 keys back to fp32, so the KV cache is stored in
      fp32 and cast to bf16 again over its whole length at every step. Inside, cos/sin are bf16 under
      autocast, as in a model run natively in bf16, and the cache stays bf16.
    Yields whether it changed anything; everything is restored on exit.
    A head wrapped by peft's trainable tokens (a FIM adapter's sentinel rows) counts as its Linear only while
    those rows are merged into it (`merged_token_rows`); unmerged, nothing changes.
    """
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings() if enabled else None
    linear = _merged_linear(head)
    if linear is None or not isinstance(linear, torch.nn.Linear) or linear.bias is not None:
        yield False
        return

    class _Bf16Head(torch.nn.Module):
        def __init__(self, weight: Any) -> None:
            super().__init__()
            self.weight = weight.detach().to(torch.bfloat16)  # (vocab, hidden)

        def forward(self, x: Any) -> Any:
            if not torch.is_autocast_enabled(x.device.type):
                return torch.nn.functional.linear(x, linear.weight)
            return torch.nn.functional.linear(x.to(torch.bfloat16), self.weight)

    def rope_bf16(module: Any, args: Any, out: Any) -> Any:
        if isinstance(out, tuple) and torch.is_autocast_enabled(out[0].device.type):
            return tuple(t.to(torch.bfloat16) for t in out)
        return None

    hooks = [
        m.register_forward_hook(rope_bf16) for m in base.modules() if type(m).__name__.endswith("RotaryEmbedding")
    ]
    base.set_output_embeddings(_Bf16Head(linear.weight))
    try:
        yield True
    finally:
        base.set_output_embeddings(head)
        for h in hooks:
            h.remove()


def _merged_linear(head: Any) -> Any:
    """The module whose weight the LM head multiplies by: the head itself, or, for a head wrapped by peft's
    trainable tokens whose rows are merged, the wrapped layer; None when the rows are not merged."""
    adapter = getattr(head, "token_adapter", None)
    if adapter is None:
        return head
    return adapter.base_layer if adapter.merged else None


def _token_layers(model: Any) -> list:
    """peft's trainable-token layers of `model` with an active adapter (a FIM adapter's sentinel rows)."""
    return [
        m
        for m in model.modules()
        if type(m).__name__ == "TrainableTokensLayer" and not m.disable_adapters and m.active_adapters
    ]


@contextmanager
def merged_token_rows(model: Any) -> Iterator[int]:
    """While inside, trained token rows (peft `trainable_token_indices`: a FIM adapter's sentinels) are
    merged into the embedding (and LM head) weights; yields how many layers were merged.

    Unmerged, peft rebuilds the whole (vocab, hidden) matrix with the rows copied in at every forward, for
    the input embedding and again for the head, and the head is no Linear `bf16_decoding` can cast once.
    Merged, the forward reads the weights directly: the same values, so the same logits. Restored on exit
    (the rows' originals are copied back)."""
    layers = [m for m in _token_layers(model) if not m.merged]
    done = []
    try:
        for layer in layers:
            layer.merge()
            done.append(layer)
        yield len(done)
    finally:
        for layer in reversed(done):
            if layer.merged:
                layer.unmerge()


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[Prompt],
    language: str,
    cfg: GenerateConfig,
    *,
    device: str,
    precision: str,
    seed: int = 0,
    skip: set[int] | None = None,
    progress: bool = True,
) -> Iterator[list[Generation]]:
    """Yield the generations of each prompt as soon as all its samples are done (so callers can persist them
    and resume with `skip`, the prompt indices already generated).

    Greedy when cfg.n_samples == 1, else temperature / top-p sampling. `cfg.batch_size` rows decode
    together and a finished row takes the next prompt (`codetune.decoding`); a model that loop cannot
    drive runs through HF `generate` in fixed batches instead (`decoding.unsupported` says why).
    Results do not depend on `skip` nor, when greedy, on the batch width (up to floating-point ties).
    `TokenPrompt`s (all prompts, or none) run as given and stop at their stop ids (`generate_token_prompts`).
    """
    if any(isinstance(p, TokenPrompt) for p in prompts):
        yield from generate_token_prompts(
            model,
            tokenizer,
            prompts,
            language,
            cfg,
            device=device,
            precision=precision,
            seed=seed,
            skip=skip,
            progress=progress,
        )
        return
    prompts, trimmed = _trim_newlines(prompts)
    todo, ids = _longest_first(tokenizer, prompts, skip or set())
    with _decoding(model, cfg, precision, len(todo), progress) as bar:
        for index, samples in _decode(
            model, tokenizer, prompts, todo, ids, language, cfg, device, precision, seed
        ):
            bar.update(1)
            yield [
                Generation(
                    index=index, sample=s, **_finish(tokenizer, new, language, prompts[index], trimmed[index])
                )
                for s, new in enumerate(samples)
            ]


@contextmanager
def _decoding(model: Any, cfg: GenerateConfig, precision: str, total: int, progress: bool) -> Iterator[Any]:
    """What both entry points decode under: a progress bar over `total` prompts, a FIM adapter's token rows
    merged, and bf16 decoding where asked for."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="generate", unit="prompt", disable=None if progress else True, leave=False)
    try:
        with merged_token_rows(model), bf16_decoding(model, enabled=precision == "bf16" and cfg.cast_once):
            yield bar
    finally:
        bar.close()


def _decode(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    todo: list[int],
    ids: dict[int, list[int]],
    language: str,
    cfg: GenerateConfig,
    device: str,
    precision: str,
    seed: int,
) -> Iterator[tuple[int, list[list[int]]]]:
    """(prompt index, each sample's new token ids) as prompts finish: the refill loop, or HF `generate` for
    a model the loop cannot drive."""
    from codetune import decoding

    capacity = max((len(ids[i]) for i in todo), default=0) + cfg.max_new_tokens
    why = decoding.unsupported(model, capacity)
    if why is None:
        # Shortest prompts first: rows then share a step with rows of similar lengths, so less of the
        # attention runs over masked columns (a step attends up to its longest row).
        loop = decoding.Decoder(
            model,
            tokenizer,
            prompts,
            ids,
            todo[::-1],
            language,
            cfg,
            device=device,
            precision=precision,
            seed=seed,
        )
        yield from loop.run()
        return
    log.info("generating through HF generate in fixed batches: %s", why)
    yield from _generate_hf(model, tokenizer, prompts, todo, language, cfg, device, precision, seed)


def _trim_newlines(prompts: list[str]) -> tuple[list[str], list[bool]]:
    """The prompts without a final newline, and which had one.

    Tokenizers merge a newline with the next line's indentation ("\\n   " is one token), so a prompt
    ending in "\\n" would start generation mid-token, unlike anything seen in training. Generation runs
    from the prompt without its final newline, and `_finish` drops that newline from the completion.
    """
    trimmed = [p.endswith("\n") for p in prompts]
    return [p[:-1] if t else p for p, t in zip(prompts, trimmed)], trimmed


def _longest_first(tokenizer: Any, prompts: list[str], skip: set[int]) -> tuple[list[int], dict[int, list[int]]]:
    """Indices of the prompts still to generate, by token length, longest first (batches pad little), and
    their token ids."""
    todo = [i for i in range(len(prompts)) if i not in skip]
    ids = dict(zip(todo, tokenizer([prompts[i] for i in todo])["input_ids"])) if todo else {}
    todo.sort(key=lambda i: -len(ids[i]))
    return todo, ids


def _generate_hf(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    todo: list[int],
    language: str,
    cfg: GenerateConfig,
    device: str,
    precision: str,
    seed: int,
) -> Iterator[tuple[int, list[list[int]]]]:
    """The fallback: fixed, left-padded, length-sorted batches through HF `generate`; yields (prompt index,
    each sample's new token ids) per prompt, a batch at a time."""
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(todo), cfg.batch_size):
            idx = todo[start : start + cfg.batch_size]
            new = _decode_batch(
                model, tokenizer, [prompts[i] for i in idx], language, cfg, device, precision, seed, idx[0]
            )
            rows = new.tolist()  # (prompts x n_samples) rows, padded after their end (`_finish` cuts)
            for p, index in enumerate(idx):
                yield index, rows[p * cfg.n_samples : (p + 1) * cfg.n_samples]
    finally:
        tokenizer.padding_side = old_side


def _decode_batch(
    model: Any,
    tokenizer: Any,
    batch_prompts: list[str],
    language: str,
    cfg: GenerateConfig,
    device: str,
    precision: str,
    seed: int,
    first: int,
) -> Any:
    """The new tokens of one left-padded batch, (prompts x n_samples, new), stopping per row at the end
    of the function; seeded from the batch's first prompt index `first`."""
    import torch

    enc = tokenizer(batch_prompts, return_tensors="pt", padding=True).to(device)
    width = enc["input_ids"].shape[1]
    # Seed per batch from the first prompt index: results do not depend on what was skipped.
    torch.manual_seed(seed * 1_000_003 + first)
    crit = _stop_criteria(tokenizer, batch_prompts, width, language, cfg.n_samples)
    sampling = cfg.n_samples > 1
    with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = model.generate(
            **enc,
            max_new_tokens=cfg.max_new_tokens,
            do_sample=sampling,
            temperature=cfg.temperature if sampling else None,
            top_p=cfg.top_p if sampling else None,
            top_k=None,
            num_return_sequences=cfg.n_samples,
            stopping_criteria=[crit],
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    return out[:, width:]


def _finish(tokenizer: Any, ids: list[int], language: str, prompt: str, trimmed: bool) -> dict[str, Any]:
    """One row's Generation fields: decoded up to EOS (or padding), cut at the end of the function, and
    why it stopped."""
    n_new = len(ids)
    hit_eos = tokenizer.eos_token_id in ids
    if hit_eos:
        n_new = ids.index(tokenizer.eos_token_id) + 1
    elif tokenizer.pad_token_id in ids and tokenizer.pad_token_id != tokenizer.eos_token_id:
        n_new = ids.index(tokenizer.pad_token_id)
    raw = tokenizer.decode(ids[:n_new], skip_special_tokens=True)
    cut = stopping.truncate(language, prompt, raw)
    ended = cut != raw or stopping.is_complete(language, prompt, raw)
    stop = "function_end" if ended else ("eos" if hit_eos else "max_new_tokens")
    if trimmed:
        cut = cut.removeprefix("\n")
        raw = raw.removeprefix("\n")
    return {"completion": cut, "raw": raw, "n_new_tokens": n_new, "stop": stop}


# ------------------------------------------------------------------------------------- token prompts


def generate_token_prompts(
    model: Any,
    tokenizer: Any,
    prompts: list[TokenPrompt],
    language: str,
    cfg: GenerateConfig,
    *,
    device: str,
    precision: str,
    seed: int = 0,
    skip: set[int] | None = None,
    progress: bool = True,
) -> Iterator[list[Generation]]:
    """`generate` for prompts given as ids: the same refill loop (or HF `generate` where it cannot drive the
    model), each row stopping at its prompt's stop ids, end ids or max_new_tokens. A Generation's `completion`
    and `raw` are both the text before the stop token (through the end token); `stop` is eos, stop_token
    (another stop id), end_token or max_new_tokens.
    `language` only names the decoding loop's unused stop rule."""
    if not all(isinstance(p, TokenPrompt) for p in prompts):
        raise TypeError("prompts mix TokenPrompts and text; pass one kind")
    todo = [i for i in range(len(prompts)) if i not in (skip or set())]
    ids = {i: list(prompts[i].ids) for i in todo}
    todo.sort(key=lambda i: -len(ids[i]))
    with _decoding(model, cfg, precision, len(todo), progress) as bar:
        for index, samples in _decode_token_prompts(
            model, tokenizer, prompts, todo, ids, language, cfg, device, precision, seed
        ):
            bar.update(1)
            stops, ends = prompts[index].stop_ids, prompts[index].end_ids
            yield [
                Generation(index=index, sample=s, **_finish_ids(tokenizer, new, stops, ends))
                for s, new in enumerate(samples)
            ]


def _decode_token_prompts(model, tokenizer, prompts, todo, ids, language, cfg, device, precision, seed):
    from codetune import decoding

    capacity = max((len(ids[i]) for i in todo), default=0) + cfg.max_new_tokens
    why = decoding.unsupported(model, capacity)
    if why is None:

        class StopIdsDecoder(decoding.Decoder):
            """The refill loop with a row's end decided by its prompt's stop and end ids alone."""

            def _accept(self, row: Any, token: int) -> bool:
                row.ids.append(token)
                p = prompts[row.index]
                if token in p.stop_ids or token in p.end_ids or len(row.ids) >= self.cfg.max_new_tokens:
                    self.done.setdefault(row.index, {})[row.sample] = row.ids
                    return False
                return True

        texts = [""] * len(prompts)  # the loop's stop rule never runs; its line state starts blank
        loop = StopIdsDecoder(
            model, tokenizer, texts, ids, todo[::-1], language, cfg, device=device, precision=precision, seed=seed
        )
        yield from loop.run()
        return
    log.info("generating through HF generate in fixed batches: %s", why)
    # HF stops every row of a batch at any of the batch's eos ids: a batch holds prompts of one stop set only
    groups: dict[tuple, list[int]] = {}
    for i in todo:
        groups.setdefault((prompts[i].stop_ids, prompts[i].end_ids), []).append(i)
    for group in groups.values():
        for start in range(0, len(group), cfg.batch_size):
            idx = group[start : start + cfg.batch_size]
            rows = _decode_id_batch(
                model, tokenizer, [ids[i] for i in idx], prompts, idx, cfg, device, precision, seed
            )
            for p, index in enumerate(idx):
                yield index, rows[p * cfg.n_samples : (p + 1) * cfg.n_samples]


def _decode_id_batch(model, tokenizer, batch, prompts, idx, cfg, device, precision, seed) -> list[list[int]]:
    """HF `generate` on one left-padded batch of id prompts; (prompts x n_samples) rows of new ids."""
    import torch

    width = max(len(b) for b in batch)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.tensor([[pad] * (width - len(b)) + b for b in batch], device=device)
    mask = torch.tensor([[0] * (width - len(b)) + [1] * len(b) for b in batch], device=device)
    stops = sorted(prompts[idx[0]].stop_ids | prompts[idx[0]].end_ids)  # the same for every prompt here
    torch.manual_seed(seed * 1_000_003 + idx[0])
    sampling = cfg.n_samples > 1
    with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=cfg.max_new_tokens,
            do_sample=sampling,
            temperature=cfg.temperature if sampling else None,
            top_p=cfg.top_p if sampling else None,
            top_k=None,
            num_return_sequences=cfg.n_samples,
            pad_token_id=pad,
            eos_token_id=stops,
        )
    return out[:, width:].tolist()  # rows padded after their stop token (`_finish_ids` cuts there)


def _finish_ids(
    tokenizer: Any, ids: list[int], stop_ids: frozenset[int], end_ids: frozenset[int] = frozenset()
) -> dict[str, Any]:
    """One id-prompt row's Generation fields: the text before its first stop id (through its first end id),
    and why it stopped."""
    for k, token in enumerate(ids):
        if token in end_ids and token not in stop_ids:
            text = tokenizer.decode(ids[: k + 1], skip_special_tokens=True)
            return {"completion": text, "raw": text, "n_new_tokens": k + 1, "stop": "end_token"}
        if token in stop_ids:
            text = tokenizer.decode(ids[:k], skip_special_tokens=True)
            stop = "eos" if token == tokenizer.eos_token_id else "stop_token"
            return {"completion": text, "raw": text, "n_new_tokens": k + 1, "stop": stop}
    text = tokenizer.decode(ids, skip_special_tokens=True)
    return {"completion": text, "raw": text, "n_new_tokens": len(ids), "stop": "max_new_tokens"}
