"""`codetune serve`: a model and its adapters behind OpenAI's and llama.cpp's HTTP APIs, for editors."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codetune.errors import ConfigError

NAME = "serve"
HELP = (
    "Serve a model and LoRA adapters over HTTP for editors and the openai client: OpenAI /v1/completions "
    "(fill-in-the-middle with `suffix` for FIM adapters) and /v1/chat/completions, llama.cpp's /completion and "
    "/infill, a playground at /; concurrent requests decode together."
)
DEFAULT_MODEL = "smollm2-135m"
DEFAULT_CONTEXT = 2048


def add_arguments(p: argparse.ArgumentParser) -> None:
    from codetune.commands._benchmark_options import MODEL_HELP

    p.add_argument(
        "--model", default=DEFAULT_MODEL, metavar="NAME|DIR", help=f"{MODEL_HELP} (default: %(default)s)"
    )
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a PEFT LoRA adapter served as model NAME, e.g. best=runs/quick/<run>/adapter (repeatable); one "
        "trained with data.fim_rate > 0 also fills in the middle (`suffix`, /infill)",
    )
    p.add_argument(
        "--default-model",
        metavar="NAME",
        default=None,
        help="what a request that names no model gets (llama.cpp clients never name one): the base (default) "
        "or an --adapter NAME",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)"
    )
    p.add_argument(
        "--port", type=int, default=8080, help="port to listen on; 0 picks a free one (default: %(default)s)"
    )
    p.add_argument(
        "--api-key",
        default=os.environ.get("CODETUNE_API_KEY"),
        metavar="KEY",
        help="require `Authorization: Bearer KEY` on the API (default: $CODETUNE_API_KEY, else none)",
    )
    p.add_argument("--max-batch", type=int, default=16, help="requests decoded together (default: %(default)s)")
    p.add_argument(
        "--max-queue",
        type=int,
        default=64,
        help="requests waiting beyond those; more get 503 (default: %(default)s)",
    )
    p.add_argument(
        "--timeout", type=float, default=300.0, help="seconds a request may take; then 504 (default: 300)"
    )
    p.add_argument(
        "--context",
        type=int,
        default=None,
        help=f"prompt + new tokens per request (default: {DEFAULT_CONTEXT}; at most the model's positions)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to run the model")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="decoding precision (auto: bf16 where the CPU or GPU runs it natively, else fp32)",
    )


def parse_adapters(specs: list[str], model: str) -> dict[str, Path]:
    """`NAME=DIR` options as {name: dir}, checked (names, directories, adapter_config.json) before
    anything loads, so a bad one is an error line before the port is taken."""
    from codetune.serving.adapters import check_adapters

    pairs = []
    for spec in specs:
        name, sep, where = spec.partition("=")
        if not sep or not name.strip() or not where:
            raise ConfigError(
                f"--adapter {spec!r} is not NAME=DIR",
                "name the adapter, e.g. --adapter best=runs/quick/<run>/adapter",
            )
        pairs.append((name.strip(), Path(where).expanduser()))
    return dict(check_adapters(pairs, model))


def check_default_model(name: str | None, model: str, adapters: dict[str, Path]) -> None:
    if name is not None and name != model and name not in adapters:
        served = ", ".join([model, *adapters])
        raise ConfigError(f"--default-model {name} is not served", f"use one of: {served}")


def _check_numbers(args: argparse.Namespace) -> None:
    checks = [
        ("--max-batch", args.max_batch, args.max_batch >= 1, "at least 1", "16"),
        ("--max-queue", args.max_queue, args.max_queue >= 0, "0 or more", "64"),
        ("--timeout", args.timeout, args.timeout > 0, "more than 0 seconds", "300"),
        ("--port", args.port, 0 <= args.port <= 65535, "from 0 to 65535", "8080"),
        ("--context", args.context, args.context is None or args.context >= 2, "at least 2 tokens", "2048"),
    ]
    for flag, value, ok, want, example in checks:
        if not ok:
            raise ConfigError(f"{flag} {value} must be {want}", f"e.g. {flag} {example}")


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), so a taken port is one error line before any model loads."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigError(
            f"--host {host}: not an address here ({exc.strerror})", "use e.g. --host 127.0.0.1"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is in use",
                "stop what listens there, or pick another --port (0 = any free one)",
            ) from None
        if exc.errno == errno.EACCES:
            raise ConfigError(
                f"port {port} on {host} needs privileges", "use a port above 1023, e.g. --port 8080"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror})", "check --host and --port") from None
    sock.listen(2048)  # connections made from now on wait in the backlog until uvicorn accepts them
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def make_loader(args: argparse.Namespace, adapters: dict[str, Path]) -> Any:
    """The function the server runs in its loading thread: weights, adapters, a started engine."""

    def load() -> Any:
        from codetune.device import pick_device, resolve_precision
        from codetune.serving.adapters import load_served
        from codetune.serving.engine import Engine
        from codetune.serving.state import Backend

        device = pick_device(args.device)
        precision = resolve_precision(args.precision, device)
        served = load_served(args.model, adapters, device)
        tokenizer, base_name = served.tokenizer, served.base_name
        engine = Engine(
            served.model,
            tokenizer,
            base_name=base_name,
            adapters=list(adapters),
            max_batch=args.max_batch,
            max_queue=args.max_queue,
            context=args.context or DEFAULT_CONTEXT,
            device=device,
            precision=precision,
            fim_models=served.fim_models,
            untrained_ids=served.untrained_ids,
        )
        if args.context and engine.context < args.context:
            print(
                f"note: the model holds {engine.context} positions; serving with --context {engine.context}",
                file=sys.stderr,
                flush=True,
            )
        engine.start()
        paths = {name: str(path.resolve()) for name, path in adapters.items()}
        return Backend(
            engine=engine,
            tokenizer=tokenizer,
            base_name=base_name,
            adapters=paths,
            context=engine.context,
            default_model=args.default_model or base_name,
        )

    return load


@contextlib.contextmanager
def _stopped_by_signal_is_a_clean_exit() -> Iterator[None]:
    """uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again for the handler it
    found; with a no-op there, a server stopped by Ctrl-C or `kill` exits 0 instead of dying by the signal
    (or printing the CLI's "interrupted; rerun to resume", which means nothing for a server)."""
    before = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def run(args: argparse.Namespace) -> int:
    _check_numbers(args)
    adapters = parse_adapters(args.adapter, args.model)
    check_default_model(args.default_model, args.model, adapters)
    sock = bind(args.host, args.port)
    url = url_of(sock)

    import uvicorn

    from codetune.serving.app import create_app
    from codetune.serving.state import ServerState, Settings

    server: uvicorn.Server | None = None

    def ready(backend: Any) -> None:
        fim = set(backend.engine.fim_models)
        names = ", ".join(n + (" (fill-in-the-middle)" if n in fim else "") for n in backend.engine.models)
        default = (
            "" if backend.default_model == backend.base_name else f"; unnamed requests get {backend.default_model}"
        )
        print(f"serving {names} at {url} (playground: {url}/, OpenAI API: {url}/v1{default})", flush=True)

    def failed(exc: BaseException) -> None:
        if server is not None:
            server.should_exit = True

    state = ServerState(
        make_loader(args, adapters),
        Settings(api_key=args.api_key or None, timeout_s=args.timeout),
        on_ready=ready,
        on_failure=failed,
    )
    print(f"loading {args.model} (GET {url}/health answers 503 until it is ready)", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        create_app(state), log_level="warning", access_log=False, timeout_graceful_shutdown=5, lifespan="on"
    )
    server = uvicorn.Server(config)
    try:
        with _stopped_by_signal_is_a_clean_exit():
            server.run(sockets=[sock])
    finally:
        sock.close()
    if state.error is not None:
        raise state.error
    return 0
