"""Batched generation with a KV cache: length-sorted, left-padded batches that stop per sample at the
end of the function (by the language's stop rule in `codetune.stopping`) or at `max_new_tokens`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from codetune import stopping
from codetune.config import GenerateConfig
from codetune.kernels import bf16_decoding


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
    """Yield the generations of each batch as it finishes (so callers can persist and resume).

    Prompts are sorted by token length (longest first) so each batch pads little; `skip` holds prompt
    indices already generated. Greedy when cfg.n_samples == 1, else temperature / top-p sampling.
    """
    import torch
    from tqdm.auto import tqdm

    skip = skip or set()
    # Tokenizers merge a newline with the next line's indentation ("\n   " is one token), so a prompt
    # ending in "\n" would start generation mid-token, unlike anything seen in training. Generate from
    # the prompt without its final newline and drop that newline from the completion again.
    trimmed = [p.endswith("\n") for p in prompts]
    prompts = [p[:-1] if t else p for p, t in zip(prompts, trimmed)]
    todo = [i for i in range(len(prompts)) if i not in skip]
    lengths = {i: n for i, n in zip(todo, (len(x) for x in tokenizer([prompts[i] for i in todo])["input_ids"]))}
    todo.sort(key=lambda i: -lengths[i])
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    sampling = cfg.n_samples > 1
    bar = tqdm(total=len(todo), desc="generate", unit="prompt", disable=None if progress else True, leave=False)
    try:
        with bf16_decoding(model, enabled=precision == "bf16" and cfg.cast_once):
            for start in range(0, len(todo), cfg.batch_size):
                idx = todo[start : start + cfg.batch_size]
                batch_prompts = [prompts[i] for i in idx]
                enc = tokenizer(batch_prompts, return_tensors="pt", padding=True).to(device)
                width = enc["input_ids"].shape[1]
                # Seed per batch from the first prompt index: results do not depend on what was skipped.
                torch.manual_seed(seed * 1_000_003 + idx[0])
                crit = _stop_criteria(tokenizer, batch_prompts, width, language, cfg.n_samples)
                with (
                    torch.no_grad(),
                    torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"),
                ):
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
                new = out[:, width:]
                results = []
                for row in range(new.shape[0]):
                    p = row // cfg.n_samples
                    ids = new[row].tolist()
                    n_new = len(ids)
                    hit_eos = tokenizer.eos_token_id in ids
                    if hit_eos:
                        n_new = ids.index(tokenizer.eos_token_id) + 1
                    elif tokenizer.pad_token_id in ids and tokenizer.pad_token_id != tokenizer.eos_token_id:
                        n_new = ids.index(tokenizer.pad_token_id)
                    raw = tokenizer.decode(ids[:n_new], skip_special_tokens=True)
                    cut = stopping.truncate(language, batch_prompts[p], raw)
                    ended = cut != raw or stopping.is_complete(language, batch_prompts[p], raw)
                    stop = "function_end" if ended else ("eos" if hit_eos else "max_new_tokens")
                    if trimmed[idx[p]]:
                        cut = cut.removeprefix("\n")
                        raw = raw.removeprefix("\n")
                    results.append(
                        Generation(
                            index=idx[p],
                            sample=row % cfg.n_samples,
                            completion=cut,
                            raw=raw,
                            n_new_tokens=n_new,
                            stop=stop,
                        )
                    )
                bar.update(len(idx))
                yield results
    finally:
        tokenizer.padding_side = old_side
        bar.close()
