"""A fused training forward for Llama-family models with LoRA on the attention projections (train.fused).

The transformers + PEFT forward runs ~60 small eager ops per layer: the same normed input is cast to
bf16 once per projection, q, k and v each run their own matmul, LoRA A/B product and dropout, the
rotary embedding runs on q and k apart, and every op is a separate pass over memory. On a 2-core CPU
those passes, not the matmuls, took most of a step. This module computes the same function with fewer,
larger ops and, with `compile=True`, lets torch.compile fuse the elementwise work between the matmuls:

* one matmul for q|k|v and one for gate|up (the frozen weights are concatenated once; the model's own
  modules are pointed at views of the concatenation, so no memory is duplicated);
* the three LoRA A products in one batched matmul, the three B products in one block-diagonal matmul;
* each LoRA dropout mask comes from the same 64-bit random words, in the same order, as
  `kernels.bits_mask` under PEFT (q, k, v, then o in each layer), so with the same seed the masks, and
  the loss, equal the PEFT path's with `train.lora_dropout_rng=bits`; the 1/(1-p) scale is folded into B,
  and the masks are applied as int16 bit masks (`_keep_bits`, `_lora_a`);
* RMSNorm, the q/k/v split with rotary, and SwiGLU as autograd Functions with hand-written backwards
  (fewer passes over memory than autograd's backward of the composites); attention through SDPA
  (causal, grouped-query);
* on CPU with several intra-op threads, frozen products with a narrow output in row blocks below a
  size where oneDNN slows down (`_mm_rows`).

Batches must be right-padded with no attention mask (train.padding_mask=omit): positions are 0..S-1.
`unsupported(model)` says why a model cannot use it; the trainer then keeps the PEFT forward.
"""

from __future__ import annotations

import math
from typing import Any

import torch  # this module is imported only where a model is trained
import torch.nn.functional as F

from codetune.training.kernels import _LEVELS, dropout_threshold, effective_p

_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")


def _lora_parts(module: Any) -> tuple[Any, Any, float, float] | None:
    """(A weight (r, in), B weight (out, r), scaling, dropout p) of a PEFT LoRA Linear with one plain adapter."""
    names = list(getattr(module, "lora_A", {}) or {})
    if len(names) != 1 or getattr(module, "merged", False):
        return None
    name = names[0]
    if getattr(module, "use_dora", {}).get(name) or getattr(module, "lora_bias", {}).get(name):
        return None
    if getattr(module, "fan_in_fan_out", False) or not isinstance(module.base_layer, torch.nn.Linear):
        return None
    if module.base_layer.bias is not None:
        return None
    drop = module.lora_dropout[name]
    p = float(getattr(drop, "p", 0.0)) if not isinstance(drop, torch.nn.Identity) else 0.0
    return module.lora_A[name].weight, module.lora_B[name].weight, float(module.scaling[name]), p


