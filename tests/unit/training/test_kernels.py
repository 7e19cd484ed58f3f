import dataclasses

import pytest
import torch

from codetune.config import LoraConfig, ModelConfig
from codetune.training.kernels import (
    bits_mask,
    effective_p,
    fp32_attention,
    make_bits_dropout,
    use_bits_dropout,
    use_torch_dropout,
)


@pytest.fixture()
def tiny(tiny_model_dir):
    from codetune.models import load_base

    return load_base(ModelConfig(name=str(tiny_model_dir)))


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5])
def test_bits_mask_drops_at_rate_p(p):
    torch.manual_seed(0)
    n = 1_000_003  # not a multiple of 4: the last word is partly used
    keep = bits_mask((n,), p)
    assert keep.dtype == torch.bool and keep.shape == (n,)
    dropped = 1 - keep.float().mean().item()
    sd = (p * (1 - p) / n) ** 0.5
    assert abs(dropped - effective_p(p)) < 5 * sd
    assert abs(effective_p(p) - p) <= 0.5 / 32768


def test_bits_mask_lanes_are_independent():
    # Neighbouring elements come from one 64-bit word; their drops must not be correlated.
    torch.manual_seed(1)
    keep = bits_mask((250_000, 4), 0.5).float()
    corr = torch.corrcoef(keep.T)
    off = corr[~torch.eye(4, dtype=torch.bool)]
    assert off.abs().max().item() < 0.01


def test_bits_mask_is_reproducible_from_the_torch_seed():
    torch.manual_seed(7)
    a = bits_mask((64, 48), 0.1)
    torch.manual_seed(7)
    b = bits_mask((64, 48), 0.1)
    torch.manual_seed(8)
    c = bits_mask((64, 48), 0.1)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bits_dropout_scales_kept_values_and_backprops_through_the_mask():
    drop = make_bits_dropout(0.25)
    x = torch.randn(300, 70, requires_grad=True)
    torch.manual_seed(3)
    y = drop(x)
    kept = y != 0
    scale = 1 / (1 - effective_p(0.25))
    assert torch.allclose(y[kept], x[kept] * scale)
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() * scale)
    drop.eval()
    assert drop(x) is x


def test_lora_dropouts_swap_both_ways(tiny):
    from codetune.models import apply_lora

    model = apply_lora(tiny.model, LoraConfig(r=4, alpha=8, dropout=0.1))
    n_lora = sum(1 for m in model.modules() if hasattr(m, "lora_dropout"))
    assert n_lora > 0
    assert use_bits_dropout(model) == n_lora
    assert use_bits_dropout(model) == 0  # already swapped
    assert use_torch_dropout(model) == n_lora
    kinds = {type(m.lora_dropout["default"]) for m in model.modules() if hasattr(m, "lora_dropout")}
    assert kinds == {torch.nn.Dropout}


def test_fp32_attention_switches_sdpa_models_and_restores(tiny, samples):
    from codetune.training.forward import target_loss
    from codetune.training.plan import collate, encode

    model = tiny.model
    assert model.config._attn_implementation == "sdpa"
    batch = collate(encode(tiny.tokenizer, samples(4)), tiny.tokenizer.pad_token_id)
    with torch.no_grad():
        ref = target_loss(model, batch).item()  # fp32
        with fp32_attention(model) as switched, torch.autocast("cpu", dtype=torch.bfloat16):
            assert switched and model.config._attn_implementation != "sdpa"
            low = target_loss(model, batch).item()
    assert model.config._attn_implementation == "sdpa"
    assert low == pytest.approx(ref, rel=0.02)
    with fp32_attention(model, enabled=False) as switched:
        assert not switched


def test_right_padded_batches_need_no_attention_mask(tiny, samples):
    from codetune.training.forward import target_loss
    from codetune.training.plan import collate, encode

    rows = samples(6)
    rows[0] = dataclasses.replace(rows[0], target=rows[0].target * 5)
    batch = collate(encode(tiny.tokenizer, rows), tiny.tokenizer.pad_token_id)
    assert (batch["attention_mask"] == 0).any()  # some rows are padded
    with torch.no_grad():
        masked = target_loss(tiny.model, batch).item()
        unmasked = target_loss(tiny.model, {**batch, "attention_mask": None}).item()
    assert unmasked == pytest.approx(masked, rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("n", "chunk"), [(23, 5), (45, 40)])
def test_head_cross_entropy_matches_cross_entropy(dtype, n, chunk):
    """Chunked head + loss: same sum and same gradient as F.cross_entropy over the whole logits.

    5 does not divide 23; a chunk of 40 is cut into softmax blocks of 16, 16 and 8 rows, then 5 rows.
    """
    from codetune.training.kernels import head_cross_entropy

    torch.manual_seed(0)
    hidden = torch.randn(n, 16, requires_grad=True)
    weight = torch.randn(50, 16).to(dtype)
    labels = torch.randint(0, 50, (n,))
    ref = torch.nn.functional.cross_entropy((hidden.to(dtype) @ weight.t()).float(), labels, reduction="sum")
    (ref * 0.5).backward()
    ref_grad = hidden.grad.clone()
    hidden.grad = None
    got = head_cross_entropy(hidden, weight, labels, chunk=chunk)
    (got * 0.5).backward()
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert float(got) == pytest.approx(float(ref), rel=1e-5)
    assert torch.allclose(hidden.grad, ref_grad, rtol=tol, atol=tol)
