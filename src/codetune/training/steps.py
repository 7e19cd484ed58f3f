"""Step runners: the forward and backward of one optimizer step's pieces, leaving the summed gradient in
each parameter's `.grad` for the optimizer.

`SerialSteps` runs every piece in the calling thread. `ThreadedSteps` splits the step's sequences into
token-balanced shares, one per worker thread, each on one intra-op thread with its own dropout generator,
and adds the workers' gradients in a fixed order, so a run repeats exactly. `make_runner` picks one
per `train.workers`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch  # this module is imported only where a model is trained

from codetune.config import RunConfig
from codetune.training.forward import Forward
from codetune.training.plan import Step, StepPlan, share_tokens


@dataclass
class Share:
    """What one worker did in one optimizer step."""

    loss: float = 0.0
    real: int = 0  # non-padding tokens
    target: int = 0  # tokens that carried loss
    padded: int = 0  # batch slots incl. padding
    grads: list[Any] | None = None  # its gradients (ThreadedSteps); None: they went to .grad


class StepRunner:
    """What both runners share: a share's pieces through the forward and backward. Use as a context
    manager around the training loop; `run(step)` returns the step's shares in a fixed order."""

    workers = 1

    def __init__(self, forward: Forward, plan: StepPlan, params: list[Any], budget: int) -> None:
        self.forward, self.plan, self.params = forward, plan, params
        self.budget = budget  # padded tokens per piece (train.micro_batch_tokens; 0 = whole batches)

    def __enter__(self) -> StepRunner:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def run(self, step: Step) -> list[Share]:
        raise NotImplementedError

    def run_share(self, pieces: list[list[int]], n_target: int, generator: Any) -> Share:
        """Forward and backward of `pieces`; gradients into .grad (one worker) or returned (several)."""
        share = Share()
        for piece in pieces:
            batch = self.plan.batch(piece)
            share.real += int(batch["attention_mask"].sum())
            share.target += int((batch["labels"] != -100).sum())
            share.padded += batch["input_ids"].numel()
            loss = self.forward.loss(batch, self.plan.targets(piece) / max(n_target, 1), generator)
            self._backward(loss, share)
            share.loss += float(loss.detach())
        return share

    def _backward(self, loss: Any, share: Share) -> None:
        raise NotImplementedError


class SerialSteps(StepRunner):
    """One worker: every piece in the calling thread, gradients accumulated by backward into .grad."""

    def run(self, step: Step) -> list[Share]:
        """The step's shares (one here), its gradient left in .grad."""
        pieces = [p for b in step.batches for p in self.plan.pieces(b, self.budget)]
        return [self.run_share(pieces, step.n_target, None)]

    def _backward(self, loss: Any, share: Share) -> None:
        loss.backward()


class ThreadedSteps(StepRunner):
    """Data-parallel threads on one CPU: owns the pool and sets one intra-op thread while it is open."""

    def __init__(self, forward: Forward, plan: StepPlan, params: list[Any], budget: int, workers: int) -> None:
        # Each worker's pieces get 1/workers of the token budget: the same memory in flight.
        super().__init__(forward, plan, params, max(1, budget // workers) if budget else 0)
        self.workers = workers
        self.generators = [torch.Generator(device=forward.device) for _ in range(workers)]
        self._pool: ThreadPoolExecutor | None = None
        self._threads = 0

    def __enter__(self) -> ThreadedSteps:
        self._threads = torch.get_num_threads()
        # Each worker on one core (see TrainConfig.workers). First: a thread that already exists keeps the
        # intra-op thread count it had, so the setting must come before the pool's threads.
        torch.set_num_threads(1)
        self._pool = ThreadPoolExecutor(max_workers=self.workers - 1, thread_name_prefix="codetune-train")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        torch.set_num_threads(self._threads)

    def run(self, step: Step) -> list[Share]:
        """The step's shares, one per worker in worker order; their gradients summed into .grad."""
        assert self._pool is not None, "ThreadedSteps.run outside its `with` block"
        groups = share_tokens(step.indices, self.plan.lengths, self.workers)
        groups = [self.plan.pieces(g, self.budget) for g in groups]
        seeds = torch.randint(0, 2**62, (self.workers,)).tolist()  # from the default generator
        jobs = []
        for pieces, gen, seed in zip(groups, self.generators, seeds):
            gen.manual_seed(seed)
            jobs.append((pieces, step.n_target, gen))
        futures = [self._pool.submit(self.run_share, *job) for job in jobs[1:]]
        shares = [self.run_share(*jobs[0])] + [f.result() for f in futures]
        for i, p in enumerate(self.params):  # added in worker order: the same sum every time
            p.grad = shares[0].grads[i]
            for sh in shares[1:]:
                p.grad.add_(sh.grads[i])
        return shares

    def _backward(self, loss: Any, share: Share) -> None:
        # Not into .grad: threads running at once would add to it in no fixed order.
        grads = torch.autograd.grad(loss, self.params, allow_unused=True, materialize_grads=True)
        if share.grads is None:
            share.grads = list(grads)
        else:
            for acc, g in zip(share.grads, grads):
                acc.add_(g)


def resolve_workers(requested: int, device: str, forward: Forward) -> int:
    """train.workers -> the number of data-parallel threads.

    0 = auto: two when torch runs two threads, the eager fused forward and a CPU (the case measured, see
    benchmarks/RESULTS.md), else 1: on more cores, one worker per core would run many more, smaller
    pieces, each reading every weight, and that trade was not measured. More than one worker needs all
    three: the PEFT forward draws its dropout masks from the default generator, which threads running at
    once would share in no fixed order, and torch.compile'd code is not made to be entered from several
    threads at once."""
    from codetune.errors import ConfigError

    if forward.fused is None:
        why = "the fused forward (train.fused=auto or on, where supported)"
    elif forward.fused.compiled:
        why = "train.compile=false"
    elif device != "cpu":
        why = "a CPU device"
    else:
        why = None
    if requested == 0:
        return 2 if why is None and torch.get_num_threads() == 2 else 1
    if requested > 1 and why:
        raise ConfigError(
            f"train.workers={requested} needs {why}", "set train.workers=0 (auto) or train.workers=1"
        )
    return requested


def make_runner(forward: Forward, plan: StepPlan, params: list[Any], cfg: RunConfig, device: str) -> StepRunner:
    """The step runner for `cfg.train.workers` (resolved); use it as a context manager."""
    tc = cfg.train
    workers = resolve_workers(tc.workers, device, forward)
    if workers == 1:
        return SerialSteps(forward, plan, params, tc.micro_batch_tokens)
    return ThreadedSteps(forward, plan, params, tc.micro_batch_tokens, workers)
