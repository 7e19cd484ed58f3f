"""The step plan: tokenized examples, the micro-batches of every optimizer step, and how a step is cut.

Everything here is decided before the first step and from the seed alone, so a resumed run replays the
same plan; nothing here needs torch except `collate`, which builds one piece's tensors.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from codetune.config import DataConfig, RunConfig
from codetune.data.fim import FimSplit
from codetune.data.records import CodeSample


@dataclass
class Encoded:
    """One tokenized training example. labels are -100 on prompt tokens (no loss there)."""

    input_ids: list[int]
    labels: list[int]
    fim: bool = False  # a fill-in-the-middle example (data.fim_rate)


def encode(
    tokenizer: Any, samples: list[CodeSample], data: DataConfig | None = None, seed: int = 0
) -> list[Encoded]:
    """Tokenize each example; loss on what the model should write, then EOS.

    Left-to-right (every example when `data` is None or data.fim_rate is 0): prompt+target tokenized
    once, tokens that start inside the prompt get no loss. With data.fim_rate > 0, each example becomes
    FIM with that probability (`data.fim.fim_split`, seeded by `seed` and its id): the FIM prompt's ids
    (`fim.fim_ids`), then the middle's, then EOS, loss on the middle and EOS only.
    """
    if data is None or data.fim_rate == 0:
        return _encode_left_to_right(tokenizer, samples)
    from codetune.data.fim import fim_split

    splits = [
        fim_split(s, seed=seed, rate=data.fim_rate, mode=data.fim_mode, split=data.fim_split) for s in samples
    ]
    plain = iter(_encode_left_to_right(tokenizer, [s for s, f in zip(samples, splits) if f is None]))
    return [next(plain) if f is None else _encode_fim(tokenizer, f) for f in splits]


def _encode_fim(tokenizer: Any, split: FimSplit) -> Encoded:
    from codetune.fim import fim_ids, text_ids

    prompt = fim_ids(tokenizer, split.prefix, split.suffix, split.mode)
    middle = text_ids(tokenizer, split.middle) + [tokenizer.eos_token_id]
    return Encoded(input_ids=prompt + middle, labels=[-100] * len(prompt) + middle, fim=True)


def _encode_left_to_right(tokenizer: Any, samples: list[CodeSample]) -> list[Encoded]:
    if not samples:
        return []
    texts = [s.prompt + s.target for s in samples]
    enc = tokenizer(texts, add_special_tokens=True, return_offsets_mapping=True)
    eos = tokenizer.eos_token_id
    out = []
    for s, ids, offsets in zip(samples, enc["input_ids"], enc["offset_mapping"]):
        cut = len(s.prompt)
        # A token whose end lies within the prompt is context; one reaching past it is target.
        labels = [-100 if end <= cut else tid for tid, (_, end) in zip(ids, offsets)]
        out.append(Encoded(input_ids=list(ids) + [eos], labels=labels + [eos]))
    return out


def count_tokens(tokenizer: Any, texts: list[str]) -> list[int]:
    """Token count of each text, special tokens included (the length function of the data splits)."""
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]


def plan_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, mode: str) -> list[list[int]]:
    """Indices of each micro-batch for one epoch.

    length_grouped: sort by length (random tie-break), chunk, shuffle the chunks -> little padding.
    random: shuffle, chunk. sequential: keep the given order (curriculum).
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    idx = list(range(len(lengths)))
    if mode == "sequential":
        return [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    rng.shuffle(idx)
    if mode == "length_grouped":
        idx.sort(key=lambda i: lengths[i])
        batches = [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
        rng.shuffle(batches)
        return batches
    return [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]


def split_by_tokens(batch_idx: list[int], lengths: list[int], budget: int) -> list[list[int]]:
    """Cut one batch into pieces whose padded size (items x longest) stays within `budget` tokens.

    Activation memory grows with the padded tokens of what runs at once; the optimizer step (and so the
    result, up to float rounding) is the same whether a batch runs whole or in pieces. budget 0 = whole.
    """
    if budget <= 0:
        return [batch_idx]
    pieces: list[list[int]] = []
    cur: list[int] = []
    for i in sorted(batch_idx, key=lambda j: lengths[j]):
        if cur and (len(cur) + 1) * max(lengths[i], max(lengths[j] for j in cur)) > budget:
            pieces.append(cur)
            cur = []
        cur.append(i)
    if cur:
        pieces.append(cur)
    return pieces


def share_tokens(idx: list[int], lengths: list[int], n: int) -> list[list[int]]:
    """Split the sequences `idx` into at most n groups of near-equal token count, for n workers.

    Longest first, each to the group with the fewest tokens so far (ties: the lower group); groups left
    empty (fewer sequences than n) are dropped. Deterministic: the same input gives the same groups.
    """
    groups: list[list[int]] = [[] for _ in range(n)]
    load = [0] * n
    for i in sorted(idx, key=lambda j: (-lengths[j], j)):
        g = min(range(n), key=lambda k: load[k])
        groups[g].append(i)
        load[g] += lengths[i]
    return [g for g in groups if g]


def collate(items: list[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest item in this batch (not to a global max length)."""
    import torch

    width = max(len(e.input_ids) for e in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)  # (batch, seq)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, e in enumerate(items):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@dataclass(frozen=True)
class Step:
    """One optimizer step: its micro-batches and the target tokens over all of them."""

    batches: list[list[int]]  # indices into StepPlan.encoded, grad_accum micro-batches (fewer at the end)
    n_target: int  # the step's loss is the mean over these tokens, however the batches are cut

    @property
    def indices(self) -> list[int]:
        """Every sequence of the step, batch after batch."""
        return [i for b in self.batches for i in b]


@dataclass
class StepPlan:
    """The encoded examples and every step of a run, fixed before the first step."""

    encoded: list[Encoded]
    lengths: list[int]  # tokens per example (EOS included)
    n_loss_tokens: list[int]  # positions per example that predict a labelled token
    steps: list[Step]
    pad_id: int

    @property
    def total_steps(self) -> int:
        return len(self.steps)

    def targets(self, piece: list[int]) -> int:
        """Labelled positions of a piece: its share of the step's loss is targets / Step.n_target."""
        return sum(self.n_loss_tokens[i] for i in piece)

    def pieces(self, idx: list[int], budget: int) -> list[list[int]]:
        return split_by_tokens(idx, self.lengths, budget)

    def batch(self, piece: list[int]) -> dict[str, Any]:
        return collate([self.encoded[i] for i in piece], self.pad_id)


def plan_steps(tokenizer: Any, samples: list[CodeSample], cfg: RunConfig) -> StepPlan:
    """Encode `samples` and lay out every step: epochs of batches (fractional epochs cut the last one),
    grad_accum batches a step."""
    tc = cfg.train
    if cfg.data.fim_rate > 0:
        from codetune.errors import CodetuneError
        from codetune.fim import fim_tokens

        if fim_tokens(tokenizer) is None:
            raise CodetuneError(
                "data.fim_rate > 0 but the tokenizer has no FIM tokens",
                "wrap the model with codetune.models.apply_lora(model, cfg.lora, tokenizer=tok, fim=True)",
            )
    encoded = encode(tokenizer, samples, cfg.data, cfg.seed)
    lengths = [len(e.input_ids) for e in encoded]
    n_loss_tokens = [sum(lab != -100 for lab in e.labels[1:]) for e in encoded]  # predicted positions
    mode = "sequential" if cfg.data.order == "curriculum" else tc.batching
    micro: list[list[int]] = []
    for epoch in range(math.ceil(tc.epochs)):
        micro += plan_batches(lengths, tc.batch_size, cfg.seed, epoch, mode)
    per_epoch = math.ceil(len(encoded) / tc.batch_size)
    micro = micro[: max(1, round(tc.epochs * per_epoch))]
    steps = []
    for s in range(math.ceil(len(micro) / tc.grad_accum)):
        batches = micro[s * tc.grad_accum : (s + 1) * tc.grad_accum]
        steps.append(Step(batches, sum(n_loss_tokens[i] for b in batches for i in b)))
    return StepPlan(encoded, lengths, n_loss_tokens, steps, tokenizer.pad_token_id)
