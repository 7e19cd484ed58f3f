"""FIM training on the tiny model: the sentinels' rows train (and nothing else of the embeddings), the
adapter saved with its tokenizer reloads to the same logits, checkpoints keep the rows, and the target-only
LM head's gradient for the trained rows equals autograd's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from codetune.config import RunConfig
from codetune.data.records import CodeSample


@pytest.fixture(scope="module")
def examples(code_samples) -> list[CodeSample]:
    """16 three-line functions (FIM needs a body worth cutting)."""
    return code_samples(16, lambda i: f"    x = a + {i}\n    y = x * 2\n    return y - {i % 3}\n")


def _cfg(**train) -> RunConfig:
    return RunConfig.model_validate(
        {
            "seed": 3,
            "data": {"fim_rate": 0.5, "fim_mode": "both", "fim_split": "char"},
            "train": {"epochs": 2, "lr": 2e-2, "batch_size": 4, "checkpoint_every": 0, **train},
            "lora": {"r": 4, "dropout": 0.0},
        }
    )


@pytest.fixture(scope="module")
def tied_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny Llama with tied input and output embeddings (as SmolLM2 has), random, with its tokenizer."""
    import shutil

    from transformers import AutoConfig, AutoModelForCausalLM

    out = tmp_path_factory.mktemp("tiny_tied")
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.tie_word_embeddings = True
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    for f in Path(tiny_model_dir).iterdir():
        if f.name.startswith("tokenizer") or f.name == "special_tokens_map.json":
            shutil.copy(f, out / f.name)
    return out


def _fresh(model_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)


def _train(model_dir: Path, cfg: RunConfig, examples: list[CodeSample], **kwargs):
    from codetune.models import apply_lora
    from codetune.training import train

    base, tok = _fresh(model_dir)
    torch.manual_seed(cfg.seed)
    model = apply_lora(base, cfg.lora, tokenizer=tok, fim=True)
    tres = train(model, tok, examples, cfg, device="cpu", precision="fp32", progress=False, **kwargs)
    return model, tok, tres


def _embeddings(model) -> tuple[torch.Tensor, torch.Tensor]:
    """The input and output embedding matrices the model computes with (trained rows merged in)."""
    base = model.get_base_model()
    return (
        base.get_input_embeddings().weight.detach().clone(),
        base.get_output_embeddings().weight.detach().clone(),
    )


def _logits(model, tok) -> torch.Tensor:
    from codetune.fim import fim_ids

    ids = fim_ids(tok, 'def add(a):\n    """Add."""\n    x = ', "    return x\n", "psm")
    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits


@pytest.mark.parametrize("tied", [False, True])
def test_fim_training_trains_the_sentinel_rows_only_and_the_adapter_reloads(request, tmp_path, tied, examples):
    from peft import PeftModel

    from codetune.fim import add_fim_tokens, fim_tokens
    from codetune.models import adapter_has_fim, apply_lora, attach_adapter
    from codetune.training import save_adapter

    model_dir = request.getfixturevalue("tied_model_dir" if tied else "tiny_model_dir")
    cfg = _cfg()
    base, tok = _fresh(model_dir)
    n_vocab = len(tok)
    torch.manual_seed(cfg.seed)
    model = apply_lora(base, cfg.lora, tokenizer=tok, fim=True)
    ids = fim_tokens(tok).ids
    assert ids == [n_vocab, n_vocab + 1, n_vocab + 2]
    in0, out0 = _embeddings(model)
    from codetune.training import train

    tres = train(model, tok, examples, cfg, device="cpu", precision="fp32", progress=False)
    in1, out1 = _embeddings(model)
    assert 0 < tres.fim_examples < len(examples)
    assert tres.forward == "fused"  # the fused forward runs with the trained rows
    others = [i for i in range(in0.shape[0]) if i not in ids]
    for before, after in ((in0, in1), (out0, out1)):
        assert torch.equal(after[others], before[others])  # no other row moved
        for i in ids:
            assert not torch.allclose(after[i], before[i])  # every sentinel row trained
    if tied:
        assert torch.equal(in1, out1)

    save_adapter(model, tmp_path / "adapter", tres, tokenizer=tok)
    assert adapter_has_fim(tmp_path / "adapter")
    want = _logits(model, tok)

    fresh, fresh_tok = _fresh(model_dir)  # a base whose tokenizer lacks the sentinels
    reloaded = attach_adapter(fresh, fresh_tok, tmp_path / "adapter")
    assert fim_tokens(fresh_tok).ids == ids
    assert torch.equal(_logits(reloaded, fresh_tok), want)

    from transformers import AutoTokenizer

    plain, _ = _fresh(model_dir)  # plain peft, as the fim module's docstring says
    adapter_tok = AutoTokenizer.from_pretrained(tmp_path / "adapter")
    add_fim_tokens(plain, adapter_tok)
    peft_model = PeftModel.from_pretrained(plain, str(tmp_path / "adapter"))
    assert torch.equal(_logits(peft_model, adapter_tok), want)


