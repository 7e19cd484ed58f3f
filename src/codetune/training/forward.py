"""The training forward, chosen once per run: transformers + PEFT, or the fused forward (`fused.py`).

Either way a step runner asks one thing of it, `Forward.loss(batch, weight, generator)`: the loss of one
piece, scaled by its share of the step's target tokens. The choice of LM head (target tokens only, or the
model's own loss over all logits), the dropout implementation, attention precision and autocast are all
settled here, so the runners never look at `train.*` switches.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch  # this module is imported only where a model is trained

from codetune.config import RunConfig
from codetune.training.kernels import fp32_attention, head_cross_entropy, use_bits_dropout, use_torch_dropout


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


def _head_layer(head: Any) -> Any:
    """The LM head's own Linear, under peft's TrainableTokensWrapper when its rows train (FIM)."""
    adapter = getattr(head, "token_adapter", None)
    return head if adapter is None else adapter.get_base_layer()


def trainable_head_rows(model: Any) -> tuple[Any, Any] | None:
    """(ids, values) of the LM head's rows that train, or None: the FIM sentinels' rows under peft's
    `trainable_token_indices` (with tied embeddings, the input embedding's trained rows, which the head
    shares). values (k, hidden) is the trainable parameter peft writes over those rows."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    adapter = getattr(head, "token_adapter", None)
    if adapter is None or head.disable_adapters or not head.active_adapters:
        return None
    name = head.active_adapters[0]
    if name not in adapter.trainable_tokens_delta:
        return None
    values = adapter.trainable_tokens_delta[name]
    return torch.tensor(adapter.token_indices[name], dtype=torch.long, device=values.device), values


def lm_head_weight(model: Any, dtype: Any = None) -> Any:
    """The LM head's weight (vocab, hidden), detached, in `dtype` (None = as stored), the trained rows'
    current values in place (`trainable_head_rows`: then always a copy, never the model's own tensor)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    weight = _head_layer(base.get_output_embeddings()).weight.detach()
    rows = trainable_head_rows(model)
    if rows is None:
        return weight if dtype is None else weight.to(dtype)
    weight = weight.to(dtype or weight.dtype, copy=True)
    _write_rows(weight, rows)
    return weight


def _write_rows(weight: Any, rows: tuple[Any, Any]) -> None:
    ids, values = rows
    with torch.no_grad():
        weight[ids] = values.detach().to(weight.dtype)


def target_loss(
    model: Any,
    batch: dict[str, Any],
    chunk: int = 0,
    hidden_fn: Any = None,
    head_weight: Any = None,
    head_rows: Any = None,
) -> Any:
    """Mean next-token cross-entropy over labelled tokens, running the LM head on those tokens only.

    Same value as the model's own loss (which averages over labels != -100), but the (tokens x vocab)
    logits of prompt and padding positions are never computed: less time and far less memory.
    chunk > 0: the head and loss run over at most `chunk` target tokens at a time
    (`kernels.head_cross_entropy`), so only one chunk's logits is ever alive.
    hidden_fn: input_ids -> final hidden states (the fused forward); None = the model's own forward.
    head_weight: the LM head's weight already in the matmul dtype (saves a cast per call), holding the
    current values of the trained rows `head_rows` (`trainable_head_rows`) when there are any.
    """
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
    if chunk <= 0 or _head_layer(head).bias is not None:
        return F.cross_entropy(head(hidden).float(), labels)  # a wrapped head merges its trained rows itself
    if head_weight is None:
        device = hidden.device.type
        head_weight = lm_head_weight(
            model, torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        )
        head_rows = trainable_head_rows(model)
    return head_cross_entropy(hidden, head_weight, labels, chunk, head_rows) / len(labels)


@dataclass
class Forward:
    """How a run computes the loss of a piece; built by `choose_forward`."""

    model: Any
    device: str
    bf16: bool  # bf16 autocast around the forward
    own_head: bool  # the target-only LM head (`target_loss`), else the model's own loss
    logits_chunk: int
    omit_padding_mask: bool  # right-padded batches go without an attention mask (TrainConfig.padding_mask)
    attention_fp32: bool  # SDPA in fp32 under bf16 autocast
    fused: Any = None  # a FusedLlama, or None: the PEFT forward
    head_weight: Any = None  # (vocab, hidden) in the matmul dtype, for the target-only head
    note: str = ""  # why the fused forward was not used, when train.fused=auto fell back
    head_rows: Any = None  # (ids, values) of LM-head rows that train (FIM sentinels), copied into head_weight
    _rows_lock: Any = field(default_factory=threading.Lock)  # worker threads share head_weight

    @property
    def name(self) -> str:
        """The TrainResult.forward value: "fused", "fused+compile" (`fused.FusedLlama`) or "peft"."""
        if self.fused is None:
            return "peft"
        return "fused+compile" if self.fused.compiled else "fused"

    @contextmanager
    def active(self) -> Iterator[None]:
        """While training: the PEFT forward's attention in fp32 where chosen (the fused one picks its own)."""
        with fp32_attention(self.model, self.attention_fp32 and self.fused is None):
            yield

    def loss(self, batch: dict[str, Any], weight: float, generator: Any = None) -> Any:
        """The mean loss of one collated piece times `weight` (its share of the step's target tokens).

        generator: where the fused forward draws this piece's dropout masks (None = torch's default
        generator, as the PEFT forward always does).
        """
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if self.head_rows is not None and self.head_weight is not None:
            self._refresh_head_rows()
        if self.omit_padding_mask:
            batch["attention_mask"] = None  # right padding: see TrainConfig.padding_mask
        fused = self.fused
        hidden_fn = None if fused is None else (lambda ids: fused.hidden(ids, generator))
        with torch.autocast(device_type=self.device, dtype=torch.bfloat16, enabled=self.bf16):
            if self.own_head:
                mean = target_loss(
                    self.model, batch, self.logits_chunk, hidden_fn, self.head_weight, self.head_rows
                )
            else:
                mean = self.model(**batch).loss
            return mean * weight

    def _refresh_head_rows(self) -> None:
        """Copy the trained head rows' current values into `head_weight` (a few rows: cheap, so before every
        piece; the fused AdamW updates them in place without bumping their version counter, so a version check
        would miss the update). Within a step the values do not change: workers write the same bytes."""
        with self._rows_lock:
            _write_rows(self.head_weight, self.head_rows)


