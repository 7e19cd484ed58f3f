"""The training forward, chosen once per run: transformers + PEFT, or the fused forward (`fused.py`).

Either way a step runner asks one thing of it, `Forward.loss(batch, weight, generator)`: the loss of one
piece, scaled by its share of the step's target tokens. The choice of LM head (target tokens only, or the
model's own loss over all logits), the dropout implementation, attention precision and autocast are all
settled here, so the runners never look at `train.*` switches.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
        if self.omit_padding_mask:
            batch["attention_mask"] = None  # right padding: see TrainConfig.padding_mask
        fused = self.fused
        hidden_fn = None if fused is None else (lambda ids: fused.hidden(ids, generator))
        with torch.autocast(device_type=self.device, dtype=torch.bfloat16, enabled=self.bf16):
            if self.own_head:
                mean = target_loss(self.model, batch, self.logits_chunk, hidden_fn, self.head_weight)
            else:
                mean = self.model(**batch).loss
            return mean * weight


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
