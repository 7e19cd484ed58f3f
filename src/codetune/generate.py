"""Generation that stops per sample at the end of the function (by the language's stop rule in
`codetune.stopping`), at EOS or at `max_new_tokens`.

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
    stop: str  # function_end | eos | max_new_tokens


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
    """
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings() if enabled else None
    if head is None or not isinstance(head, torch.nn.Linear) or head.bias is not None:
        yield False
        return

    class _Bf16Head(torch.nn.Module):
        def __init__(self, weight: Any) -> None:
            super().__init__()
            self.weight = weight.detach().to(torch.bfloat16)  # (vocab, hidden)

        def forward(self, x: Any) -> Any:
            if not torch.is_autocast_enabled(x.device.type):
                return torch.nn.functional.linear(x, head.weight)
            return torch.nn.functional.linear(x.to(torch.bfloat16), self.weight)

    def rope_bf16(module: Any, args: Any, out: Any) -> Any:
        if isinstance(out, tuple) and torch.is_autocast_enabled(out[0].device.type):
            return tuple(t.to(torch.bfloat16) for t in out)
        return None

    hooks = [
        m.register_forward_hook(rope_bf16) for m in base.modules() if type(m).__name__.endswith("RotaryEmbedding")
    ]
    base.set_output_embeddings(_Bf16Head(head.weight))
    try:
        yield True
    finally:
        base.set_output_embeddings(head)
        for h in hooks:
            h.remove()


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
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
    """
    from tqdm.auto import tqdm

    prompts, trimmed = _trim_newlines(prompts)
    todo, ids = _longest_first(tokenizer, prompts, skip or set())
    bar = tqdm(total=len(todo), desc="generate", unit="prompt", disable=None if progress else True, leave=False)
    try:
        with bf16_decoding(model, enabled=precision == "bf16" and cfg.cast_once):
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
