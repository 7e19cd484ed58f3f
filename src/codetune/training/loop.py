"""`train()`: the plan, the forward and the step runner put together, one optimizer step at a time.

Read top to bottom: plan every step (`plan.py`), build the optimizer, resume from a checkpoint if there is
one (`checkpoint.py`), choose the forward (`forward.py`) and the step runner (`steps.py`), then per step:
the runner leaves the step's gradient in .grad, the optimizer steps, the checkpointer saves when due.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codetune import faults
from codetune.config import RunConfig, TrainConfig
from codetune.data.records import CodeSample
from codetune.training.checkpoint import Checkpointer
from codetune.training.plan import plan_steps
from codetune.training.result import TrainResult


def train(
    model: Any,
    tokenizer: Any,
    samples: list[CodeSample],
    cfg: RunConfig,
    *,
    device: str,
    precision: str,
    checkpoint_dir: Path | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train the LoRA weights of `model` (a PeftModel) on `samples`; returns the TrainResult (the caller
    saves the adapter with `save_adapter`).

    checkpoint_dir: where step checkpoints go every `train.checkpoint_every` steps, and where a rerun
    resumes from; None = no checkpoints.
    on_step: called after each optimizer step with the number of steps done and the step's `loss`, `lr`
    (the rate it used) and `tokens_per_s` (its real tokens over its seconds): what a tracker logs.
    """
    from codetune.training.forward import choose_forward
    from codetune.training.steps import make_runner

    tc = cfg.train
    plan = plan_steps(tokenizer, samples, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt, sched = _optimizer(params, tc, device, plan.total_steps)
    result = TrainResult(
        steps=plan.total_steps,
        epochs=tc.epochs,
        precision=precision,
        device=device,
        trainable_params=sum(p.numel() for p in params),
        fim_examples=sum(e.fim for e in plan.encoded),
    )
    checkpointer = Checkpointer(checkpoint_dir, tc.checkpoint_every, plan.total_steps)
    start = checkpointer.resume(model, opt, sched, result)

    model.train()
    forward = choose_forward(model, cfg, device=device, precision=precision)
    result.forward, result.forward_note = forward.name, forward.note
    runner = make_runner(forward, plan, params, cfg, device)
    result.workers = runner.workers
    bar = _progress_bar(plan.total_steps, start, progress)
    with runner, forward.active():
        t0 = time.perf_counter() - result.train_time_s
        for step in range(start, plan.total_steps):
            lr, tokens_before, t_step = opt.param_groups[0]["lr"], result.real_tokens, time.perf_counter()
            shares = runner.run(plan.steps[step])
            step_loss = _apply_step(shares, params, opt, sched, tc.max_grad_norm, result)
            result.train_time_s = time.perf_counter() - t0
            bar.update(1)
            tok_s = result.real_tokens / max(result.train_time_s, 1e-9)
            bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{tok_s:.0f}")
            if on_step is not None:
                step_tok_s = (result.real_tokens - tokens_before) / max(time.perf_counter() - t_step, 1e-9)
                on_step(step + 1, {"loss": step_loss, "lr": lr, "tokens_per_s": step_tok_s})
            if checkpointer.due(step + 1):
                checkpointer.save(model, opt, sched, step + 1, result)
            faults.checkpoint("train_step")
    bar.close()
    result.train_time_s = time.perf_counter() - t0
    result.tokens_per_s = result.real_tokens / max(result.train_time_s, 1e-9)
    model.eval()
    return result


def _progress_bar(total: int, start: int, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=start, desc="train", unit="step", disable=None if progress else True, leave=False
    )


def _optimizer(params: list[Any], tc: TrainConfig, device: str, total_steps: int) -> tuple[Any, Any]:
    """AdamW with a linear warm-up then linear decay to 0 at the last step."""
    import torch

    # fused: one kernel for all LoRA tensors instead of a loop over them (see benchmarks/RESULTS.md)
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay, fused=device in ("cpu", "cuda"))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(total_steps, int(tc.warmup_ratio * total_steps)))
    return opt, sched


def _lr_lambda(total: int, warmup: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return f


def _apply_step(
    shares: list[Any], params: list[Any], opt: Any, sched: Any, max_norm: float, result: TrainResult
) -> float:
    """Count the step's tokens into `result`, clip and apply its gradient; returns the step's loss."""
    import torch

    step_loss = 0.0
    for sh in shares:  # in worker order: the same float sum every time
        step_loss += sh.loss
        result.real_tokens += sh.real
        result.target_tokens += sh.target
        result.padded_tokens += sh.padded
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    result.losses.append(step_loss)
    return step_loss