def test_attach_adapter_loads_a_plain_adapter_and_a_second_one_by_name(
    tiny_model_dir, tiny_adapter_dirs, tmp_path, examples
):
    from codetune.models import adapter_has_fim, attach_adapter
    from codetune.training import save_adapter

    model, tok, tres = _train(tiny_model_dir, _cfg(epochs=0.5), examples)
    save_adapter(model, tmp_path / "fim", tres, tokenizer=tok)
    assert not adapter_has_fim(tiny_adapter_dirs["a"])
    base, btok = _fresh(tiny_model_dir)
    both = attach_adapter(base, btok, tiny_adapter_dirs["a"])  # no tokenizer in it: nothing added
    assert len(btok) == len(tok) - 3
    both = attach_adapter(both, btok, tmp_path / "fim", name="fim")
    assert len(btok) == len(tok) and set(both.peft_config) == {"default", "fim"}
    both.set_adapter("fim")
    assert torch.equal(_logits(both, btok), _logits(model, tok))


def test_attach_adapter_refuses_sentinels_at_other_ids(tiny_model_dir, tmp_path, examples):
    from codetune.errors import ModelLoadError
    from codetune.models import attach_adapter
    from codetune.training import save_adapter

    model, tok, tres = _train(tiny_model_dir, _cfg(epochs=0.5), examples)
    save_adapter(model, tmp_path / "fim", tres, tokenizer=tok)
    base, btok = _fresh(tiny_model_dir)
    btok.add_tokens(["zzz_other"])  # shifts the ids the sentinels would get
    with pytest.raises(ModelLoadError, match="ids"):
        attach_adapter(base, btok, tmp_path / "fim")


def test_native_sentinels_train_plain_lora(tiny_model_dir):
    from codetune.config import LoraConfig
    from codetune.fim import add_fim_tokens
    from codetune.models import apply_lora

    base, tok = _fresh(tiny_model_dir)
    add_fim_tokens(base, tok)  # as if the model came with them
    model = apply_lora(base, LoraConfig(r=4), tokenizer=tok, fim=True)
    assert not any("trainable_tokens" in n for n, p in model.named_parameters() if p.requires_grad)
    with pytest.raises(TypeError, match="tokenizer"):
        apply_lora(_fresh(tiny_model_dir)[0], LoraConfig(r=4), fim=True)


def _first_step_grads(
    model_dir: Path, examples: list[CodeSample], **train
) -> tuple[float, dict[str, torch.Tensor], str]:
    """Loss and gradients of all the examples (FIM and not) as one piece, per `train.*`."""
    from codetune.models import apply_lora
    from codetune.training.forward import choose_forward
    from codetune.training.plan import plan_steps

    cfg = _cfg(**train)
    base, tok = _fresh(model_dir)
    torch.manual_seed(cfg.seed)
    model = apply_lora(base, cfg.lora, tokenizer=tok, fim=True)
    with torch.no_grad():  # non-zero B: the LoRA path counts too
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    plan = plan_steps(tok, examples, cfg)
    forward = choose_forward(model, cfg, device="cpu", precision="fp32")
    model.train()
    every = list(range(len(plan.encoded)))
    assert 0 < sum(plan.encoded[i].fim for i in every) < len(every)
    loss = forward.loss(plan.batch(every), 1.0)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return float(loss.detach()), grads, forward.name


@pytest.mark.parametrize("tied", [False, True])
def test_the_target_only_head_gives_the_rows_the_gradient_of_the_models_own_loss(request, tied, examples):
    """The fused forward + chunked target-only head (the default) and transformers + PEFT with the model's
    own loss over all logits: the same loss and the same gradients, the sentinel rows' included."""
    model_dir = request.getfixturevalue("tied_model_dir" if tied else "tiny_model_dir")
    fast_loss, fast, fast_name = _first_step_grads(model_dir, examples, logits_chunk=8)
    slow_loss, slow, slow_name = _first_step_grads(model_dir, examples, fused="off", logits="all")
    assert (fast_name, slow_name) == ("fused", "peft")
    assert fast_loss == pytest.approx(slow_loss, rel=1e-5)
    rows = [n for n in fast if "trainable_tokens_delta" in n]
    assert len(rows) == (1 if tied else 2)  # tied: one set of rows for both ends
    assert fast.keys() == slow.keys()
    for name, g in fast.items():  # float summation order differs: compare on the tensor's own scale
        assert (g - slow[name]).abs().max() <= 1e-5 * slow[name].abs().max(), name
    assert all(fast[n].abs().sum() > 0 for n in rows)


