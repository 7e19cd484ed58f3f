"""`codetune export`: a trained adapter merged into its base, as an HF directory and/or a GGUF file."""

from __future__ import annotations

import argparse
import sys

NAME = "export"
HELP = (
    "Merge a LoRA adapter into its base model and write it as a plain Hugging Face directory (--merged DIR) "
    "and/or one GGUF file for llama.cpp, Ollama and LM Studio (--gguf FILE, f16 or q8_0)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "adapter", metavar="ADAPTER", help="a PEFT LoRA adapter directory, e.g. runs/quick/<run>/adapter"
    )
    p.add_argument(
        "--model",
        metavar="NAME|DIR",
        help="the base it was trained on (default: model.name of the run's config.yaml beside ADAPTER, "
        "else base_model_name_or_path in its adapter_config.json)",
    )
    p.add_argument("--merged", metavar="DIR", help="write the merged model and tokenizer here (replaced if ours)")
    p.add_argument("--gguf", metavar="FILE", help="write the merged model as one GGUF file (llama architecture)")
    p.add_argument(
        "--quant",
        choices=("f16", "q8_0"),
        default="f16",
        help="GGUF weight type: f16 (default; exact to half precision) or q8_0 (half the size)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from codetune.errors import ConfigError
    from codetune.exporting import merge
    from codetune.rundir import check_writable_dir

    if not args.merged and not args.gguf:
        raise ConfigError("nothing to export", "add --merged DIR, --gguf FILE, or both")
    if args.quant != "f16" and not args.gguf:
        raise ConfigError(f"--quant {args.quant} applies to --gguf only", "add --gguf FILE")
    # Every check that needs no model runs before the model loads.
    adapter = merge.check_adapter_dir(Path(args.adapter))
    if args.merged:
        merge.check_merged_out(Path(args.merged))
    if args.gguf:
        gguf_path = Path(args.gguf)
        if gguf_path.is_dir():
            raise ConfigError(f"--gguf {gguf_path} is a directory", "name the file, e.g. --gguf model.gguf")
        check_writable_dir(gguf_path.parent, "--gguf", "choose a writable place for the GGUF file")

    merged = merge.merge_adapter(adapter, args.model)
    print(f"merged {adapter} into {merged.base} (base from {merged.base_from})", file=sys.stderr)
    if args.gguf:
        from codetune.exporting.gguf_export import check_exportable

        check_exportable(merged.model.config)  # before anything is written
    if args.merged:
        out = merge.save_merged(merged, Path(args.merged))
        print(f"merged model: {out}")
    if args.gguf:
        from codetune.exporting.gguf_export import write_gguf

        summary = write_gguf(
            merged.model,
            merged.tokenizer,
            Path(args.gguf),
            quant=args.quant,
            name=_gguf_name(merged),
            source_gguf=merged.source_gguf,
        )
        size = summary.n_bytes / 1e6
        print(f"GGUF ({summary.quant}, {size:.1f} MB, tokenizer from {summary.tokenizer_from}): {summary.path}")
    return 0


def _gguf_name(merged) -> str:
    """`general.name`: the base and the run the adapter came from (runs/<exp>/<run>/adapter -> <run>)."""
    from pathlib import Path

    adapter = merged.adapter.resolve()
    run = adapter.parent.name if adapter.name == "adapter" else adapter.name
    return f"{Path(merged.base).name} + {run}"
