"""Device, precision and thread choices, decided once from what the hardware can do fast."""

from __future__ import annotations

import os


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        from codetune.errors import ConfigError

        raise ConfigError("device=cuda asked but no CUDA device is visible", "use device=cpu or device=auto")
    return requested


def bf16_fast(device: str) -> bool:
    """True where bf16 matmuls are native: a CUDA GPU with bf16 units (Ampere and later), or a CPU with
    AVX-512 BF16 / AMX."""
    import torch

    if device == "cuda":
        try:
            # torch counts emulated bf16 (a V100, a T4) as supported unless told not to: slower than fp32.
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # a torch without the argument counts native support only
            return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # older torch
        return False


def device_name(device: str) -> str:
    """What the run's device is, for its results: the GPU's name on CUDA, else the device string."""
    if device != "cuda":
        return device
    import torch

    return torch.cuda.get_device_name(torch.cuda.current_device())


def resolve_precision(requested: str, device: str) -> str:
    """'auto' -> 'bf16' where it is fast, else 'fp32'."""
    if requested == "auto":
        return "bf16" if bf16_fast(device) else "fp32"
    return requested


def resolve_base_weights(requested: str, precision: str) -> str:
    """dtype name of the frozen base Linear weights: 'auto' follows the training precision."""
    if requested == "auto":
        return "bf16" if precision == "bf16" else "fp32"
    if requested == "bf16" and precision != "bf16":
        from codetune.errors import ConfigError

        raise ConfigError(
            "train.base_weights=bf16 needs train.precision=bf16 (or auto)", "set train.precision=bf16"
        )
    return requested


# Caps on the two caches of matmul primitives under torch's CPU matmuls: oneDNN's own and ideep's (the
# C++ layer between torch and oneDNN, which keeps primitives per shape in an LRU of its own). Each holds
# 1024 entries by default.
ONEDNN_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
IDEEP_CACHE_ENV = "LRU_CACHE_CAPACITY"
ONEDNN_CACHE_DEFAULT = "64"
CACHE_CAPS = {ONEDNN_CACHE_ENV: ONEDNN_CACHE_DEFAULT, IDEEP_CACHE_ENV: ONEDNN_CACHE_DEFAULT}


def limit_onednn_cache() -> dict[str, str]:
    """Cap oneDNN's and ideep's primitive caches at 64 entries each unless the user set the variables.

    Training pieces have a new token count almost every step, and each new matmul shape adds a cached
    primitive with its buffers. Capping only oneDNN's cache is not enough: ideep's then keeps growing
    while live tensors stay flat. With both capped, a training run peaks lower at the same speed; a
    much smaller cap (8) cost speed, as a primitive is cheap to find again but dear to
    create (benchmarks/perf.py reports peak RSS and speed; see benchmarks/RESULTS.md). Both are read
    once, at the first matmul of the process, so this must run before it; returns the values
    in force.
    """
    return {name: os.environ.setdefault(name, value) for name, value in CACHE_CAPS.items()}


def set_threads(threads: int | None) -> int:
    """Use every core by default (torch may default to fewer); return the count in use.

    Also caps the matmul primitive caches (`limit_onednn_cache`), as every entry point calls this first.
    """
    import torch

    limit_onednn_cache()
    n = threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