def unsupported(model: Any) -> str | None:
    """Why `model` (a PeftModel) cannot run the fused forward, or None when it can."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = base.config
    if cfg.model_type != "llama":
        return f"model_type '{cfg.model_type}' (the fused forward covers 'llama')"
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        return "biases in attention or MLP"
    if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "pretraining_tp", 1) != 1:
        return "activation other than silu, or pretraining_tp > 1"
    ps = set()
    for layer in base.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        for name in _ATTN:
            parts = _lora_parts(getattr(attn, name))
            if parts is None:
                return f"LoRA must adapt exactly q_proj, k_proj, v_proj and o_proj with one adapter ({name})"
            ps.add(parts[3])
        for name in ("gate_proj", "up_proj", "down_proj"):
            lin = getattr(mlp, name)
            if type(lin) is not torch.nn.Linear:
                return f"LoRA on MLP module {name} (the fused forward adapts attention only)"
    if len(ps) > 1:
        return "LoRA dropout differs between modules"
    return None


def _words(k: int, n: int, device: Any, generator: Any = None) -> Any:
    """Random 64-bit words for k masks of n elements, flat (k * ceil(n/4),): the i-th ceil(n/4) words are
    what the i-th of k consecutive `kernels.bits_mask` calls of n elements would draw (from `generator`,
    None = torch's default one)."""
    return torch.empty(k * ((n + 3) // 4), dtype=torch.int64, device=device).random_(generator=generator)


def _lanes(words: Any, shape: Any) -> Any:
    """The int16 lanes of flat words as shape = (k, ...), a view: four 16-bit lanes per word, in order,
    the last ceil(n/4) * 4 - n lanes of each of the k masks left out."""
    n = math.prod(shape[1:])
    return words.view(torch.int16).view(shape[0], -1)[:, :n].view(shape)


def _keep(words: Any, shape: Any, threshold: int) -> Any:
    """Bool keep-mask of `shape` = (k, ...) from flat words: lane for lane the k masks `bits_mask` makes."""
    return (_lanes(words, shape) & (_LEVELS - 1)) >= threshold


class _RMSNorm(torch.autograd.Function):
    """RMSNorm with a hand-written backward; see `_rms_norm`."""

    @staticmethod
    def forward(ctx: Any, x: Any, w: Any, eps: float, out_dtype: Any) -> Any:
        ss = torch.linalg.vector_norm(x, dim=-1, keepdim=True)  # one reading pass, no x**2 tensor
        rstd = torch.rsqrt(ss.square_().div_(x.shape[-1]).add_(eps))  # (..., 1)
        ctx.save_for_backward(x, rstd, w)
        return torch.mul(x * rstd, w, out=torch.empty(x.shape, dtype=out_dtype, device=x.device))

    @staticmethod
    def backward(ctx: Any, dy: Any) -> Any:
        x, rstd, w = ctx.saved_tensors
        dw = (dy.float() * x * rstd).reshape(-1, x.shape[-1]).sum(0) if ctx.needs_input_grad[1] else None
        # y = w * x * rstd: dx = rstd * (g - x * rstd^2 * mean(g * x)), with g = dy * w (fp32 by promotion)
        g = dy * w
        c = (g * x).sum(-1, keepdim=True).mul_(rstd.pow(3)).div_(x.shape[-1])
        return g.mul_(rstd).addcmul_(x, c, value=-1), dw, None, None


def _rms_norm(h: Any, weight: Any, eps: float, out_dtype: Any) -> Any:
    """RMSNorm of the fp32 residual h (..., hidden) times weight, returned in out_dtype.

    The same values as transformers' LlamaRMSNorm (up to float rounding), in fewer passes over memory:
    the sum of squares is one reduction, the cast is folded into the last product, and the backward
    runs 5 passes where autograd's backward of the composite ran ~10. Faster forward+backward than
    F.rms_norm + cast on CPU, measured when written (benchmarks/perf.py's train part measures the whole
    step; see benchmarks/RESULTS.md).
    """
    if (
        torch.compiler.is_compiling()
    ):  # inductor fuses the composite itself (and cannot trace eps into the Function)
        return F.rms_norm(h, (h.shape[-1],), weight, eps).to(out_dtype)
    return _RMSNorm.apply(h, weight, eps, out_dtype)


def _rope(x: Any, cos: Any, sin: Any) -> Any:
    """Rotary embedding, half-split layout: x (batch, seq, heads, head_dim), cos/sin (batch, seq, 1, head_dim/2)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class _SplitRope(torch.autograd.Function):
    """q, k, v out of the projections' output, rotary on q and k, cast to the attention dtype; see `_split_rope`."""

    @staticmethod
    def forward(ctx: Any, qkv: Any, cos: Any, sin: Any, n_heads: int, n_kv: int, out_dtype: Any) -> Any:
        bsz, seq, _, head_dim = qkv.shape
        half = head_dim // 2
        outs = []
        for lo, hi in ((0, n_heads), (n_heads, n_heads + n_kv)):
            x1, x2 = qkv[:, :, lo:hi, :half], qkv[:, :, lo:hi, half:]
            out = torch.empty((bsz, seq, hi - lo, head_dim), dtype=out_dtype, device=qkv.device)
            o1, o2 = out[..., :half], out[..., half:]
            torch.mul(x1, cos, out=o1).addcmul_(x2, sin, value=-1)  # x1 cos - x2 sin
            torch.mul(x2, cos, out=o2).addcmul_(x1, sin)  # x2 cos + x1 sin
            outs.append(out)
        v = torch.empty((bsz, seq, n_kv, head_dim), dtype=out_dtype, device=qkv.device)
        outs.append(v.copy_(qkv[:, :, n_heads + n_kv :]))
        ctx.save_for_backward(cos, sin)
        ctx.dims = (n_heads, n_kv, qkv.shape, qkv.dtype)
        return tuple(outs)

    @staticmethod
    def backward(ctx: Any, gq: Any, gk: Any, gv: Any) -> Any:
        cos, sin = ctx.saved_tensors
        n_heads, n_kv, shape, dtype = ctx.dims
        half = shape[-1] // 2
        d = torch.empty(shape, dtype=dtype, device=cos.device)
        for g, lo, hi in ((gq, 0, n_heads), (gk, n_heads, n_heads + n_kv), (gv, n_heads + n_kv, shape[2])):
            if g is None:
                d[:, :, lo:hi].zero_()
            elif hi == shape[2]:  # v: only the cast
                d[:, :, lo:hi].copy_(g)
            else:  # the inverse rotation: dx1 = g1 cos + g2 sin, dx2 = g2 cos - g1 sin
                g1, g2 = g[..., :half], g[..., half:]
                d[:, :, lo:hi, :half].copy_(torch.mul(g1, cos).addcmul_(g2, sin))
                d[:, :, lo:hi, half:].copy_(torch.mul(g2, cos).addcmul_(g1, sin, value=-1))
        return d, None, None, None, None, None


def _split_rope(qkv: Any, cos: Any, sin: Any, n_heads: int, n_kv: int, out_dtype: Any) -> tuple[Any, Any, Any]:
    """(q, k, v), each (batch, seq, heads, head_dim) in out_dtype, with rotary on q and k, from qkv
    (batch, seq, n_heads + 2 n_kv, head_dim); cos/sin (1, seq, 1, head_dim/2) fp32.

    The same values as casting qkv, slicing it and applying `_rope`, in fewer passes: the products read
    the bf16 projections and write fp32 directly (no cast pass), and the backward writes the three
    gradients into one buffer. Autograd's backward of the composite ran ~10 passes over qkv (the
    products, the cat's and slices' zero-filled buffers and their sums, the cast); this one runs ~4.
    """
    if torch.compiler.is_compiling():  # inductor fuses the composite itself
        qkv = qkv.to(out_dtype)
        qk = _rope(qkv[:, :, : n_heads + n_kv], cos.to(out_dtype), sin.to(out_dtype))
        return qk[:, :, :n_heads], qk[:, :, n_heads:], qkv[:, :, n_heads + n_kv :]
    return _SplitRope.apply(qkv, cos.to(out_dtype), sin.to(out_dtype), n_heads, n_kv, out_dtype)


# oneDNN's multi-threaded bf16 matmul on the 2-core AMX development CPU (torch 2.13) slows down sharply
# once a product with a narrow output (<= 640 columns, e.g. hidden = 576) has more than 512 rows, or more
# than 320 when the inner dimension is >= 2048; products with a wide output (gate|up forward) have no such
# cliff. So narrow products run in equal row blocks below the cliff (`_mm_rows`), on CPU only. The limits
# come from a GFLOP/s sweep over M when this was written; the step speed they give is in
# benchmarks/RESULTS.md (benchmarks/perf.py).
_NARROW_OUT = 640
_MAX_ROWS, _MAX_ROWS_DEEP, _DEEP = 512, 320, 2048


def _block_rows(n_in: int, n_out: int, device: Any) -> int:
    """The largest row block for an (M x n_in) @ (n_in x n_out) product; 0 = no blocking.

    Only with more than one intra-op thread: on one thread (train.workers > 1) there is no cliff, and
    throughput keeps growing with M, so blocking would only slow it down.
    """
    if device.type != "cpu" or n_out > _NARROW_OUT or torch.get_num_threads() < 2:
        return 0
    return _MAX_ROWS_DEEP if n_in >= _DEEP else _MAX_ROWS


def _mm_rows(a: Any, b: Any, max_rows: int) -> Any:
    """a @ b for 2-D a, in ceil(M / max_rows) equal blocks of rows when max_rows > 0 and M is larger."""
    m = a.shape[0]
    if max_rows <= 0 or m <= max_rows:
        return a @ b
    blocks = -(-m // max_rows)
    rows = -(-m // blocks)
    a = a.contiguous()
    out = torch.empty((m, b.shape[1]), dtype=torch.result_type(a, b), device=a.device)
    for i in range(0, m, rows):
        torch.mm(a[i : i + rows], b, out=out[i : i + rows])
    return out


class _FrozenLinear(torch.autograd.Function):
    """x @ w.T for a frozen weight w (out, in), both directions through `_mm_rows`; see `_frozen`."""

    @staticmethod
    def forward(ctx: Any, x: Any, w: Any) -> Any:
        n_out, n_in = w.shape
        ctx.save_for_backward(w)
        y = _mm_rows(x.reshape(-1, n_in), w.t(), _block_rows(n_in, n_out, x.device))
        return y.view(*x.shape[:-1], n_out)

    @staticmethod
    def backward(ctx: Any, dy: Any) -> Any:
        (w,) = ctx.saved_tensors
        n_out, n_in = w.shape
        dx = _mm_rows(dy.reshape(-1, n_out), w, _block_rows(n_out, n_in, dy.device))
        return dx.view(*dy.shape[:-1], n_in), None


def _frozen(x: Any, w: Any) -> Any:
    """x @ w.T, w frozen (no gradient), with the row blocking of `_mm_rows` where it is faster."""
    if torch.compiler.is_compiling() or w.requires_grad:
        return x @ w.t()
    return _FrozenLinear.apply(x, w)


class _SwiGLU(torch.autograd.Function):
    """silu(gate) * up from the gate|up projection's output; see `_swiglu`."""

    @staticmethod
    def forward(ctx: Any, gu: Any) -> Any:
        gate, up = gu.chunk(2, dim=-1)
        ctx.save_for_backward(gu)
        return F.silu(gate).mul_(up)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (gu,) = ctx.saved_tensors
        gate, up = gu.chunk(2, dim=-1)
        d = torch.empty_like(gu)
        d_gate, d_up = d.chunk(2, dim=-1)
        torch.ops.aten.silu_backward.grad_input(g * up, gate, grad_input=d_gate)
        torch.mul(g, F.silu(gate), out=d_up)
        return d


def _swiglu(gu: Any) -> Any:
    """silu(gate) * up, gu = gate|up (..., 2 * intermediate).

    The same values and gradients as the composite, but the backward writes both halves of the gradient
    into one buffer (autograd's chunk backward concatenated them in an extra pass) and silu(gate) is
    recomputed rather than kept (one (tokens x intermediate) tensor less per layer).
    """
    if torch.compiler.is_compiling():
        gate, up = gu.chunk(2, dim=-1)
        return F.silu(gate) * up
    return _SwiGLU.apply(gu)


def _keep_bits(words: Any, shape: Any, threshold: int) -> Any:
    """`_keep` as int16 bit masks, -1 (all bits set) where kept and 0 where dropped, made in place in
    `words` (which it consumes) by three int16 passes: with u the 15-bit lane, (threshold - 1 - u) >> 15
    is -1 exactly when u >= threshold.

    Why: on CPU each int16 pass is cheaper than the `>=` that makes a bool mask, and `x & mask` on x's
    bits is several times cheaper than `x * bool_mask` (the bool factor is first copied to x's dtype) or
    `torch.where` (measured when written; the step speed is in benchmarks/RESULTS.md).
    """
    lanes = words.view(torch.int16)  # all of them: the passes run on one contiguous buffer
    lanes.bitwise_and_(_LEVELS - 1)
    torch.sub(torch.tensor(threshold - 1, dtype=torch.int16, device=lanes.device), lanes, out=lanes)
    lanes.bitwise_right_shift_(15)
    return _lanes(words, shape)


class _DroppedLoraA(torch.autograd.Function):
    """The LoRA A products of k projections sharing one input, each on its own dropout mask; see `_lora_a`."""

    @staticmethod
    def forward(ctx: Any, x: Any, a: Any, words: Any, threshold: int) -> Any:
        k = a.shape[0]
        bits = _bits_dtype(x.dtype)
        m = _keep_bits(words, (k, *x.shape), threshold).to(bits)  # (k, tokens, in): -1 kept, 0 dropped
        xm = (x.view(bits) & m).view(x.dtype)  # x where kept, +0.0 where dropped
        # Kept: x (not xm, k times x's size and remade by one cheap pass) and the masks as int8, -1 or 0,
        # half the bytes of int16 for one narrowing pass here and one widening pass in backward.
        ctx.save_for_backward(x, m.to(torch.int8), a)
        return torch.bmm(xm, a.transpose(1, 2))  # (k, tokens, r)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        x, m8, a = ctx.saved_tensors
        m = m8.to(_bits_dtype(x.dtype))  # sign-extended: -1 stays all bits set
        xm = (x.view(m.dtype) & m).view(x.dtype)
        da = torch.bmm(g.transpose(1, 2), xm)  # (k, r, in)
        if not ctx.needs_input_grad[0]:  # the first layer: its input comes from the frozen embedding
            return None, da, None, None
        gx = torch.bmm(g, a)  # (k, tokens, in)
        gx.view(m.dtype).bitwise_and_(m)
        dx = gx[0]
        if gx.shape[0] > 1:  # the k input gradients added in turn, as autograd adds the projections' gradients
            dx = dx + gx[1]
            for i in range(2, gx.shape[0]):
                dx.add_(gx[i])
        return dx, da, None, None


def _bits_dtype(dtype: Any) -> Any:
    """The integer dtype with dtype's width, to mask its values bit for bit."""
    return {2: torch.int16, 4: torch.int32, 8: torch.int64}[dtype.itemsize]


def _lora_a(x: Any, a: Any, words: Any, threshold: int) -> Any:
    """(k, tokens, r): x (tokens, in) times each of the k LoRA A weights a (k, r, in), the i-th on x under
    the i-th dropout mask drawn from `words` (none when words is None).

    The same values as `(x * keep) @ a.transpose(1, 2)` and the same gradients up to rounding (autograd
    sums the k input gradients in one reduction, this adds them in turn), in fewer and cheaper passes:
    the masks are int16 bit masks applied with `&` (`_keep_bits`), in the forward to x and in the
    backward in place to the input gradients.
    """
    if words is None or torch.compiler.is_compiling():
        if words is not None:
            x = x * _keep(words, (a.shape[0], *x.shape), threshold)
        return torch.matmul(x, a.transpose(1, 2))
    return _DroppedLoraA.apply(x, a, words, threshold)


def _layer(
    h: Any,
    w: dict[str, Any],
    cos: Any,
    sin: Any,
    words_qkv: Any,
    words_o: Any,
    dims: tuple[int, int, int, float, int, Any, Any, bool],
    scales: tuple[float, float, float, float],
) -> Any:
    """One decoder layer on the fp32 residual stream h (batch, seq, hidden); returns the new residual.

    scales: LoRA scaling of q, k, v, o, times 1/(1-p) when masks are given (words_* not None).
    """
    n_heads, n_kv, head_dim, eps, threshold, cdt, adt, gqa = dims
    bsz, seq, hidden = h.shape
    # --- attention block
    x = _rms_norm(h, w["norm1"], eps, cdt)  # (b, s, hidden)
    qkv = _frozen(x, w["wqkv"])  # (b, s, (n_heads + 2 n_kv) * head_dim)
    a_qkv = torch.stack([w["a_q"], w["a_k"], w["a_v"]]).to(cdt)  # (3, r, hidden)
    # one dropout mask per projection, as PEFT's three dropouts draw them
    low = _lora_a(x.view(bsz * seq, hidden), a_qkv, words_qkv, threshold)  # (3, b*s, r)
    low = low.permute(1, 0, 2).reshape(bsz, seq, -1)  # (b, s, 3r)
    b_qkv = torch.block_diag(w["b_q"] * scales[0], w["b_k"] * scales[1], w["b_v"] * scales[2])  # (out, 3r)
    qkv = qkv + low @ b_qkv.to(cdt).t()
    q, k, v = _split_rope(qkv.view(bsz, seq, n_heads + 2 * n_kv, head_dim), cos, sin, n_heads, n_kv, adt)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (b, heads, s, head_dim)
    att = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)  # (b, n_heads, s, head_dim)
    # back to (b, s, n_heads * head_dim): the transpose and the cast in one copy
    att = att.transpose(1, 2).to(cdt, memory_format=torch.contiguous_format).view(bsz, seq, n_heads * head_dim)
    low = _lora_a(att.view(bsz * seq, -1), w["a_o"].to(cdt).unsqueeze(0), words_o, threshold)[0]  # (b*s, r)
    o = _frozen(att, w["wo"]) + (low @ (w["b_o"] * scales[3]).to(cdt).t()).view(bsz, seq, hidden)
    h = h + o
    # --- MLP block (SwiGLU)
    x = _rms_norm(h, w["norm2"], eps, cdt)
    return h + _frozen(_swiglu(_frozen(x, w["wgu"])), w["wdown"])  # gate|up: (b, s, 2 * intermediate)


def _concat_frozen(modules: list[Any]) -> Any:
    """Concatenate the frozen Linear weights of `modules` along the output dim; point each module at its rows."""
    with torch.no_grad():
        cat = torch.cat([m.weight.detach() for m in modules]).contiguous()  # (sum of outs, in)
        row = 0
        for m in modules:
            rows = m.weight.shape[0]
            m.weight.data = cat[row : row + rows]  # same values, now a view: no second copy is kept
            row += rows
    return cat


class FusedLlama:
    """The fused forward of one PeftModel; `hidden(input_ids)` returns the final normed hidden states."""

    def __init__(self, model: Any, *, precision: str, attention_fp32: bool, compile: bool = False) -> None:
        why = unsupported(model)
        if why:
            raise ValueError(f"the fused forward does not support this model: {why}")
        self.model = model
        self.base = model.get_base_model()
        cfg = self.base.config
        cdt = torch.bfloat16 if precision == "bf16" else torch.float32
        adt = torch.float32 if attention_fp32 else cdt
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.layers: list[dict[str, Any]] = []
        self.scales: list[tuple[float, float, float, float]] = []
        self.p = _lora_parts(self.base.model.layers[0].self_attn.q_proj)[3]  # one p for all: see unsupported()
        for layer in self.base.model.layers:
            attn, mlp = layer.self_attn, layer.mlp
            parts = {name[0]: _lora_parts(getattr(attn, name)) for name in _ATTN}
            self.scales.append(tuple(parts[n][2] for n in "qkvo"))
            self.layers.append(
                {
                    "norm1": layer.input_layernorm.weight,
                    "norm2": layer.post_attention_layernorm.weight,
                    "wqkv": _concat_frozen([getattr(attn, n).base_layer for n in _ATTN[:3]]).to(cdt),
                    "wo": attn.o_proj.base_layer.weight.detach().to(cdt),
                    "wgu": _concat_frozen([mlp.gate_proj, mlp.up_proj]).to(cdt),
                    "wdown": mlp.down_proj.weight.detach().to(cdt),
                    **{f"a_{n}": parts[n][0] for n in "qkvo"},  # (r, in), trainable
                    **{f"b_{n}": parts[n][1] for n in "qkvo"},  # (out, r), trainable
                }
            )
        self.dims = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            head_dim,
            float(cfg.rms_norm_eps),
            dropout_threshold(self.p),
            cdt,
            adt,
            cfg.num_key_value_heads != cfg.num_attention_heads,  # a bool here: traced, n_kv != n_heads is not
        )
        self.compiled = compile
        self.layer_fn = torch.compile(_layer, dynamic=True) if compile else _layer

    def hidden(self, input_ids: Any, generator: Any = None) -> Any:
        """Final-norm hidden states (batch, seq, hidden) in fp32, as the model's last hidden_states.

        Runs with autocast off whatever the caller's context: the dtypes are chosen here (autocast would
        cast SDPA's fp32 inputs to bf16). The dropout masks come from `generator` (None = torch's default
        generator, in PEFT's order); threads running this at once each pass their own.
        """
        with torch.autocast(input_ids.device.type, enabled=False):
            return self._hidden(input_ids, generator)

    def _hidden(self, input_ids: Any, generator: Any) -> Any:
        inner = self.base.model
        drop = self.model.training and self.p > 0
        keep_scale = 1.0 / (1.0 - effective_p(self.p)) if drop else 1.0
        h = inner.embed_tokens(input_ids).float()  # (b, s, hidden)
        if self.compiled and torch.is_grad_enabled():
            h.requires_grad_()  # every layer then sees the same requires_grad: one compiled graph, not two
        bsz, seq = input_ids.shape
        positions = torch.arange(seq, device=input_ids.device).unsqueeze(0)
        cos, sin = inner.rotary_emb(h, positions)  # (1, s, head_dim), halves repeated
        half = cos.shape[-1] // 2
        cos, sin = cos[..., :half].unsqueeze(2), sin[..., :half].unsqueeze(2)  # (1, s, 1, head_dim/2)
        n_heads, _, head_dim = self.dims[:3]
        for w, scales in zip(self.layers, self.scales):
            # drawn in PEFT's order: q, k, v masks, then o's
            wq = _words(3, bsz * seq * h.shape[-1], h.device, generator) if drop else None
            wo = _words(1, bsz * seq * n_heads * head_dim, h.device, generator) if drop else None
            scaled = tuple(s * keep_scale for s in scales)
            h = self.layer_fn(h, w, cos, sin, wq, wo, self.dims, scaled)
        return _rms_norm(h, inner.norm.weight, self.dims[3], torch.float32)
