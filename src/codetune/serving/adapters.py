"""Load a base model with every adapter to serve on one `PeftModel`: one copy of the base weights.

Each adapter is checked before the base loads (a missing directory fails in a second, not after the
model load), and every failure is one `ModelLoadError` that names the adapter and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from codetune.config import ModelConfig
from codetune.errors import ModelLoadError

DEFAULT_MODEL = "smollm2-135m"
_RESERVED = "__base__"  # peft's name for the base model in a mixed batch


def load_for_serving(
    model: str = DEFAULT_MODEL,
    adapters: Mapping[str, Path] | Iterable[tuple[str, Path]] = (),
    device: str = "cpu",
) -> tuple[Any, Any, str]:
    """(model, tokenizer, base_name): the base `model` (a name `codetune.models` resolves), wrapped in one
    `PeftModel` holding every adapter under its name when there are any; `base_name` is `model` as given.

    `adapters` maps names to adapter directories (as saved by `save_pretrained`); pairs are accepted too,
    so a name given twice is caught.
    """
    from codetune.models import load_base

    pairs = check_adapters(adapters, model)
    loaded = load_base(ModelConfig(name=model), device=device)
    if not pairs:
        return loaded.model.eval(), loaded.tokenizer, model
    peft_model = None
    for name, path in pairs:
        peft_model = _load_one(peft_model, loaded.model, name, path, model)
    return peft_model.eval(), loaded.tokenizer, model


def check_adapters(
    adapters: Mapping[str, Path] | Iterable[tuple[str, Path]], base_name: str = DEFAULT_MODEL
) -> list[tuple[str, Path]]:
    """The (name, directory) pairs, checked without loading anything: names (unique, not the base's, usable
    by peft) and directories (present, with a LoRA adapter_config.json). Raises one `ModelLoadError`."""
    pairs = [(n, Path(p)) for n, p in (adapters.items() if isinstance(adapters, Mapping) else adapters)]
    _check_names(pairs, base_name)
    for name, path in pairs:
        _check_dir(name, path)
    return pairs


def _check_names(pairs: list[tuple[str, Path]], base_name: str) -> None:
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise ModelLoadError(f"adapter name '{name}' is given twice", "give each --adapter its own NAME=DIR")
        seen.add(name)
        if name == base_name:
            raise ModelLoadError(
                f"adapter name '{name}' is the base model's name",
                f"rename the adapter: requests ask for '{base_name}' to get the base model",
            )
        if not name or "." in name or name == _RESERVED:
            raise ModelLoadError(
                f"adapter name '{name}' cannot be used (empty, a '.', or peft's reserved '{_RESERVED}')",
                "use letters, digits, '-' and '_', e.g. --adapter best=DIR",
            )


def _check_dir(name: str, path: Path) -> None:
    if not path.is_dir():
        raise ModelLoadError(f"adapter '{name}': directory '{path}' does not exist", "check the path in NAME=DIR")
    config = path / "adapter_config.json"
    if not config.is_file():
        inner = path / "adapter" / "adapter_config.json"
        hint = f"did you mean {path / 'adapter'}?" if inner.is_file() else "point it at a directory saved by peft"
        raise ModelLoadError(f"adapter '{name}': '{path}' has no adapter_config.json", hint)
    try:
        kind = json.loads(config.read_text()).get("peft_type")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"adapter '{name}': cannot read {config}: {exc}", "re-save the adapter") from None
    if kind != "LORA":
        raise ModelLoadError(
            f"adapter '{name}' is a {kind} adapter; serving batches LoRA adapters only", "serve a LoRA adapter"
        )


def _load_one(peft_model: Any, base: Any, name: str, path: Path, base_name: str) -> Any:
    """Add one adapter: the first wraps the base in a PeftModel, the others load beside it."""
    from peft import PeftModel

    try:
        if peft_model is None:
            return PeftModel.from_pretrained(base, str(path), adapter_name=name, is_trainable=False)
        peft_model.load_adapter(str(path), adapter_name=name, is_trainable=False)
        return peft_model
    except (RuntimeError, ValueError, KeyError) as exc:
        trained_on = _trained_on(path)
        first = str(exc).strip().splitlines()
        why = next((line.strip() for line in first if "size mismatch" in line), first[0] if first else repr(exc))
        hint = (
            f"serve it over the base it was trained on: --model {trained_on}" if trained_on else "check the base"
        )
        raise ModelLoadError(
            f"adapter '{name}' ({path}) does not fit the base model '{base_name}': {why}", hint
        ) from None


def _trained_on(path: Path) -> str | None:
    try:
        return json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, ValueError):
        return None
