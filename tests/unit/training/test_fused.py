import pytest
import torch

from codetune.config import LoraConfig, ModelConfig
from codetune.training.fused import FusedLlama, unsupported
from codetune.training.kernels import fp32_attention, use_bits_dropout


@pytest.fixture()
def lora_model(tiny_model_dir):
    """The tiny Llama with LoRA r=4 on q/k/v/o and random (non-zero) B, so the LoRA path counts."""
    from codetune.models import apply_lora, load_base

    loaded = load_base(ModelConfig(name=str(tiny_model_dir)))
    torch.manual_seed(1)
    model = apply_lora(loaded.model, LoraConfig(r=4, alpha=8, dropout=0.1))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    use_bits_dropout(model)
    return model


def _ids(vocab, batch=3, seq=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, seq), generator=g)


def _reference(model, ids):
    out = model(input_ids=ids, attention_mask=None, output_hidden_states=True)
    return out.hidden_states[-1]


def _lora_grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("training", [False, True])
def test_fused_equals_peft_forward_and_gradients(lora_model, training):
    """Same seed: same dropout masks, same hidden states and LoRA gradients as transformers + PEFT (fp32)."""
    model = lora_model
    model.train(training)
    ids = _ids(model.config.vocab_size)
    torch.manual_seed(7)
    ref = _reference(model, ids)
    ref.pow(2).mean().backward()
    ref_grads = _lora_grads(model)
    model.zero_grad()

    fused = FusedLlama(model, precision="fp32", attention_fp32=True)
    torch.manual_seed(7)
    got = fused.hidden(ids)
    got.pow(2).mean().backward()
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5)
    for name, g in _lora_grads(model).items():
        assert torch.allclose(g, ref_grads[name], rtol=1e-4, atol=1e-6), name


def test_fused_dropout_really_drops(lora_model):
    """Train mode differs from eval mode (masks applied), and two seeds give different outputs."""
    model = lora_model
    fused = FusedLlama(model, precision="fp32", attention_fp32=True)
    ids = _ids(model.config.vocab_size)
    model.eval()
    with torch.no_grad():
        plain = fused.hidden(ids)
    model.train()
    with torch.no_grad():
        torch.manual_seed(1)
        a = fused.hidden(ids)
        torch.manual_seed(2)
        b = fused.hidden(ids)
        torch.manual_seed(1)
        a2 = fused.hidden(ids)
    assert not torch.allclose(a, plain) and not torch.allclose(a, b)
    assert torch.equal(a, a2)


def test_fused_bf16_close_to_autocast_peft(lora_model):
    """bf16 weights and matmuls, fp32 attention: close to the PEFT forward under autocast with fp32 SDPA."""
    from codetune.models import cast_frozen_linears

    model = lora_model
    model.eval()
    cast_frozen_linears(model, "bf16")
    ids = _ids(model.config.vocab_size)
    with torch.no_grad(), fp32_attention(model), torch.autocast("cpu", dtype=torch.bfloat16):
        ref = _reference(model, ids).float()
    with torch.no_grad():
        got = FusedLlama(model, precision="bf16", attention_fp32=True).hidden(ids)
    assert got.dtype == torch.float32
    assert (got - ref).abs().max() / ref.abs().max() < 0.02


def test_fused_keeps_one_copy_of_frozen_weights(lora_model):
    """q/k/v and gate/up weights become views of the concatenations; the HF forward still works on them."""
    model = lora_model
    model.eval()
    ids = _ids(model.config.vocab_size)
    with torch.no_grad():
        before = _reference(model, ids)
        fused = FusedLlama(model, precision="fp32", attention_fp32=True)
        after = _reference(model, ids)
    attn = model.get_base_model().model.layers[0].self_attn
    cat = fused.layers[0]["wqkv"]
    assert attn.q_proj.base_layer.weight.untyped_storage().data_ptr() == cat.untyped_storage().data_ptr()
    assert torch.equal(before, after)


