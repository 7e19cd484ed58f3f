"""Write a merged HF model as one GGUF file (f16 or q8_0) that llama.cpp, Ollama and LM Studio run.

Only the llama architecture is written (SmolLM2 is one); the layout follows llama.cpp's own converter:
- tensor names from the `gguf` package's table (`model.layers.0.self_attn.q_proj.weight` ->
  `blk.0.attn_q.weight`), the tied output projection left out (llama.cpp then reuses the embedding);
- the rows of every Q and K projection permuted per head: HF's rotary embedding pairs dimension i with
  i + head_dim/2 (`rotate_half`), llama.cpp's pairs 2i with 2i+1, so each head's two halves are interleaved.
  transformers' GGUF loader undoes exactly this (`LlamaTensorProcessor`);
- 1-D tensors (the RMSNorm weights) stay f32; 2-D ones are f16, or q8_0 when asked: blocks of 32 values
  along a row, each stored as an f16 scale d = max|x| / 127 and 32 int8 q = round(x / d), so a weight comes
  back as q * d, within d/2 (plus the scale's f16 rounding) of the original. A row whose length is not a
  multiple of 32 stays f16, as llama.cpp does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codetune.exporting import ExportError

QUANTS = ("f16", "q8_0")
ARCHITECTURES = {"llama": "llama"}  # HF config.model_type -> GGUF general.architecture
Q8_BLOCK = 32


@dataclass
class GgufSummary:
    """What was written."""

    path: Path
    quant: str
    n_tensors: int
    n_bytes: int
    tokenizer_from: str  # "the base's GGUF" | "the HF tokenizer"


def check_exportable(config: Any) -> None:
    """Raise one `ExportError` line unless a model with this HF config can be written as GGUF here."""
    model_type = getattr(config, "model_type", "?")
    if model_type not in ARCHITECTURES:
        raise ExportError(
            f"GGUF export supports the architectures {', '.join(ARCHITECTURES)}, not '{model_type}'",
            "export --merged DIR instead and convert it with llama.cpp's convert_hf_to_gguf.py",
        )
    rope = _rope_parameters(config)
    if rope.get("rope_type", "default") != "default":
        raise ExportError(
            f"GGUF export writes plain RoPE only, and this model uses '{rope['rope_type']}' scaling",
            "export --merged DIR instead and convert it with llama.cpp's convert_hf_to_gguf.py",
        )
    if getattr(config, "hidden_act", "silu") != "silu":
        raise ExportError(
            f"GGUF export of '{model_type}' expects the SiLU activation, not '{config.hidden_act}'",
            "export --merged DIR instead",
        )


def write_gguf(
    model: Any, tokenizer: Any, path: Path, *, quant: str = "f16", name: str = "", source_gguf: Path | None = None
) -> GgufSummary:
    """Write `model` (a merged llama-architecture HF model) and its tokenizer as one GGUF file, atomically.

    Args:
        model: the merged model (fp32 weights).
        tokenizer: its HF tokenizer (used when there is no `source_gguf`).
        path: the .gguf file to write (replaced if it exists).
        quant: "f16" or "q8_0" for the 2-D weights.
        name: `general.name` in the file.
        source_gguf: the GGUF the base came from, whose tokenizer metadata is copied.
    """
    import gguf

    from codetune.exporting import gguf_vocab
    from codetune.io import atomic_path

    if quant not in QUANTS:
        raise ExportError(f"--quant {quant} is not one of {', '.join(QUANTS)}", "e.g. --quant q8_0")
    config = model.config
    check_exportable(config)
    tensors = list(_gguf_tensors(model, quant))  # every check that can fail runs before the file is opened
    with atomic_path(Path(path)) as tmp:
        writer = gguf.GGUFWriter(str(tmp), ARCHITECTURES[config.model_type])
        _add_hyperparameters(writer, config, quant, name)
        if source_gguf is not None:
            gguf_vocab.copy_from_gguf(writer, source_gguf, config.vocab_size)
        else:
            gguf_vocab.add_from_hf(writer, tokenizer, config.vocab_size)
        for gguf_name, data, raw_dtype in tensors:
            writer.add_tensor(gguf_name, data, raw_dtype=raw_dtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    where = "the base's GGUF" if source_gguf is not None else "the HF tokenizer"
    return GgufSummary(Path(path), quant, len(tensors), Path(path).stat().st_size, where)


def _rope_parameters(config: Any) -> dict:
    # transformers 5 keeps rope_theta and the scaling type in `rope_parameters`; 4.x on the config itself.
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope = dict(rope)
    rope.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    if "type" in rope and "rope_type" not in rope:
        rope["rope_type"] = rope["type"]
    return rope


def _head_dim(config: Any) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _add_hyperparameters(writer: Any, config: Any, quant: str, name: str) -> None:
    import gguf

    file_type = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quant]
    writer.add_name(name or "codetune export")
    writer.add_file_type(int(file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_vocab_size(config.vocab_size)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads or config.num_attention_heads)
    writer.add_rope_dimension_count(_head_dim(config))
    writer.add_rope_freq_base(float(_rope_parameters(config)["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))


def q8_0_error_bound(w: Any) -> Any:
    """The most q8_0 can move each weight of `w` (rows a multiple of 32 long), elementwise, as float64.

    A block of 32 along a row has the scale d = max|x| / 127 (f32); each value becomes q = round(x / d),
    |x / d - q| <= 1/2, |q| <= 127, and is read back as q * f16(d). So
    |x - q * f16(d)| <= d / 2 + |q| * |d - f16(d)| <= d / 2 + 127 * max(2**-11 * d, 2**-25):
    f16 rounds a normal number to within a relative 2**-11, a subnormal one to within half its step 2**-24.
    Computing d, x / d and q * f16(d) in f32 adds at most 127 * 2**-22 * d more.
    """
    import numpy as np

    blocks = np.abs(np.asarray(w, dtype=np.float64)).reshape(-1, Q8_BLOCK)
    d = blocks.max(axis=1, keepdims=True) / 127
    bound = d * (0.5 + 127 * 2.0**-22) + 127 * np.maximum(d * 2.0**-11, 2.0**-25)
    return np.broadcast_to(bound, blocks.shape).reshape(np.shape(w))


def permute_for_llama_cpp(w: Any, n_head: int) -> Any:
    """Rows of a Q or K projection (out_features, ...) from HF's half-split rotary order to llama.cpp's
    interleaved pairs: within each head, rows [0, 1, ..., d/2-1, d/2, ..., d-1] become [0, d/2, 1, d/2+1, ...]."""
    rows = w.shape[0]
    # (n_head, 2 halves, d/2, ...) -> (n_head, d/2, 2, ...): row i of the first half next to row i of the second
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _gguf_tensors(model: Any, quant: str) -> Any:
    """(gguf name, numpy data, raw ggml type or None) for every tensor the file holds, in state_dict order."""
    import gguf

    config = model.config
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    state = model.state_dict()
    tied = "lm_head.weight" in state and _same_storage(
        state["lm_head.weight"], state.get("model.embed_tokens.weight")
    )
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    for hf_name, tensor in state.items():
        if hf_name == "lm_head.weight" and tied:
            continue
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue  # recomputed from rope.freq_base
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ExportError(
                f"no GGUF name for the tensor {hf_name} of this '{config.model_type}' model",
                "export --merged DIR instead and convert it with llama.cpp's convert_hf_to_gguf.py",
            )
        data = tensor.detach().float().cpu().numpy()
        if ".self_attn.q_proj." in hf_name:
            data = permute_for_llama_cpp(data, n_head)
        elif ".self_attn.k_proj." in hf_name:
            data = permute_for_llama_cpp(data, n_kv)
        yield (gguf_name, *_encode(gguf_name, data, quant))


def _same_storage(a: Any, b: Any) -> bool:
    if b is None:
        return False
    return a.data_ptr() == b.data_ptr() or (a.shape == b.shape and bool((a == b).all()))


def _encode(gguf_name: str, data: Any, quant: str) -> tuple[Any, Any]:
    """The tensor as stored: f32 for 1-D, else f16, or q8_0 blocks when asked and the rows allow."""
    import gguf
    import numpy as np

    if data.ndim == 1:
        return np.ascontiguousarray(data, dtype=np.float32), None
    if quant == "q8_0" and data.shape[-1] % Q8_BLOCK == 0:
        q8 = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), q8), q8
    half = data.astype(np.float16)
    if not np.isfinite(half).all():
        raise ExportError(f"the tensor {gguf_name} has values beyond f16's range", "export with --quant q8_0")
    return half, None
