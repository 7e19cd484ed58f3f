"""Step checkpoints that resume bit for bit: adapter, optimizer, scheduler, torch's RNG and the counters of
the TrainResult so far, in one file written beside the last one and swapped in whole (`io.atomic_path`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from codetune.io import atomic_path

STATE = "state.pt"
# The TrainResult fields a resumed run carries on from (the rest are set again when it starts).
RESUMED_FIELDS = ("losses", "train_time_s", "real_tokens", "target_tokens", "padded_tokens")


def uses_trainable_tokens(model: Any) -> bool:
    """Whether an adapter of `model` trains token rows (FIM's sentinels, peft `trainable_token_indices`).

    Their vocabulary was resized to make room for the sentinels, and peft then saves the whole embedding
    and LM head unless told not to; only the sentinels' rows differ from what `fim.add_fim_tokens` gives
    the base, and those are saved as the adapter's trainable tokens.
    """
    return any(getattr(c, "trainable_token_indices", None) for c in model.peft_config.values())


class Checkpointer:
    """Saves every `every` steps into `directory` (not after the last: the adapter follows) and loads it."""

    def __init__(self, directory: Path | None, every: int, total_steps: int) -> None:
        self.directory = Path(directory) if directory else None
        self.every = every
        self.total_steps = total_steps

    def exists(self) -> bool:
        return self.directory is not None and (self.directory / STATE).is_file()

    def due(self, done: int) -> bool:
        """Whether to save after `done` steps."""
        return bool(self.directory and self.every and done % self.every == 0 and done < self.total_steps)

    def save(self, model: Any, opt: Any, sched: Any, step: int, result: Any) -> None:
        """Write the state after `step` steps. A kill, or a full disk, during the write leaves the previous
        checkpoint as it was; a full disk is a CodetuneError naming the file."""
        import torch
        from peft import get_peft_model_state_dict

        assert self.directory is not None
        state = {
            "adapter": get_peft_model_state_dict(model, save_embedding_layers=not uses_trainable_tokens(model)),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "step": step,
            "torch_rng": torch.get_rng_state(),
            "state": {k: getattr(result, k) for k in RESUMED_FIELDS},
        }
        path = self.directory / STATE
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(f"{path.stem}.tmp*{path.suffix}"):  # left by a kill mid-write
            stale.unlink(missing_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # out of space: a CodetuneError naming `path`
            # A file object, not a path: torch's own writer reports a full disk as an opaque RuntimeError,
            # Python's file as OSError(ENOSPC).
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it the checkpoint

    def resume(self, model: Any, opt: Any, sched: Any, result: Any) -> int:
        """Load the saved state into model, optimizer, scheduler, RNG and `result`; the step to start at
        (0 when there is no checkpoint)."""
        if not self.exists():
            return 0
        import torch
        from peft import set_peft_model_state_dict

        blob = torch.load(self.directory / STATE, weights_only=False)
        set_peft_model_state_dict(model, blob["adapter"])
        opt.load_state_dict(blob["optimizer"])
        sched.load_state_dict(blob["scheduler"])
        torch.set_rng_state(blob["torch_rng"])
        for k in RESUMED_FIELDS:
            setattr(result, k, blob["state"][k])
        result.resumed_from_step = int(blob["step"])
        return result.resumed_from_step
