import pytest

from codetune.config import RunConfig
from codetune.data.records import CodeSample, sample_id
from codetune.train import collate, encode, plan_batches, train


def _samples(n=16):
    out = []
    for i in range(n):
        target = f"    return a + {i}\n"
        out.append(
            CodeSample(
                id=sample_id("python", target),
                language="python",
                prompt=f'def add{i}(a):\n    """Add {i}."""\n',
                target=target,
                source="x.py",
                line=1,
                name="f",
            )
        )
    return out


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from codetune.config import ModelConfig
    from codetune.models import load_base

    return load_base(ModelConfig(name=str(tiny_model_dir)))


def test_encode_masks_prompt_tokens_and_appends_eos(tiny):
    tok = tiny.tokenizer
    s = _samples(1)[0]
    e = encode(tok, [s])[0]
    assert e.input_ids[-1] == tok.eos_token_id and e.labels[-1] == tok.eos_token_id
    labelled = [t for t, lab in zip(e.input_ids, e.labels) if lab != -100][:-1]
    assert tok.decode(labelled).strip() == s.target.strip()  # loss exactly on the target
    n_prompt = sum(lab == -100 for lab in e.labels)
    assert tok.decode(e.input_ids[:n_prompt]).startswith("def add0(a):")


def test_length_grouped_batches_pad_little_and_cover_everything():
    lengths = [5, 50, 6, 51, 7, 52, 8, 53]
    batches = plan_batches(lengths, 2, seed=0, epoch=0, mode="length_grouped")
    assert sorted(i for b in batches for i in b) == list(range(8))
    waste = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    assert waste <= 4
    assert plan_batches(lengths, 2, 0, 0, "length_grouped") == batches  # deterministic
    assert plan_batches(lengths, 3, 0, 0, "sequential") == [[0, 1, 2], [3, 4, 5], [6, 7]]


def test_collate_pads_to_batch_max_not_global_max(tiny):
    enc = encode(tiny.tokenizer, _samples(2))
    enc[1].input_ids += [5, 5, 5]
    enc[1].labels += [5, 5, 5]
    b = collate(enc, pad_id=0)
    width = max(len(e.input_ids) for e in enc)
    assert b["input_ids"].shape == (2, width)
    assert int(b["attention_mask"][0].sum()) == len(enc[0].input_ids)
    assert (b["labels"][0, len(enc[0].input_ids) :] == -100).all()


@pytest.mark.parametrize("precision, base", [("fp32", "fp32"), ("bf16", "fp32"), ("bf16", "bf16")])
def test_loss_falls_on_a_tiny_model(tiny, precision, base, tmp_path):
    import torch

    from codetune.models import apply_lora, cast_frozen_linears

    torch.manual_seed(0)
    cast_frozen_linears(tiny.model, base)
    cfg = RunConfig.model_validate(
        {
            "train": {"epochs": 6, "lr": 3e-2, "batch_size": 4, "checkpoint_every": 0},
            "lora": {"r": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "up_proj", "down_proj"]},
        }
    )
    model = apply_lora(tiny.model, cfg.lora)
    # Adapters and optimizer state stay fp32 whatever the base weights are.
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    try:
        res = train(model, tiny.tokenizer, _samples(), cfg, device="cpu", precision=precision, progress=False)
    finally:
        tiny.model = model.unload()
        cast_frozen_linears(tiny.model, "fp32")
    assert res.steps == 24 and len(res.losses) == 24
    assert (
        sum(res.losses[-4:]) / 4 < 0.95 * sum(res.losses[:4]) / 4
    )  # a random 32-dim model with a frozen head learns slowly
    assert res.real_tokens <= res.padded_tokens and res.tokens_per_s > 0
    assert res.trainable_params > 0


def test_unload_restores_base_weights(tiny):
    import torch

    from codetune.models import apply_lora

    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    model = apply_lora(tiny.model, RunConfig().lora)
    for p in model.parameters():
        if p.requires_grad:
            p.data += 1.0
    tiny.model = model.unload()
    after = tiny.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("workers", [1, 2])
