import pytest

from codetune.training.forward import supports_target_logits, target_loss
from codetune.training.plan import collate, encode


def test_target_only_loss_equals_the_models_own_loss(tiny, samples):
    import torch

    assert supports_target_logits(tiny.model)
    batch = collate(encode(tiny.tokenizer, samples(3)), tiny.tokenizer.pad_token_id)
    with torch.no_grad():
        ours = target_loss(tiny.model, batch)
        theirs = tiny.model(**batch).loss
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)


def test_gpt2_targets_use_conv1d_fan_in_fan_out():
    from transformers import GPT2Config, GPT2LMHeadModel

    from codetune.config import LoraConfig
    from codetune.models import apply_lora, lora_targets

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=64))
    assert lora_targets(model, LoraConfig()) == (["c_attn", "c_proj"], True)
    peft_model = apply_lora(model, LoraConfig(r=2))
    assert peft_model.peft_config["default"].fan_in_fan_out is True
    assert supports_target_logits(peft_model)


def test_target_only_loss_matches_on_gpt2_too():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=64)).eval()
    ids = torch.randint(0, 50, (2, 10))
    labels = ids.clone()
    labels[:, :4] = -100
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    with torch.no_grad():
        assert float(target_loss(model, batch)) == pytest.approx(float(model(**batch).loss), rel=1e-5)


def test_chunked_lm_head_gives_the_same_loss_and_gradients(tiny, samples):
    import torch

    from codetune.config import LoraConfig
    from codetune.models import apply_lora

    torch.manual_seed(0)
    model = apply_lora(tiny.model, LoraConfig(r=4, alpha=8, dropout=0.0))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)  # non-zero B: gradients reach lora_A too
    batch = collate(encode(tiny.tokenizer, samples(6)), tiny.tokenizer.pad_token_id)
    n_target = int((batch["labels"][:, 1:] != -100).sum())
    assert n_target > 7
    try:
        runs = []
        for chunk in (0, 7):  # 7 does not divide n_target: a short last chunk
            model.zero_grad()
            loss = target_loss(model, batch, chunk)
            loss.backward()
            grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
            runs.append((float(loss), grads))
    finally:
        tiny.model = model.unload()
    (l0, g0), (l1, g1) = runs
    assert l1 == pytest.approx(l0, rel=1e-5)
    for n in g0:
        assert torch.allclose(g0[n], g1[n], rtol=1e-4, atol=1e-7), n


def test_fused_forward_trains_exactly_like_peft(train_tiny):
    """train.fused=auto picks the fused forward; with the same seed and one worker it gives the PEFT
    path's losses (dropout on: the same masks from the default generator)."""
    fused = train_tiny({"train": {"fused": "auto", "workers": 1}})
    peft = train_tiny({"train": {"fused": "off"}})
    assert fused.forward == "fused" and peft.forward == "peft"
    assert fused.workers == peft.workers == 1
    assert fused.losses == pytest.approx(peft.losses, rel=1e-5)


def test_fused_auto_falls_back_and_says_why(train_tiny):
    from codetune.errors import ConfigError

    mlp = {"lora": {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"]}}
    res = train_tiny(mlp)
    assert res.forward == "peft" and "up_proj" in res.forward_note
    res = train_tiny({"train": {"padding_mask": "pass"}})
    assert res.forward == "peft" and "padding_mask" in res.forward_note
    with pytest.raises(ConfigError, match="train.fused=on"):
        train_tiny({**mlp, "train": {"fused": "on"}})


def test_choose_forward_settles_head_dropout_and_attention(tiny):
    """One Forward per run: the target-only head, the bits dropouts swapped in, fp32 attention on CPU bf16."""
    import torch

    from codetune.config import RunConfig
    from codetune.models import apply_lora
    from codetune.training.forward import choose_forward

    cfg = RunConfig.model_validate({"lora": {"r": 4, "dropout": 0.1}, "train": {"fused": "off"}})
    model = apply_lora(tiny.model, cfg.lora)
    try:
        fwd = choose_forward(model, cfg, device="cpu", precision="bf16")
        kinds = {type(m.lora_dropout["default"]).__name__ for m in model.modules() if hasattr(m, "lora_dropout")}
        assert fwd.name == "peft" and fwd.own_head and fwd.attention_fp32 and fwd.bf16
        assert fwd.head_weight.dtype == torch.bfloat16 and kinds == {"_BitsDropout"}
    finally:
        tiny.model = model.unload()
