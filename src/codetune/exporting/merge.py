"""Fold a LoRA adapter into its base model: find the base, load both, merge, save a plain HF directory.

The base an adapter was trained on is, in order: `--model` as given; the `model.name` of the run's
config.yaml beside the adapter directory (runs/<exp>/<run>/adapter sits next to runs/<exp>/<run>/config.yaml,
and names the bundled model as `smollm2-135m` rather than by its cache path); the adapter's own
`base_model_name_or_path`, which peft records as the directory the base was loaded from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codetune.exporting import ExportError

EXPORT_RECORD = "codetune_export.json"  # written into a merged directory: what made it (and marks it ours)


@dataclass
class Merged:
    """A merged model with its tokenizer, and where its parts came from."""

    model: Any
    tokenizer: Any
    base: str  # the base model's name as resolved (a bundled name, hub id, directory or .gguf path)
    base_from: str  # which rule chose it: "--model", the config.yaml path, or "adapter_config.json"
    adapter: Path
    source_gguf: Path | None  # the GGUF file the base was converted from, if any


def check_adapter_dir(adapter: Path) -> Path:
    """The adapter directory, or one `ExportError` line saying what is wrong with it."""
    adapter = Path(adapter)
    if (adapter / "adapter_config.json").is_file():
        return adapter
    if (adapter / "adapter" / "adapter_config.json").is_file():
        hint = f"that is a run directory; pass its adapter: codetune export {adapter / 'adapter'} ..."
    elif not adapter.exists():
        hint = "pass a PEFT adapter directory, e.g. runs/quick/<run>/adapter"
    else:
        hint = "pass a PEFT adapter directory (saved with save_pretrained), e.g. runs/quick/<run>/adapter"
    what = "does not exist" if not adapter.exists() else "has no adapter_config.json"
    raise ExportError(f"ADAPTER {adapter} {what}", hint)


def find_base(adapter: Path, model: str | None = None) -> tuple[str, str]:
    """The base model for `adapter`, and which rule chose it (see the module docstring)."""
    if model:
        return model, "--model"
    run_config = Path(adapter).resolve().parent / "config.yaml"
    if run_config.is_file():
        name = _model_name_in(run_config)
        if name:
            return name, str(run_config)
    try:
        recorded = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(
            f"cannot read {Path(adapter) / 'adapter_config.json'}: {exc}", "pass the base with --model NAME|DIR"
        ) from None
    name = recorded.get("base_model_name_or_path") if isinstance(recorded, dict) else None
    if not name:
        raise ExportError(
            f"cannot tell which model {adapter} was trained on (no config.yaml beside it, "
            "no base_model_name_or_path in its adapter_config.json)",
            "pass it with --model NAME|DIR",
        )
    return str(name), "adapter_config.json"


def _model_name_in(run_config: Path) -> str | None:
    """`model.name` of a run's config.yaml (or its `model: NAME` shorthand); None when it has none."""
    from codetune.io import parse_yaml, read_text

    data = parse_yaml(read_text(run_config, "run config"), str(run_config))
    model = data.get("model") if isinstance(data, dict) else None
    if isinstance(model, str):
        return model
    if isinstance(model, dict) and isinstance(model.get("name"), str):
        return model["name"]
    return None


def source_gguf(base: str) -> Path | None:
    """The GGUF file a base model is converted from (the bundled model, or a .gguf path); None otherwise."""
    from codetune import models
    from codetune.config import ModelConfig

    kind, _ = models.resolve(ModelConfig(name=base))
    if kind == "bundled":
        return models._bundled_gguf(base)  # the one place that knows where a bundled model's file lives
    if kind == "gguf":
        return Path(base).expanduser()
    return None


def merge_adapter(adapter: Path, model: str | None = None, *, device: str = "cpu") -> Merged:
    """Load the base (fp32) and the adapter on it, and merge the adapter's weights into the base's.

    Raises:
        ExportError: the adapter directory is not one, or does not fit the base.
        ModelLoadError: the base cannot be found or loaded.
    """
    from peft import PeftModel

    from codetune.config import ModelConfig
    from codetune.models import load_base

    adapter = check_adapter_dir(adapter)
    base, base_from = find_base(adapter, model)
    gguf = source_gguf(base)
    loaded = load_base(ModelConfig(name=base), device=device)
    try:
        peft_model = PeftModel.from_pretrained(loaded.model, str(adapter))
    except (ValueError, RuntimeError, KeyError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        hint = "pass the model it was trained on with --model NAME|DIR"
        raise ExportError(
            f"adapter {adapter} does not fit the base '{base}' (from {base_from}): {first}", hint
        ) from None
    merged = peft_model.merge_and_unload()
    merged.eval()
    return Merged(merged, loaded.tokenizer, base, base_from, adapter, gguf)


def check_merged_out(out: Path) -> None:
    """Refuse a --merged directory that holds something other than an earlier export (it is replaced)."""
    from codetune.rundir import check_writable_dir

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"--merged {out} is a file", "choose a directory for the merged model")
    if out.is_dir() and any(out.iterdir()) and not (out / EXPORT_RECORD).is_file():
        raise ExportError(
            f"--merged {out} exists and holds other files (it would be replaced)",
            "choose a new or empty directory",
        )
    check_writable_dir(out, "--merged", "choose a writable --merged directory")


def save_merged(merged: Merged, out: Path) -> Path:
    """Write the merged model (safetensors), its tokenizer and a record of what made it, atomically."""
    from codetune import __version__
    from codetune.io import atomic_dir

    with atomic_dir(Path(out)) as tmp:
        merged.model.save_pretrained(tmp)
        merged.tokenizer.save_pretrained(tmp)
        record = {
            "base": merged.base,
            "base_from": merged.base_from,
            "adapter": str(merged.adapter.resolve()),
            "codetune": __version__,
        }
        (tmp / EXPORT_RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return Path(out)
