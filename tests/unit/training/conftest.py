"""Fixtures of the training tests: the tiny model loaded once per module, tiny code samples, and a helper
that trains LoRA on them with a few `train.*` / `lora.*` overrides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from codetune.config import RunConfig
from codetune.data.records import CodeSample


@pytest.fixture()
def samples(code_samples) -> Callable[..., list[CodeSample]]:
    """n (default 16) one-line functions, each with a docstring prompt and a `return a + i` target."""
    return lambda n=16: code_samples(n)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from codetune.config import ModelConfig
    from codetune.models import load_base

    return load_base(ModelConfig(name=str(tiny_model_dir)))


@pytest.fixture()
def train_tiny(tiny, samples) -> Callable[..., Any]:
    """train(overrides, precision, samples, **train_kwargs) on the tiny model: one epoch of batches of 4,
    LoRA r=4 with dropout 0.1, seed 5; the base model is restored after."""

    default_samples = samples

    def run(overrides: dict, precision: str = "fp32", samples: list | None = None, seed: int = 5, **kwargs: Any):
        import torch

        from codetune.models import apply_lora
        from codetune.training import train

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
        torch.manual_seed(seed)
        model = apply_lora(tiny.model, cfg.lora)
        try:
            return train(
                model,
                tiny.tokenizer,
                samples or default_samples(),
                cfg,
                device="cpu",
                precision=precision,
                progress=False,
                **kwargs,
            )
        finally:
            tiny.model = model.unload()

    return run
