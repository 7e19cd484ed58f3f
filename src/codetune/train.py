"""LoRA fine-tuning with a plain training loop: loss on target tokens only, padding per batch.

Why not HF Trainer: we need exact control of batching (length-grouped, no pad-to-max), bf16 autocast
on CPU, real-token throughput accounting and step-level checkpoints that resume bit-for-bit.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codetune import faults
from codetune.config import RunConfig
from codetune.data.records import CodeSample
from codetune.kernels import fp32_attention, head_cross_entropy, use_bits_dropout, use_torch_dropout


@dataclass
class Encoded:
    """One tokenized training example. labels are -100 on prompt tokens (no loss there)."""

    input_ids: list[int]
    labels: list[int]


@dataclass
class TrainResult:
    """What a training run did and how fast."""

    steps: int
    epochs: float
    losses: list[float] = field(default_factory=list)  # mean loss per optimizer step
    train_time_s: float = 0.0
    real_tokens: int = 0  # non-padding tokens processed (prompt + target)
    target_tokens: int = 0  # tokens that carried loss
    padded_tokens: int = 0  # batch slots incl. padding
    tokens_per_s: float = 0.0  # real tokens / train time
    precision: str = "fp32"
    device: str = "cpu"
    trainable_params: int = 0
    resumed_from_step: int = 0
    forward: str = "peft"  # "fused", "fused+compile" (codetune.fused) or "peft" (transformers + PEFT)
    forward_note: str = ""  # why the fused forward was not used, when train.fused=auto fell back
    workers: int = 1  # data-parallel threads (train.workers, resolved)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def encode(tokenizer: Any, samples: list[CodeSample]) -> list[Encoded]:
    """Tokenize prompt+target once; tokens that start inside the prompt get no loss; end with EOS."""
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


def supports_target_logits(model: Any) -> bool:
    """True when the model's forward takes `logits_to_keep` and applies nothing after its LM head."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = base.config
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return False
    return (
        "logits_to_keep" in inspect.signature(base.forward).parameters and base.get_output_embeddings() is not None
    )


def lm_head_weight(model: Any, dtype: Any = None) -> Any:
    """The LM head's weight (vocab, hidden), detached, in `dtype` (None = as stored)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    weight = base.get_output_embeddings().weight.detach()
    return weight if dtype is None else weight.to(dtype)


def target_loss(
    model: Any, batch: dict[str, Any], chunk: int = 0, hidden_fn: Any = None, head_weight: Any = None
) -> Any:
    """Mean next-token cross-entropy over labelled tokens, running the LM head on those tokens only.

    Same value as the model's own loss (which averages over labels != -100), but the (tokens x vocab)
    logits of prompt and padding positions are never computed: less time and far less memory.
    chunk > 0: the head and loss run over at most `chunk` target tokens at a time
    (`kernels.head_cross_entropy`), so only one chunk's logits is ever alive.
    hidden_fn: input_ids -> final hidden states (the fused forward); None = the model's own forward.
    head_weight: the LM head's weight already in the matmul dtype (saves a cast per call).
    """
    import torch
    import torch.nn.functional as F

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hidden_fn is not None:
        hidden = hidden_fn(batch["input_ids"])
    else:
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=True,
            logits_to_keep=1,
        )
        hidden = out.hidden_states[-1]
    hidden = hidden[:, :-1]  # (batch, seq-1, hidden), final norm applied
    labels = batch["labels"][:, 1:]  # (batch, seq-1): token t predicts label t+1
    keep = labels != -100
    head = base.get_output_embeddings()
    hidden, labels = hidden[keep], labels[keep]  # (n_target, hidden), (n_target,)
    if chunk <= 0 or head.bias is not None:
        return F.cross_entropy(head(hidden).float(), labels)
    if head_weight is None:
        device = hidden.device.type
        head_weight = lm_head_weight(
            model, torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        )
    return head_cross_entropy(hidden, head_weight, labels, chunk) / len(labels)


def _lr_lambda(total: int, warmup: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return f


def _save_checkpoint(ckpt: Path, model: Any, opt: Any, sched: Any, step: int, state: dict) -> None:
    import torch
    from peft import get_peft_model_state_dict

    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(
        {
            "adapter": get_peft_model_state_dict(model),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "step": step,
            "torch_rng": torch.get_rng_state(),
            "state": state,
        },
        tmp / "state.pt",
    )
    shutil.rmtree(ckpt, ignore_errors=True)
    tmp.replace(ckpt)


def _load_checkpoint(ckpt: Path, model: Any, opt: Any, sched: Any) -> tuple[int, dict]:
    import torch
    from peft import set_peft_model_state_dict

    blob = torch.load(ckpt / "state.pt", weights_only=False)
    set_peft_model_state_dict(model, blob["adapter"])
    opt.load_state_dict(blob["optimizer"])
    sched.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["torch_rng"])
    return int(blob["step"]), blob["state"]


def _fused_forward(model: Any, cfg: RunConfig, precision: str, attn32: bool, own_head: bool, result: Any) -> Any:
    """A FusedLlama for this run per train.fused / train.compile, or None (the PEFT forward runs).

    Records in `result` which forward ran, and why not the fused one when train.fused=auto fell back.
    """
    from codetune.errors import ConfigError
    from codetune.fused import FusedLlama, unsupported

    tc = cfg.train
    if tc.fused == "off":
        return None
    why = None
    if not own_head:
        why = "train.logits=all (the fused forward feeds the target-only loss)"
    elif tc.padding_mask != "omit":
        why = "train.padding_mask=pass (the fused forward takes no attention mask)"
    elif tc.lora_dropout_rng != "bits" and cfg.lora.dropout > 0:
        why = "train.lora_dropout_rng=torch (the fused forward draws the bits masks)"
    else:
        why = unsupported(model)
    if why:
        if tc.fused == "on":
            raise ConfigError(f"train.fused=on but {why}", "set train.fused=auto or train.fused=off")
        result.forward_note = why
        return None
    if tc.compile:
        _inductor_cache()
    result.forward = "fused+compile" if tc.compile else "fused"
    return FusedLlama(model, precision=precision, attention_fp32=attn32, compile=tc.compile)


def _resolve_workers(requested: int, device: str, fused: Any) -> int:
    """train.workers -> the number of data-parallel threads.

    0 = auto: two when torch runs two threads, the eager fused forward and a CPU (the case measured),
    else 1: on more cores, one worker per core would run many more, smaller pieces, each reading every
    weight, and that trade was not measured. More than one worker needs all three: the PEFT forward
    draws its dropout masks from the default generator, which threads running at once would share in no
    fixed order, and torch.compile'd code is not made to be entered from several threads at once."""
    import torch

    from codetune.errors import ConfigError

    if fused is None:
        why = "the fused forward (train.fused=auto or on, where supported)"
    elif fused.compiled:
        why = "train.compile=false"
    elif device != "cpu":
        why = "a CPU device"
    else:
        why = None
    if requested == 0:
        return 2 if why is None and torch.get_num_threads() == 2 else 1
    if requested > 1 and why:
        raise ConfigError(
            f"train.workers={requested} needs {why}", "set train.workers=0 (auto) or train.workers=1"
        )
    return requested


