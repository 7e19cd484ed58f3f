"""Load a base model with every adapter to serve on one `PeftModel`: one copy of the base weights.

Each adapter is checked before the base loads (a missing directory fails in a second, not after the
model load), and every failure is one `ModelLoadError` that names the adapter and the fix.

Fill-in-the-middle: an adapter trained with data.fim_rate > 0 saved its tokenizer, which has the FIM
sentinels, and its trained sentinel rows (`codetune.models.attach_adapter` loads them). When one is served
over a base without the sentinels, the base gets them first (`fim.add_fim_tokens`, mean-initialised rows):
the served names that take FIM requests are then that adapter's, and the added ids are rows the base and
the other adapters never trained (the engine keeps them from picking those tokens).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codetune.config import ModelConfig
from codetune.errors import ModelLoadError

DEFAULT_MODEL = "smollm2-135m"
_RESERVED = "__base__"  # peft's name for the base model in a mixed batch


@dataclass
class Served:
    """What a server serves: one model (a `PeftModel` holding every adapter, or the plain base)."""

    model: Any
    tokenizer: Any
    base_name: str  # the name that selects the base model (the --model value)
    fim_models: list[str] = field(default_factory=list)  # served names that take fill-in-the-middle requests
    untrained_ids: list[int] = field(
        default_factory=list
    )  # sentinel ids added here: untrained but for FIM adapters


def load_for_serving(
    model: str = DEFAULT_MODEL,
    adapters: Mapping[str, Path] | Iterable[tuple[str, Path]] = (),
    device: str = "cpu",
) -> tuple[Any, Any, str]:
    """(model, tokenizer, base_name) of `load_served`."""
    served = load_served(model, adapters, device)
    return served.model, served.tokenizer, served.base_name


def load_served(
    model: str = DEFAULT_MODEL,
    adapters: Mapping[str, Path] | Iterable[tuple[str, Path]] = (),
    device: str = "cpu",
) -> Served:
    """The base `model` (a name `codetune.models` resolves), wrapped in one `PeftModel` holding every adapter
    under its name when there are any; `base_name` is `model` as given.

    `adapters` maps names to adapter directories (as saved by `save_pretrained`); pairs are accepted too,
    so a name given twice is caught. FIM adapters (their saved tokenizer has the sentinels) load with their
    trained sentinel rows; see the module docstring.
    """
    from codetune import fim
    from codetune.models import adapter_has_fim, load_base

    pairs = check_adapters(adapters, model)
    with_fim = {name for name, path in pairs if adapter_has_fim(path)}
    loaded = load_base(ModelConfig(name=model), device=device)
    tok = loaded.tokenizer
    native = fim.fim_tokens(tok) is not None
    untrained: list[int] = []
    if with_fim and not native:  # once, before any adapter wraps the base
        untrained = fim.add_fim_tokens(loaded.model, tok).ids
    peft_model = None
    # Adapters with trained token rows load last: peft (0.21) cannot load an adapter without them after one
    # with them (set_peft_model_state_dict looks the new adapter's rows up in every TrainableTokensWrapper).
    for name, path in sorted(pairs, key=lambda p: _has_token_rows(p[1])):
        peft_model = _load_one(peft_model, loaded.model, tok, name, path, model, name in with_fim)
    fim_models = ([model] if native else []) + [n for n, _ in pairs if native or n in with_fim]
    if peft_model is None:
        return Served(loaded.model.eval(), tok, model, fim_models)
    _give_base_rows(peft_model, [n for n, _ in pairs])
    return Served(peft_model.eval(), tok, model, fim_models, untrained)


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


def _load_one(peft_model: Any, base: Any, tokenizer: Any, name: str, path: Path, base_name: str, fim: bool) -> Any:
    """Add one adapter: the first wraps the base in a PeftModel, the others load beside it. A FIM adapter
    loads through `models.attach_adapter` (its sentinel rows, its ids checked against the tokenizer's)."""
    from peft import PeftModel

    from codetune.models import attach_adapter

    try:
        if fim:
            return attach_adapter(base if peft_model is None else peft_model, tokenizer, path, name=name)
        if peft_model is None:
            return PeftModel.from_pretrained(base, str(path), adapter_name=name, is_trainable=False)
        peft_model.load_adapter(str(path), adapter_name=name, is_trainable=False)
        return peft_model
    except ModelLoadError as exc:
        trained_on = _trained_on(path)
        hint = f"serve it over the base it was trained on: --model {trained_on}" if trained_on else exc.hint
        raise ModelLoadError(f"adapter '{name}' ({path}): {exc.message}", hint) from None
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


def _has_token_rows(path: Path) -> bool:
    """Whether the adapter trained embedding rows (peft's `trainable_token_indices`: a FIM adapter's sentinels)."""
    try:
        return bool(json.loads((path / "adapter_config.json").read_text()).get("trainable_token_indices"))
    except (OSError, ValueError):
        return False


def _give_base_rows(peft_model: Any, names: list[str]) -> None:
    """Give every adapter without trained token rows the base's rows in each `TrainableTokensWrapper`, so
    a mixed batch (`adapter_names=[...]`) runs: peft's mixed forward of such a wrapper looks each row's
    adapter up in it, and fails (KeyError) for one it does not hold. The rows given are the base's own,
    so those adapters compute exactly what they did (tested against each adapter alone)."""
    from peft.utils.other import TrainableTokensWrapper

    for module in peft_model.modules():
        if not isinstance(module, TrainableTokensWrapper):
            continue
        layer = module.token_adapter
        held = set(layer.token_indices)
        if not held:
            continue
        indices = layer.token_indices[next(iter(held))]
        for name in names:
            if name in held and name in module._adapters:
                continue
            if layer.tied_adapter is not None:  # an LM head tied to the embedding: shares its rows
                module.update(name, tied_adapter=layer.tied_adapter)
            else:
                module.update(name, token_indices=list(indices))  # peft's init: the base weight's rows