def test_the_target_only_head_follows_rows_the_fused_optimizer_changed(tiny_model_dir, examples):
    """The fused AdamW writes the rows in place without bumping their version: the head must see it."""
    from codetune.models import apply_lora
    from codetune.training.forward import choose_forward, target_loss
    from codetune.training.plan import plan_steps

    cfg = _cfg(logits_chunk=8)
    base, tok = _fresh(tiny_model_dir)
    model = apply_lora(base, cfg.lora, tokenizer=tok, fim=True)
    plan = plan_steps(tok, examples, cfg)
    forward = choose_forward(model, cfg, device="cpu", precision="fp32")
    batch = plan.batch(list(range(len(plan.encoded))))
    forward.loss(batch, 1.0)
    rows = [p for n, p in model.named_parameters() if "trainable_tokens_delta" in n]
    for p in rows:
        p.grad = torch.ones_like(p)
    torch.optim.AdamW(rows, lr=1.0, fused=True).step()
    with torch.no_grad():
        got = forward.loss(batch, 1.0)
        want = target_loss(model, {**batch, "attention_mask": None}, chunk=0)  # the wrapped head, merged now
    assert float(got) == pytest.approx(float(want), rel=1e-5)


def test_head_cross_entropy_gradient_of_trained_rows_equals_autograd():
    import torch.nn.functional as F

    from codetune.training.kernels import head_cross_entropy

    g = torch.Generator().manual_seed(0)
    n, d, vocab = 37, 16, 50
    hidden = torch.randn(n, d, generator=g, requires_grad=True)
    weight = torch.randn(vocab, d, generator=g)
    labels = torch.randint(0, vocab, (n,), generator=g)
    labels[:3] = torch.tensor([47, 48, 49])  # some targets are trained rows
    ids = torch.tensor([47, 48, 49])
    values = torch.randn(3, d, generator=g, requires_grad=True)

    ref = F.cross_entropy(hidden @ weight.index_copy(0, ids, values).t(), labels, reduction="sum")
    ref.backward()
    ref_h, ref_v = hidden.grad.clone(), values.grad.clone()
    hidden.grad, values.grad = None, None

    merged = weight.index_copy(0, ids, values.detach())
    got = head_cross_entropy(hidden, merged, labels, chunk=8, rows=(ids, values))
    got.backward()
    assert torch.allclose(got, ref, rtol=1e-5)
    assert torch.allclose(hidden.grad, ref_h, rtol=1e-4, atol=1e-6)
    assert torch.allclose(values.grad, ref_v, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("workers", [1, 2])
def test_checkpoint_resume_keeps_the_trained_rows(tiny_model_dir, tmp_path, monkeypatch, workers, examples):
    from codetune.training.checkpoint import Checkpointer

    cfg = _cfg(epochs=3, checkpoint_every=3, workers=workers)

    def run(run_dir: Path):
        return _train(tiny_model_dir, cfg, examples, checkpoint_dir=run_dir / "checkpoint")

    full_model, _, full = run(tmp_path / "a")
    real_save = Checkpointer.save

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # killed right after the first checkpoint

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b")
    monkeypatch.setattr(Checkpointer, "save", real_save)
    model, _, resumed = run(tmp_path / "b")
    assert resumed.resumed_from_step == 3 and resumed.workers == workers
    assert resumed.losses == full.losses
    for a, b in zip(_embeddings(model), _embeddings(full_model)):
        assert torch.equal(a, b)


def test_fim_training_in_bf16_keeps_the_rows_in_fp32(tiny_model_dir, examples):
    """bf16 with the frozen Linear weights stored in bf16 (train.base_weights=auto): the untied LM head is
    bf16, and peft would copy its sentinel rows in bf16; they train in fp32."""
    from codetune.models import apply_lora, cast_frozen_linears
    from codetune.training import train

    cfg = _cfg(epochs=1)
    base, tok = _fresh(tiny_model_dir)
    assert cast_frozen_linears(base, "bf16") > 0 and base.lm_head.weight.dtype == torch.bfloat16
    torch.manual_seed(cfg.seed)
    model = apply_lora(base, cfg.lora, tokenizer=tok, fim=True)
    rows = {n: p for n, p in model.named_parameters() if "trainable_tokens_delta" in n}
    before = {n: p.detach().clone() for n, p in rows.items()}
    assert len(rows) == 2 and all(p.dtype == torch.float32 for p in rows.values())
    tres = train(model, tok, examples, cfg, device="cpu", precision="bf16", progress=False)
    assert tres.forward == "fused" and all(torch.isfinite(torch.tensor(tres.losses)))
    assert all(not torch.equal(p, before[n]) for n, p in rows.items())
