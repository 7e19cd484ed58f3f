"""The record of a training run, and the trained adapter saved with that record beside it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codetune.io import atomic_dir, read_json
from codetune.rundir import RunDir
from codetune.training.checkpoint import uses_trainable_tokens


@dataclass
class TrainResult:
    """What a training run did and how fast."""

    steps: int
    epochs: float
    losses: list[float] = field(default_factory=list)  # mean loss per optimizer step
    train_time_s: float = 0.0
    real_tokens: int = 0  # non-padding tokens processed (prompt + target)
    target_tokens: int = 0  # tokens that carried loss
    padded_tokens: int = 0  # batch slots incl. padding
    tokens_per_s: float = 0.0  # real tokens / train time
    precision: str = "fp32"
    device: str = "cpu"
    trainable_params: int = 0
    resumed_from_step: int = 0
    forward: str = "peft"  # "fused", "fused+compile" (training.fused) or "peft" (transformers + PEFT)
    forward_note: str = ""  # why the fused forward was not used, when train.fused=auto fell back
    workers: int = 1  # data-parallel threads (train.workers, resolved)
    fim_examples: int = 0  # training examples laid out as fill-in-the-middle (data.fim_rate)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def save_adapter(model: Any, out_dir: Path, result: TrainResult, tokenizer: Any = None) -> None:
    """Write the adapter in PEFT format with the training record beside it, swapped in whole: a directory
    that has the record (`RunDir.TRAIN_RESULT`) is complete.

    tokenizer: saved into the directory too when given: a FIM adapter's tokenizer has the sentinels the
    adapter's trained rows belong to (`models.attach_adapter` reads them from there).
    """
    # FIM: not the whole resized embedding, only the sentinels' rows (see `uses_trainable_tokens`)
    kwargs = {"save_embedding_layers": False} if uses_trainable_tokens(model) else {}
    with atomic_dir(Path(out_dir)) as tmp:
        model.save_pretrained(str(tmp), **kwargs)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        (tmp / RunDir.TRAIN_RESULT).write_text(json.dumps(result.to_dict(), indent=1))


def load_train_result(adapter_dir: Path) -> TrainResult:
    """The TrainResult saved beside an adapter by `save_adapter`."""
    path = Path(adapter_dir) / RunDir.TRAIN_RESULT
    return TrainResult(**read_json(path, "training record", "delete the adapter directory to train again"))
