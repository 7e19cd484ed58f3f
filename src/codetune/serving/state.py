"""What the server holds: the model, loaded in a background thread after uvicorn starts, and its settings.

Routes ask `ServerState.backend()`, which answers 503 while the model loads; `/health` reads `status`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codetune.serving import http_errors


@dataclass
class Backend:
    """A loaded model behind a started engine."""

    engine: Any  # codetune.serving.engine.Engine
    tokenizer: Any
    base_name: str
    adapters: dict[str, str] = field(default_factory=dict)  # name -> the directory it came from
    context: int = 2048
    default_model: str | None = None  # what a request naming no model gets; None: the base
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Settings:
    """How requests are served, whatever the model."""

    api_key: str | None = None
    timeout_s: float = 300.0


class ServerState:
    """The backend, once `load()` (run in a thread by `start_loading`) has returned it.

    Args:
        load: builds the Backend (loads weights, starts the engine); may raise.
        settings: the per-request settings.
        on_ready: called from the loading thread with the backend when it is up.
        on_failure: called from the loading thread with the exception when loading failed.
    """

    def __init__(
        self,
        load: Callable[[], Backend],
        settings: Settings | None = None,
        *,
        on_ready: Callable[[Backend], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._load, self.settings = load, settings or Settings()
        self._on_ready, self._on_failure = on_ready, on_failure
        self._backend: Backend | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()

    @property
    def status(self) -> str:
        if self._backend is not None:
            return "ok"
        return "error" if self.error is not None else "loading"

    def backend(self) -> Backend:
        """The loaded backend, or a 503 ApiError while it loads."""
        if self._backend is None:
            raise http_errors.loading()
        return self._backend

    def start_loading(self) -> None:
        self._thread = threading.Thread(target=self._run, name="codetune-serve-load", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            backend = self._load()
        except BaseException as exc:  # noqa: BLE001 - reported through on_failure; the thread ends here
            self.error = exc
            if self._on_failure is not None:
                self._on_failure(exc)
            return
        with self._lock:
            if self._closed:  # shut down while loading: nothing will serve it
                backend.engine.close()
                return
            self._backend = backend
        if self._on_ready is not None:
            self._on_ready(backend)

    def close(self) -> None:
        """Stop the engine (pending requests end "cancelled"); a load still running is closed when done."""
        with self._lock:
            self._closed = True
            backend = self._backend
        if backend is not None:
            backend.engine.close()
