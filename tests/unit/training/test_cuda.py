"""The CUDA path: device=auto picks the GPU, bf16 where the GPU has it natively, the fused forward against
PEFT's losses there. Every test here needs a CUDA device and skips without one."""

from __future__ import annotations

import pytest
import torch

from codetune.config import LoraConfig, ModelConfig, RunConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none visible)")


def test_auto_device_and_precision_on_a_gpu():
    from codetune.device import bf16_fast, device_name, pick_device, resolve_precision

    assert pick_device("auto") == "cuda"
    native = torch.cuda.get_device_capability()[0] >= 8  # Ampere and later have bf16 units
    assert bf16_fast("cuda") == native
    assert resolve_precision("auto", "cuda") == ("bf16" if native else "fp32")
    assert device_name("cuda") == torch.cuda.get_device_name(0)


def _lora_model(tiny_model_dir, device):
    from codetune.models import apply_lora, load_base

    loaded = load_base(ModelConfig(name=str(tiny_model_dir)), device=device)
    torch.manual_seed(1)
    model = apply_lora(loaded.model, LoraConfig(r=4, alpha=8, dropout=0.1))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    return model, loaded.tokenizer


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fused_forward_trains_to_peft_losses_on_cuda(tiny_model_dir, make_tree, tmp_path, precision):
    """train() on CUDA with the fused forward and with transformers + PEFT: the same losses (fp32 closely,
    bf16 within autocast's rounding). Where train.fused=auto falls back on CUDA, the reason is recorded."""
    if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("this GPU has no native bf16")
    from codetune.data.corpus import load_corpus
    from codetune.training import train

    samples = load_corpus("python", str(make_tree(tmp_path / "pkg")))[:8]
    losses, forwards = {}, {}
    for fused in ("auto", "off"):
        model, tok = _lora_model(tiny_model_dir, "cuda")
        cfg = RunConfig(train={"epochs": 1, "batch_size": 2, "fused": fused, "precision": precision, "workers": 1})
        torch.manual_seed(0)
        res = train(model, tok, samples, cfg, device="cuda", precision=precision, progress=False)
        losses[fused], forwards[fused] = res.losses, (res.forward, res.forward_note)
    assert forwards["off"][0] == "peft"
    name, note = forwards["auto"]
    if name == "peft":  # fell back: it must say why
        assert note, "train.fused=auto fell back to PEFT on CUDA without a recorded reason"
        return
    tol = 1e-4 if precision == "fp32" else 3e-2
    assert losses["auto"] == pytest.approx(losses["off"], rel=tol)


def test_generation_on_cuda_matches_cpu_greedy(tiny_model_dir):
    """Greedy generation on the GPU (fp32) writes what it writes on the CPU for the tiny model."""
    from codetune.config import GenerateConfig
    from codetune.generate import generate

    prompts = ["def add(a, b):\n", "def clamp(x, lo, hi):\n"]
    cfg = GenerateConfig(max_new_tokens=12, batch_size=2)
    out = {}
    for device in ("cpu", "cuda"):
        model, tok = _lora_model(tiny_model_dir, device)
        model.eval()
        batches = generate(
            model, tok, prompts, "python", cfg, device=device, precision="fp32", seed=0, progress=False
        )
        out[device] = [g.completion for batch in batches for g in batch]
    assert out["cuda"] == out["cpu"]