@dataclass
class _Share:
    """What one worker did in one optimizer step."""

    loss: float = 0.0
    real: int = 0
    target: int = 0
    padded: int = 0
    grads: list[Any] | None = None  # its gradients (workers > 1); None: they went to .grad


def _inductor_cache() -> None:
    """Keep torch.compile's compiled kernels in codetune's cache (reused by later runs) unless set."""
    import os

    from codetune.paths import cache_dir

    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))


def train(
    model: Any,
    tokenizer: Any,
    samples: list[CodeSample],
    cfg: RunConfig,
    *,
    device: str,
    precision: str,
    run_dir: Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train the LoRA weights of `model` (a PeftModel) on `samples`; resume from run_dir/checkpoint.

    Returns the TrainResult; the caller saves the adapter.
    """
    import torch
    from tqdm.auto import tqdm

    tc = cfg.train
    encoded = encode(tokenizer, samples)
    lengths = [len(e.input_ids) for e in encoded]
    n_loss_tokens = [sum(lab != -100 for lab in e.labels[1:]) for e in encoded]  # predicted positions
    mode = "sequential" if cfg.data.order == "curriculum" else tc.batching
    n_epochs = math.ceil(tc.epochs)
    micro: list[list[int]] = []
    for epoch in range(n_epochs):
        micro += plan_batches(lengths, tc.batch_size, cfg.seed, epoch, mode)
    per_epoch = math.ceil(len(encoded) / tc.batch_size)
    micro = micro[: max(1, round(tc.epochs * per_epoch))]
    total_steps = math.ceil(len(micro) / tc.grad_accum)

    params = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel for all LoRA tensors (measured 3.6 vs 15 ms a step on CPU for 240 of them)
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay, fused=device in ("cpu", "cuda"))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(total_steps, int(tc.warmup_ratio * total_steps)))
    result = TrainResult(
        steps=total_steps,
        epochs=tc.epochs,
        precision=precision,
        device=device,
        trainable_params=sum(p.numel() for p in params),
    )
    ckpt = run_dir / "checkpoint" if run_dir else None
    start = 0
    if ckpt and (ckpt / "state.pt").is_file():
        start, state = _load_checkpoint(ckpt, model, opt, sched)
        for k in ("losses", "train_time_s", "real_tokens", "target_tokens", "padded_tokens"):
            setattr(result, k, state[k])
        result.resumed_from_step = start

    model.train()
    own_head = tc.logits == "targets_only" and supports_target_logits(model)
    use_bf16 = precision == "bf16"
    bar = tqdm(
        total=total_steps,
        initial=start,
        desc="train",
        unit="step",
        disable=None if progress else True,
        leave=False,
    )
    if tc.lora_dropout_rng == "bits":
        use_bits_dropout(model)
    else:
        use_torch_dropout(model)
    attn32 = tc.attention == "fp32" or (tc.attention == "auto" and device == "cpu" and use_bf16)
    fused = _fused_forward(model, cfg, precision, attn32, own_head, result)
    workers = result.workers = _resolve_workers(tc.workers, device, fused)
    head_weight = lm_head_weight(model, torch.bfloat16 if use_bf16 else None) if own_head else None
    gens = [torch.Generator(device=device) for _ in range(workers)] if workers > 1 else []

    def run_share(pieces: list[list[int]], n_target: int, gen: Any) -> _Share:
        """Forward and backward of `pieces`; gradients into .grad (one worker) or returned (several)."""
        share = _Share()
        hidden_fn = None if fused is None else (lambda ids: fused.hidden(ids, gen))
        for piece in pieces:
            batch = collate([encoded[i] for i in piece], tokenizer.pad_token_id)
            share.real += int(batch["attention_mask"].sum())
            share.target += int((batch["labels"] != -100).sum())
            share.padded += batch["input_ids"].numel()
            batch = {k: v.to(device) for k, v in batch.items()}
            if tc.padding_mask == "omit":
                batch["attention_mask"] = None  # right padding: see TrainConfig.padding_mask
            piece_target = sum(n_loss_tokens[i] for i in piece)
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=use_bf16):
                if own_head:
                    mean = target_loss(model, batch, tc.logits_chunk, hidden_fn, head_weight)
                else:
                    mean = model(**batch).loss
                loss = mean * (piece_target / max(n_target, 1))
            if workers == 1:
                loss.backward()
            else:
                grads = torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)
                if share.grads is None:
                    share.grads = list(grads)
                else:
                    for acc, g in zip(share.grads, grads):
                        acc.add_(g)
            share.loss += float(loss.detach())
        return share

    threads = torch.get_num_threads()
    pool = None
    if workers > 1:
        # Each worker on one core (see TrainConfig.workers). First: a thread that already exists keeps the
        # intra-op thread count it had (measured), so the setting must come before the pool's threads.
        torch.set_num_threads(1)
        pool = ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="codetune-train")
    try:
        with fp32_attention(model, attn32 and fused is None):
            t0 = time.perf_counter() - result.train_time_s
            for step in range(start, total_steps):
                chunk = micro[step * tc.grad_accum : (step + 1) * tc.grad_accum]
                # The step's loss is the mean over all its target tokens, however the batch was cut into pieces.
                n_target = sum(n_loss_tokens[i] for batch_idx in chunk for i in batch_idx)
                if workers == 1:
                    pieces = [p for b in chunk for p in split_by_tokens(b, lengths, tc.micro_batch_tokens)]
                    shares = [run_share(pieces, n_target, None)]
                else:
                    # Each worker's pieces get 1/workers of the token budget: the same memory in flight.
                    budget = max(1, tc.micro_batch_tokens // workers) if tc.micro_batch_tokens else 0
                    groups = share_tokens([i for b in chunk for i in b], lengths, workers)
                    seeds = torch.randint(0, 2**62, (workers,)).tolist()  # from the default generator
                    jobs = []
                    for group, gen, seed in zip(groups, gens, seeds):
                        gen.manual_seed(seed)
                        jobs.append((split_by_tokens(group, lengths, budget), n_target, gen))
                    futures = [pool.submit(run_share, *job) for job in jobs[1:]]
                    shares = [run_share(*jobs[0])] + [f.result() for f in futures]
                    for i, p in enumerate(params):  # added in worker order: the same sum every time
                        p.grad = shares[0].grads[i]
                        for sh in shares[1:]:
                            p.grad.add_(sh.grads[i])
                step_loss = 0.0
                for sh in shares:
                    step_loss += sh.loss
                    result.real_tokens += sh.real
                    result.target_tokens += sh.target
                    result.padded_tokens += sh.padded
                torch.nn.utils.clip_grad_norm_(params, tc.max_grad_norm)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                result.losses.append(step_loss)
                result.train_time_s = time.perf_counter() - t0
                bar.update(1)
                bar.set_postfix(
                    loss=f"{step_loss:.3f}", tok_s=f"{result.real_tokens / max(result.train_time_s, 1e-9):.0f}"
                )
                if (
                    ckpt
                    and tc.checkpoint_every
                    and (step + 1) % tc.checkpoint_every == 0
                    and step + 1 < total_steps
                ):
                    state = {
                        k: getattr(result, k)
                        for k in ("losses", "train_time_s", "real_tokens", "target_tokens", "padded_tokens")
                    }
                    _save_checkpoint(ckpt, model, opt, sched, step + 1, state)
                faults.checkpoint("train_step")
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
        torch.set_num_threads(threads)
    bar.close()
    result.train_time_s = time.perf_counter() - t0
    result.tokens_per_s = result.real_tokens / max(result.train_time_s, 1e-9)
    model.eval()
    return result


def save_adapter(model: Any, out_dir: Path, result: TrainResult) -> None:
    """Write the adapter in PEFT format, atomically, with the training record beside it."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    (tmp / "train_result.json").write_text(json.dumps(result.to_dict(), indent=1))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.replace(out_dir)
