"""CPU fast paths for LoRA training, each behind a `train.*` switch (defaults picked with benchmarks/perf.py;
its figures are in benchmarks/RESULTS.md).

* LoRA dropout: torch's CPU dropout draws one Mersenne-Twister float per element. `make_bits_dropout`
  draws one 64-bit word per four elements and keeps 15 bits of each quarter: several times faster, the
  same Bernoulli mask up to p rounded to a multiple of 1/32768.
* Attention: under bf16 autocast q, k, v reach SDPA as bf16, and the CPU flash kernel is slower in bf16
  than in fp32 for training-length sequences (a few hundred tokens, fwd+bwd). `fp32_attention` runs SDPA
  in fp32.
* The LM head and loss on target tokens, a chunk at a time (`head_cross_entropy`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_BITS = 15  # random bits used per element (one int16 lane of an int64 word, sign bit dropped)
_LEVELS = 1 << _BITS


def dropout_threshold(p: float) -> int:
    """Elements whose 15-bit draw is below this are dropped; the drop rate is threshold / 32768."""
    return round(p * _LEVELS)


def effective_p(p: float) -> float:
    """The drop probability the bits dropout really uses for nominal `p` (|difference| <= 1.6e-5)."""
    return dropout_threshold(p) / _LEVELS


def bits_mask(shape: Any, p: float, device: Any = None) -> Any:
    """Bool keep-mask of `shape`: each element kept with probability 1 - effective_p(p), independently.

    Uses the default torch generator, so `torch.manual_seed` and saved RNG states make it reproducible.
    """
    import torch

    n = 1
    for s in shape:
        n *= s
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_()  # [0, 2**63)
    lanes = words.view(torch.int16)[:n].view(shape)  # 4 lanes per word; & drops each lane's sign bit
    return (lanes & (_LEVELS - 1)) >= dropout_threshold(p)


def make_bits_dropout(p: float) -> Any:
    """An nn.Module like nn.Dropout(p) whose mask comes from `bits_mask` (inverted scaling, identity in eval)."""
    import torch

    class _BitsDropout(torch.nn.Module):
        bits_dropout = True  # marks it for use_torch_dropout

        def __init__(self, p: float) -> None:
            super().__init__()
            self.p = p
            self.scale = 1.0 / (1.0 - effective_p(p))

        def forward(self, x: Any) -> Any:
            if not self.training or self.p == 0:
                return x
            # autograd saves only the bool mask for this product's backward (x is not needed).
            return x.mul(bits_mask(x.shape, self.p, x.device)).mul_(self.scale)

        def extra_repr(self) -> str:
            return f"p={self.p}, effective_p={effective_p(self.p):.6f}"

    return _BitsDropout(p)


def _swap_lora_dropouts(model: Any, replace: Any) -> int:
    """Put replace(drop) in place of each PEFT LoRA dropout module where it returns one; return how many."""
    import torch

    swapped = 0
    for module in model.modules():
        drops = getattr(module, "lora_dropout", None)
        if isinstance(drops, torch.nn.ModuleDict):
            for name, drop in list(drops.items()):
                new = replace(drop)
                if new is not None:
                    drops[name] = new
                    swapped += 1
    return swapped


def use_bits_dropout(model: Any) -> int:
    """Swap every PEFT LoRA dropout (nn.Dropout with p > 0) in `model` for the bits dropout; return how many."""
    import torch

    return _swap_lora_dropouts(
        model, lambda d: make_bits_dropout(d.p) if isinstance(d, torch.nn.Dropout) and d.p > 0 else None
    )


def use_torch_dropout(model: Any) -> int:
    """Undo `use_bits_dropout`: put nn.Dropout(p) back; return how many."""
    import torch

    return _swap_lora_dropouts(
        model, lambda d: torch.nn.Dropout(d.p) if getattr(d, "bits_dropout", False) else None
    )


_FP32_ATTENTION = "codetune_fp32_sdpa"


def _register_fp32_attention() -> None:
    import torch
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    def fp32_sdpa(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any):
        # (batch, heads, seq, head_dim) each; output dtype follows the inputs' (fp32 here).
        with torch.autocast(query.device.type, enabled=False):
            return sdpa_attention_forward(
                module, query.float(), key.float(), value.float(), attention_mask, **kwargs
            )

    AttentionInterface.register(_FP32_ATTENTION, fp32_sdpa)


@contextmanager
def fp32_attention(model: Any, enabled: bool = True) -> Iterator[bool]:
    """While inside, a model using SDPA attention runs it in fp32; yields whether it switched.

    Only models whose attention implementation is 'sdpa' are switched (others keep theirs); the old
    implementation is restored on exit, so generation and later runs see the model as it was.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    current = getattr(base.config, "_attn_implementation", None)
    if not enabled or current != "sdpa":
        yield False
        return
    _register_fp32_attention()
    base.set_attn_implementation(_FP32_ATTENTION)
    try:
        yield True
    finally:
        base.set_attn_implementation(current)