def test_checkpoint_resume_matches_uninterrupted_training(tiny, tmp_path, monkeypatch, workers):
    import torch

    import codetune.train as train_mod
    from codetune.models import apply_lora

    cfg = RunConfig.model_validate(
        {
            "train": {"epochs": 2, "lr": 5e-3, "batch_size": 4, "checkpoint_every": 3, "workers": workers},
            "lora": {"r": 4, "dropout": 0.1},
        }
    )

    def run(run_dir):
        torch.manual_seed(1)
        model = apply_lora(tiny.model, cfg.lora)
        try:
            return train(
                model,
                tiny.tokenizer,
                _samples(),
                cfg,
                device="cpu",
                precision="fp32",
                run_dir=run_dir,
                progress=False,
            )
        finally:
            tiny.model = model.unload()

    full = run(tmp_path / "a")
    real_save = train_mod._save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # killed right after the first checkpoint (step 3 of 8)

    monkeypatch.setattr(train_mod, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b")
    monkeypatch.setattr(train_mod, "_save_checkpoint", real_save)
    resumed = run(tmp_path / "b")
    assert resumed.resumed_from_step == 3 and resumed.workers == full.workers == workers
    assert resumed.losses == full.losses  # bit for bit: the workers' gradients are added in a fixed order


def test_target_only_loss_equals_the_models_own_loss(tiny):
    import torch

    from codetune.train import supports_target_logits, target_loss

    assert supports_target_logits(tiny.model)
    batch = collate(encode(tiny.tokenizer, _samples(3)), tiny.tokenizer.pad_token_id)
    with torch.no_grad():
        ours = target_loss(tiny.model, batch)
        theirs = tiny.model(**batch).loss
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)


def test_gpt2_targets_use_conv1d_fan_in_fan_out():
    from transformers import GPT2Config, GPT2LMHeadModel

    from codetune.config import LoraConfig
    from codetune.models import apply_lora, lora_targets
    from codetune.train import supports_target_logits

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=64))
    assert lora_targets(model, LoraConfig()) == (["c_attn", "c_proj"], True)
    peft_model = apply_lora(model, LoraConfig(r=2))
    assert peft_model.peft_config["default"].fan_in_fan_out is True
    assert supports_target_logits(peft_model)


def test_target_only_loss_matches_on_gpt2_too():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from codetune.train import target_loss

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=64)).eval()
    ids = torch.randint(0, 50, (2, 10))
    labels = ids.clone()
    labels[:, :4] = -100
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    with torch.no_grad():
        assert float(target_loss(model, batch)) == pytest.approx(float(model(**batch).loss), rel=1e-5)


def test_split_by_tokens_caps_padded_size():
    from codetune.train import split_by_tokens

    lengths = [10, 100, 20, 90, 30]
    pieces = split_by_tokens([0, 1, 2, 3, 4], lengths, budget=200)
    assert sorted(i for p in pieces for i in p) == [0, 1, 2, 3, 4]
    assert all(len(p) == 1 or len(p) * max(lengths[i] for i in p) <= 200 for p in pieces)
    assert split_by_tokens([0, 1], lengths, budget=0) == [[0, 1]]
    assert split_by_tokens([1], lengths, budget=10) == [[1]]  # one item always runs, even over budget


def test_micro_batch_pieces_give_the_same_step(tiny):
    import torch

    from codetune.models import apply_lora

    results = []
    for budget in (0, 40):
        cfg = RunConfig.model_validate(
            {
                "train": {
                    "epochs": 1,
                    "lr": 1e-2,
                    "batch_size": 8,
                    "checkpoint_every": 0,
                    "micro_batch_tokens": budget,
                },
                "lora": {"r": 4, "dropout": 0.0},
            }
        )
        torch.manual_seed(3)
        model = apply_lora(tiny.model, cfg.lora)
        try:
            results.append(
                train(model, tiny.tokenizer, _samples(), cfg, device="cpu", precision="fp32", progress=False)
            )
        finally:
            tiny.model = model.unload()
    whole, pieces = results
    assert pieces.padded_tokens < whole.padded_tokens or pieces.padded_tokens == whole.padded_tokens
    assert pieces.losses == pytest.approx(whole.losses, rel=1e-4)


def test_chunked_lm_head_gives_the_same_loss_and_gradients(tiny):
    import torch

    from codetune.config import LoraConfig
    from codetune.models import apply_lora
    from codetune.train import target_loss

    torch.manual_seed(0)
    model = apply_lora(tiny.model, LoraConfig(r=4, alpha=8, dropout=0.0))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)  # non-zero B: gradients reach lora_A too
    batch = collate(encode(tiny.tokenizer, _samples(6)), tiny.tokenizer.pad_token_id)
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


def _train_tiny(tiny, overrides, precision="fp32", samples=None):
    import torch

    from codetune.models import apply_lora

    cfg = RunConfig.model_validate(
        {
            "train": {
                "epochs": 1,
                "lr": 1e-2,
                "batch_size": 4,
                "checkpoint_every": 0,
                **overrides.get("train", {}),
            },
            "lora": {"r": 4, "dropout": 0.1, **overrides.get("lora", {})},
        }
    )
    torch.manual_seed(5)
    model = apply_lora(tiny.model, cfg.lora)
    try:
        return train(
            model, tiny.tokenizer, samples or _samples(), cfg, device="cpu", precision=precision, progress=False
        )
    finally:
        tiny.model = model.unload()


