"""Deterministic crash points for resume tests: `CODETUNE_KILL_AT=point:n` SIGKILLs this process the
n-th time `point` is reached (points: train_step, gen_batch, run_done). Unset, this does nothing."""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def checkpoint(point: str) -> None:
    spec = os.environ.get("CODETUNE_KILL_AT")
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