_SOFTMAX_ROWS = 16  # rows of fp32 softmax work at a time: 16 x 49152 x 4 B = 3 MiB stays in a core's L2


def head_cross_entropy(hidden: Any, weight: Any, labels: Any, chunk: int, rows: Any = None) -> Any:
    """Sum over rows of cross-entropy(hidden @ weight.T, labels), `chunk` rows at a time.

    rows: None, or (ids, values) for a head whose rows `ids` train (FIM's sentinel rows, peft
    `trainable_token_indices`): `weight` already holds `values` (k, d) at those rows, and the gradient with
    respect to `values`, (softmax - onehot)[:, ids].T @ hidden, is gathered from the same softmax.

    hidden (n, d) fp32, weight (vocab, d) frozen, in the matmul dtype (bf16 under bf16). The gradient
    with respect to hidden, (softmax - onehot) @ weight, is computed chunk by chunk during the forward
    and kept (n x d), so only one chunk's logits (chunk x vocab) is ever alive and backward recomputes
    nothing. Logits and softmax are fp32, as the model's own loss under autocast.

    The matmuls run on whole chunks (256 rows is where oneDNN is fastest for this shape), the softmax
    on `_SOFTMAX_ROWS` rows at a time so its fp32 temporaries stay in cache, writing softmax - onehot
    back over the chunk's logits in the matmul dtype: faster than the softmax over whole chunks, whose
    temporaries leave the cache (measured on SmolLM2's head when written; see benchmarks/RESULTS.md).
    """
    import torch

    class _HeadCE(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, h: Any, w: Any, y: Any, values: Any, ids: Any) -> Any:
            total = torch.zeros((), dtype=torch.float32, device=h.device)
            grad = torch.empty_like(h) if ctx.needs_input_grad[0] else None
            # (k, d): the trained rows' gradient, summed over the rows of every block
            grad_v = h.new_zeros(values.shape, dtype=torch.float32) if ctx.needs_input_grad[3] else None
            block_rows = torch.arange(_SOFTMAX_ROWS, device=h.device)
            for i in range(0, h.shape[0], chunk):
                logits = h[i : i + chunk].to(w.dtype) @ w.t()  # (chunk, vocab)
                for j in range(0, logits.shape[0], _SOFTMAX_ROWS):
                    part = logits[j : j + _SOFTMAX_ROWS]
                    f = part.float()
                    rows = block_rows[: f.shape[0]]
                    y_part = y[i + j : i + j + f.shape[0]]
                    picked = f[rows, y_part]
                    # log-sum-exp by hand, so the exponentials are computed once and become the softmax
                    top = f.amax(-1, keepdim=True)
                    e = f.sub_(top).exp_()
                    z = e.sum(-1, keepdim=True)
                    total += (z.log().add_(top).squeeze(1) - picked).sum()
                    if grad is not None or grad_v is not None:
                        e.div_(z)[rows, y_part] -= 1
                        part.copy_(e)  # softmax - onehot, over the logits
                    if grad_v is not None:
                        at = i + j
                        grad_v += e[:, ids].t() @ h[at : at + f.shape[0]].float()
                if grad is not None:
                    grad[i : i + chunk] = (logits @ w).to(grad.dtype)
            ctx.save_for_backward(grad, grad_v)
            ctx.values_dtype = values.dtype
            return total

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            grad, grad_v = ctx.saved_tensors
            gv = None if grad_v is None else (grad_v * g).to(ctx.values_dtype)
            return None if grad is None else grad * g, None, None, gv, None

    if rows is None:
        values, ids = hidden.new_zeros((0, hidden.shape[-1])), torch.zeros(0, dtype=torch.long)
    else:
        ids, values = rows
    return _HeadCE.apply(hidden, weight, labels, values, ids.to(hidden.device))
