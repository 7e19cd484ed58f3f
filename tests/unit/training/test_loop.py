import pytest

from codetune.config import RunConfig
from codetune.training import TrainResult, load_train_result, save_adapter, train


@pytest.mark.parametrize("precision, base", [("fp32", "fp32"), ("bf16", "fp32"), ("bf16", "bf16")])
def test_loss_falls_on_a_tiny_model(tiny, samples, precision, base, tmp_path):
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
        res = train(model, tiny.tokenizer, samples(), cfg, device="cpu", precision=precision, progress=False)
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


def test_micro_batch_pieces_give_the_same_step(train_tiny):
    results = []
    for budget in (0, 40):
        overrides = {"train": {"batch_size": 8, "micro_batch_tokens": budget}, "lora": {"dropout": 0.0}}
        results.append(train_tiny(overrides, seed=3))
    whole, pieces = results
    assert pieces.padded_tokens < whole.padded_tokens or pieces.padded_tokens == whole.padded_tokens
    assert pieces.losses == pytest.approx(whole.losses, rel=1e-4)


def test_save_adapter_writes_the_adapter_and_its_record_in_one_swap(tiny, tmp_path):
    from codetune.models import apply_lora
    from codetune.rundir import RunDir

    result = TrainResult(steps=2, epochs=1.0, losses=[1.5, 1.25], forward="fused", workers=2)
    model = apply_lora(tiny.model, RunConfig().lora)
    out = tmp_path / "run" / "adapter"
    try:
        out.mkdir(parents=True)
        (out / "stale.txt").write_text("from an older save")
        save_adapter(model, out, result)
    finally:
        tiny.model = model.unload()
    assert (out / RunDir.TRAIN_RESULT).is_file() and (out / "adapter_config.json").is_file()
    assert not (out / "stale.txt").exists() and not (tmp_path / "run" / "adapter.tmp").exists()
    assert RunDir(tmp_path / "run").has_adapter()
    assert load_train_result(out) == result


@pytest.mark.slow
def test_compiled_fused_forward_matches_eager(train_tiny, tmp_path, monkeypatch):
    """train.compile=true (torch.compile of the fused layer) gives the eager fused losses, bf16 included."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    eager = train_tiny({"train": {}}, precision="bf16")
    compiled = train_tiny({"train": {"compile": True}}, precision="bf16")
    assert compiled.forward == "fused+compile" and compiled.workers == 1  # auto: one worker under compile
    assert compiled.losses == pytest.approx(eager.losses, rel=2e-2)