def test_fused_forward_trains_exactly_like_peft(tiny):
    """train.fused=auto picks the fused forward; with the same seed and one worker it gives the PEFT
    path's losses (dropout on: the same masks from the default generator)."""
    fused = _train_tiny(tiny, {"train": {"fused": "auto", "workers": 1}})
    peft = _train_tiny(tiny, {"train": {"fused": "off"}})
    assert fused.forward == "fused" and peft.forward == "peft"
    assert fused.workers == peft.workers == 1
    assert fused.losses == pytest.approx(peft.losses, rel=1e-5)


def test_share_tokens_balances_tokens_and_covers_every_sequence():
    from codetune.train import share_tokens

    lengths = [100, 10, 90, 20, 50, 50, 30, 5]
    groups = share_tokens(list(range(8)), lengths, 2)
    assert sorted(i for g in groups for i in g) == list(range(8))
    loads = [sum(lengths[i] for i in g) for g in groups]
    assert loads == [180, 175]  # longest first, each to the lighter group
    assert share_tokens(list(range(8)), lengths, 2) == groups  # deterministic
    assert share_tokens([0, 3], lengths, 3) == [[0], [3]]  # fewer sequences than workers: no empty group
    assert share_tokens([4, 5, 1], lengths, 1) == [[4, 5, 1]]


def test_two_workers_give_one_workers_step_without_dropout(tiny, monkeypatch):
    """Without dropout the split changes only the order of the sums (and the padding): the same first-step
    gradients, and losses within rounding (AdamW's first updates, ~lr * sign(g), amplify it)."""
    import torch

    real_clip = torch.nn.utils.clip_grad_norm_
    seen = []

    def clip(params, *args, **kwargs):
        seen.append([p.grad.clone() for p in params])  # the step's summed gradients, before clipping
        return real_clip(params, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    one = _train_tiny(tiny, {"train": {"workers": 1}, "lora": {"dropout": 0.0}})
    g1, seen[:] = seen[0], []
    two = _train_tiny(tiny, {"train": {"workers": 2}, "lora": {"dropout": 0.0}})
    g2 = seen[0]
    assert one.workers == 1 and two.workers == 2 and two.forward == "fused"
    assert two.real_tokens == one.real_tokens and two.target_tokens == one.target_tokens
    assert len(g1) == len(g2) and any(bool(g.abs().sum() > 0) for g in g1)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-8)
    assert two.losses[0] == pytest.approx(one.losses[0], rel=1e-6)
    assert two.losses == pytest.approx(one.losses, rel=1e-3)


def test_two_workers_with_dropout_repeat_exactly_and_differ_from_no_dropout(tiny):
    a = _train_tiny(tiny, {"train": {"workers": 2}})
    b = _train_tiny(tiny, {"train": {"workers": 2}})
    assert a.losses == b.losses  # each worker's masks come from its own generator, seeded per step
    plain = _train_tiny(tiny, {"train": {"workers": 2}, "lora": {"dropout": 0.0}})
    assert a.losses != plain.losses  # the masks did something


def test_workers_auto_and_bad_values(tiny):
    import torch

    from codetune.errors import ConfigError

    threads = torch.get_num_threads()
    try:
        for n, expected in ((1, 1), (2, 2), (3, 1)):  # auto: two workers on two threads, else one
            torch.set_num_threads(n)
            assert _train_tiny(tiny, {"train": {"workers": 0}}).workers == expected
            assert torch.get_num_threads() == n  # restored after training
    finally:
        torch.set_num_threads(threads)
    assert _train_tiny(tiny, {"train": {"workers": 0, "fused": "off"}}).workers == 1
    with pytest.raises(ConfigError, match="train.workers=2 needs the fused forward"):
        _train_tiny(tiny, {"train": {"workers": 2, "fused": "off"}})
    with pytest.raises(ConfigError, match="train.workers=3 needs train.compile=false"):
        _train_tiny(tiny, {"train": {"workers": 3, "compile": True}})


def test_fused_auto_falls_back_and_says_why(tiny):
    from codetune.errors import ConfigError

    mlp = {"lora": {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"]}}
    res = _train_tiny(tiny, mlp)
    assert res.forward == "peft" and "up_proj" in res.forward_note
    res = _train_tiny(tiny, {"train": {"padding_mask": "pass"}})
    assert res.forward == "peft" and "padding_mask" in res.forward_note
    with pytest.raises(ConfigError, match="train.fused=on"):
        _train_tiny(tiny, {**mlp, "train": {"fused": "on"}})


@pytest.mark.slow
def test_compiled_fused_forward_matches_eager(tiny, tmp_path, monkeypatch):
    """train.compile=true (torch.compile of the fused layer) gives the eager fused losses, bf16 included."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    eager = _train_tiny(tiny, {"train": {}}, precision="bf16")
    compiled = _train_tiny(tiny, {"train": {"compile": True}}, precision="bf16")
    assert compiled.forward == "fused+compile" and compiled.workers == 1  # auto: one worker under compile
    assert compiled.losses == pytest.approx(eager.losses, rel=2e-2)