def choose_forward(model: Any, cfg: RunConfig, *, device: str, precision: str) -> Forward:
    """Settle the forward of this run per `train.*`: swaps the LoRA dropouts in `model` to the chosen
    kind, and builds the fused forward where `train.fused` asks for it and the model supports it."""
    tc = cfg.train
    own_head = tc.logits == "targets_only" and supports_target_logits(model)
    bf16 = precision == "bf16"
    if tc.lora_dropout_rng == "bits":
        use_bits_dropout(model)
    else:
        use_torch_dropout(model)
    attn32 = tc.attention == "fp32" or (tc.attention == "auto" and device == "cpu" and bf16)
    fused, note = _fused_forward(model, cfg, precision, attn32, own_head)
    return Forward(
        model=model,
        device=device,
        bf16=bf16,
        own_head=own_head,
        logits_chunk=tc.logits_chunk,
        omit_padding_mask=tc.padding_mask == "omit",
        attention_fp32=attn32,
        fused=fused,
        head_weight=lm_head_weight(model, torch.bfloat16 if bf16 else None) if own_head else None,
        note=note,
        head_rows=trainable_head_rows(model) if own_head else None,
    )


def _fused_forward(model: Any, cfg: RunConfig, precision: str, attn32: bool, own_head: bool) -> tuple[Any, str]:
    """(a FusedLlama per train.fused / train.compile or None, why not when train.fused=auto fell back)."""
    from codetune.errors import ConfigError
    from codetune.training.fused import FusedLlama, unsupported

    tc = cfg.train
    if tc.fused == "off":
        return None, ""
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
        return None, why
    if tc.compile:
        _inductor_cache()
    return FusedLlama(model, precision=precision, attention_fp32=attn32, compile=tc.compile), ""


def _inductor_cache() -> None:
    """Keep torch.compile's compiled kernels in codetune's cache (reused by later runs) unless set."""
    import os

    from codetune.paths import cache_dir

    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
