import pytest


def test_two_workers_give_one_workers_step_without_dropout(train_tiny, monkeypatch):
    """Without dropout the split changes only the order of the sums (and the padding): the same first-step
    gradients, and losses within rounding (AdamW's first updates, ~lr * sign(g), amplify it)."""
    import torch

    real_clip = torch.nn.utils.clip_grad_norm_
    seen = []

    def clip(params, *args, **kwargs):
        seen.append([p.grad.clone() for p in params])  # the step's summed gradients, before clipping
        return real_clip(params, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    one = train_tiny({"train": {"workers": 1}, "lora": {"dropout": 0.0}})
    g1, seen[:] = seen[0], []
    two = train_tiny({"train": {"workers": 2}, "lora": {"dropout": 0.0}})
    g2 = seen[0]
    assert one.workers == 1 and two.workers == 2 and two.forward == "fused"
    assert two.real_tokens == one.real_tokens and two.target_tokens == one.target_tokens
    assert len(g1) == len(g2) and any(bool(g.abs().sum() > 0) for g in g1)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-8)
    assert two.losses[0] == pytest.approx(one.losses[0], rel=1e-6)
    assert two.losses == pytest.approx(one.losses, rel=1e-3)


def test_two_workers_with_dropout_repeat_exactly_and_differ_from_no_dropout(train_tiny):
    a = train_tiny({"train": {"workers": 2}})
    b = train_tiny({"train": {"workers": 2}})
    assert a.losses == b.losses  # each worker's masks come from its own generator, seeded per step
    plain = train_tiny({"train": {"workers": 2}, "lora": {"dropout": 0.0}})
    assert a.losses != plain.losses  # the masks did something


def test_workers_auto_and_bad_values(train_tiny):
    import torch

    from codetune.errors import ConfigError

    threads = torch.get_num_threads()
    try:
        for n, expected in ((1, 1), (2, 2), (3, 1)):  # auto: two workers on two threads, else one
            torch.set_num_threads(n)
            assert train_tiny({"train": {"workers": 0}}).workers == expected
            assert torch.get_num_threads() == n  # restored after training
    finally:
        torch.set_num_threads(threads)
    assert train_tiny({"train": {"workers": 0, "fused": "off"}}).workers == 1
    with pytest.raises(ConfigError, match="train.workers=2 needs the fused forward"):
        train_tiny({"train": {"workers": 2, "fused": "off"}})
    with pytest.raises(ConfigError, match="train.workers=3 needs train.compile=false"):
        train_tiny({"train": {"workers": 3, "compile": True}})


def test_threaded_runner_holds_one_thread_while_open_and_restores(tiny, samples):
    import torch

    from codetune.config import RunConfig
    from codetune.models import apply_lora
    from codetune.training.forward import choose_forward
    from codetune.training.plan import plan_steps
    from codetune.training.steps import ThreadedSteps, make_runner

    cfg = RunConfig.model_validate({"lora": {"r": 4}, "train": {"workers": 2, "batch_size": 4}})
    model = apply_lora(tiny.model, cfg.lora)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        params = [p for p in model.parameters() if p.requires_grad]
        plan = plan_steps(tiny.tokenizer, samples(8), cfg)
        runner = make_runner(choose_forward(model, cfg, device="cpu", precision="fp32"), plan, params, cfg, "cpu")
        assert isinstance(runner, ThreadedSteps) and runner.workers == 2
        with runner:
            assert torch.get_num_threads() == 1
            shares = runner.run(plan.steps[0])
        assert torch.get_num_threads() == 2
        assert len(shares) == 2 and sum(s.target for s in shares) == plan.steps[0].n_target
        assert all(p.grad is not None for p in params)
    finally:
        torch.set_num_threads(threads)
        tiny.model = model.unload()