def test_unsupported_says_why(tiny_model_dir):
    from codetune.models import apply_lora, load_base

    loaded = load_base(ModelConfig(name=str(tiny_model_dir)))
    mlp = apply_lora(
        loaded.model, LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"])
    )
    assert "up_proj" in unsupported(mlp)
    loaded = load_base(ModelConfig(name=str(tiny_model_dir)))
    only_q = apply_lora(loaded.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert "k_proj" in unsupported(only_q)
    with pytest.raises(ValueError, match="does not support"):
        FusedLlama(only_q, precision="fp32", attention_fp32=True)


@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_backward_matches_autograd(out_dtype):
    """The hand-written RMSNorm gives F.rms_norm's values and autograd's gradients (input, weight); dy is left alone."""
    from codetune.training.fused import _rms_norm

    torch.manual_seed(0)
    x = torch.randn(2, 5, 16, requires_grad=True)
    w = torch.randn(16, requires_grad=True)
    dy = torch.randn(2, 5, 16).to(out_dtype)
    keep = dy.clone()
    ref = torch.nn.functional.rms_norm(x, (16,), w, 1e-5).to(out_dtype)
    ref.backward(dy)
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    got = _rms_norm(x, w, 1e-5, out_dtype)
    got.backward(dy)
    tol = 1e-6 if out_dtype == torch.float32 else 2**-8  # bf16: a rounding may land one ulp apart
    assert got.dtype == out_dtype and torch.allclose(got.float(), ref.float(), rtol=tol, atol=tol)
    assert torch.allclose(x.grad, gx, rtol=1e-5, atol=1e-6) and torch.allclose(w.grad, gw, rtol=1e-5, atol=1e-5)
    assert torch.equal(dy, keep)


@pytest.mark.parametrize("in_dtype", [torch.float32, torch.bfloat16])
def test_split_rope_matches_the_composite(in_dtype):
    """_split_rope = cast, slice, rotary (`_rope`): same q, k, v and the same gradient into qkv."""
    from codetune.training.fused import _rope, _split_rope

    torch.manual_seed(0)
    n_heads, n_kv, head_dim, seq = 4, 2, 8, 6
    qkv = torch.randn(2, seq, n_heads + 2 * n_kv, head_dim).to(in_dtype).requires_grad_()
    angles = torch.randn(1, seq, 1, head_dim // 2)
    cos, sin = angles.cos(), angles.sin()
    grads = [torch.randn(2, seq, n, head_dim) for n in (n_heads, n_kv, n_kv)]

    full = qkv.float()
    qk = _rope(full[:, :, : n_heads + n_kv], cos, sin)
    ref = (qk[:, :, :n_heads], qk[:, :, n_heads:], full[:, :, n_heads + n_kv :])
    (ref_grad,) = torch.autograd.grad(ref, qkv, grads)
    got = _split_rope(qkv, cos, sin, n_heads, n_kv, torch.float32)
    (got_grad,) = torch.autograd.grad(got, qkv, grads, retain_graph=True)
    for a, b in zip(got, ref):
        assert a.dtype == torch.float32 and torch.allclose(a, b, rtol=1e-6, atol=1e-6)
    tol = 1e-6 if in_dtype == torch.float32 else 2**-8
    assert got_grad.dtype == in_dtype and torch.allclose(got_grad.float(), ref_grad.float(), rtol=tol, atol=tol)
    # an output left out of the loss gets no gradient, and the others' are unchanged
    (part,) = torch.autograd.grad(got[0].sum(), qkv)
    assert torch.count_nonzero(part[:, :, n_heads:]) == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_swiglu_matches_the_composite(dtype):
    """_swiglu = silu(gate) * up: same values, same gradient into gate|up."""
    from codetune.training.fused import _swiglu

    torch.manual_seed(0)
    gu = torch.randn(3, 5, 2 * 12).to(dtype).requires_grad_()
    g = torch.randn(3, 5, 12).to(dtype)
    gate, up = gu.chunk(2, dim=-1)
    ref = torch.nn.functional.silu(gate) * up
    (ref_grad,) = torch.autograd.grad(ref, gu, g)
    got = _swiglu(gu)
    (got_grad,) = torch.autograd.grad(got, gu, g)
    assert torch.equal(got, ref)
    tol = 1e-6 if dtype == torch.float32 else 2**-7
    assert got_grad.dtype == dtype and torch.allclose(got_grad.float(), ref_grad.float(), rtol=tol, atol=tol)


def test_row_blocked_frozen_linear_equals_the_matmul():
    """_frozen runs narrow-output products in row blocks on CPU: same values and input gradient as x @ w.T."""
    from codetune.training.fused import _block_rows, _frozen, _mm_rows

    cpu = torch.device("cpu")
    assert _block_rows(3072, 576, cpu) == 320 and _block_rows(576, 576, cpu) == 512
    assert _block_rows(576, 3072, cpu) == 0  # wide output: one product
    torch.manual_seed(0)
    a, b = torch.randn(1100, 24), torch.randn(24, 7)
    assert torch.allclose(_mm_rows(a, b, 512), a @ b, rtol=1e-6, atol=1e-6)  # 3 blocks of 367/367/366
    x = torch.randn(2, 700, 576, requires_grad=True)
    w = torch.randn(576, 576) / 24
    dy = torch.randn(2, 700, 576)
    got = _frozen(x, w)
    (gx,) = torch.autograd.grad(got, x, dy)
    ref = x @ w.t()
    (rx,) = torch.autograd.grad(ref, x, dy)
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5) and torch.allclose(gx, rx, rtol=1e-5, atol=1e-5)


def test_keep_bits_is_the_keep_mask_as_bits():
    """_keep_bits gives -1 exactly where _keep keeps and 0 where it drops, also when the words are padded."""
    from codetune.training.fused import _keep, _keep_bits, _words
    from codetune.training.kernels import dropout_threshold

    torch.manual_seed(0)
    threshold = dropout_threshold(0.3)
    for shape in [(3, 5, 7), (1, 8, 4)]:  # 35 lanes per mask (padded to 36), and 32 (not padded)
        words = _words(shape[0], shape[1] * shape[2], torch.device("cpu"))
        keep = _keep(words, shape, threshold)
        bits = _keep_bits(words.clone(), shape, threshold)
        assert bits.dtype == torch.int16 and bits.shape == shape
        assert torch.equal(bits, torch.where(keep, -1, 0).to(torch.int16))
        assert 0 < int(keep.sum()) < keep.numel()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("k", [1, 3])
def test_dropped_lora_a_matches_the_composite(dtype, k):
    """_lora_a with masks = (x * keep) @ a^T: same values, same gradient for a, input gradient up to rounding."""
    from codetune.training.fused import _keep, _lora_a, _words
    from codetune.training.kernels import dropout_threshold

    torch.manual_seed(0)
    threshold = dropout_threshold(0.25)
    x = torch.randn(37, 24).to(dtype).requires_grad_()
    a = torch.randn(k, 4, 24).to(dtype).requires_grad_()
    g = torch.randn(k, 37, 4).to(dtype)
    words = _words(k, 37 * 24, torch.device("cpu"))
    keep = _keep(words, (k, 37, 24), threshold)
    ref = torch.matmul(x * keep, a.transpose(1, 2))
    ref_gx, ref_ga = torch.autograd.grad(ref, (x, a), g)
    got = _lora_a(x, a, words.clone(), threshold)
    got_gx, got_ga = torch.autograd.grad(got, (x, a), g)
    assert torch.equal(got, ref)
    # The gradient of a is the same product summed in the BLAS's own order, which on some CPUs differs
    # from the composite's by an ulp in fp32 (bit-equal on AMX machines); the input gradient up to rounding.
    assert torch.allclose(got_ga, ref_ga, rtol=1e-6, atol=1e-6)
    tol = 1e-6 if dtype == torch.float32 else 2**-7
    assert got_gx.dtype == dtype and torch.allclose(got_gx.float(), ref_gx.float(), rtol=tol, atol=tol)
    # an input without gradient (the first layer's): the same gradient for a
    (only_ga,) = torch.autograd.grad(_lora_a(x.detach(), a, words.clone(), threshold), a, g)
    assert torch.equal(only_ga, got_ga)
    # without masks: the plain products
    plain = _lora_a(x, a, None, threshold)
    assert torch.equal(plain, torch.matmul(x, a.transpose(1, 2)))


def test_dropped_lora_a_keeps_one_byte_per_mask_element():
    """What _lora_a keeps for the backward: x, the k masks as int8 (not int16 or bool-as-x's-dtype) and a."""
    from codetune.training.fused import _lora_a, _words
    from codetune.training.kernels import dropout_threshold

    x = torch.randn(40, 24).to(torch.bfloat16).requires_grad_()
    a = torch.randn(3, 4, 24).to(torch.bfloat16).requires_grad_()
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        _lora_a(x, a, _words(3, 40 * 24, torch.device("cpu")), dropout_threshold(0.1))
    masks = [t for t in kept if t.dtype == torch.int8]
    assert len(masks) == 1 and masks[0].shape == (3, 40, 24)
    assert set(masks[0].unique().tolist()) <= {-1, 0}
    assert sum(t.numel() * t.element_size() for t in kept) == x.numel() * 2 + 3 * 40 * 24 + a.numel() * 2
