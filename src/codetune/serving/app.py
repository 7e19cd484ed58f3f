"""The ASGI app of `codetune serve`: OpenAI's and llama.cpp's APIs, `/health`, and the playground at `/`.

`create_app(state)` wires the routes to a `ServerState`, whose model loads in a background thread once
uvicorn has started (so `/health` can answer 503 "loading" meanwhile). Every error is OpenAI's JSON shape.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from codetune.serving import llamacpp_api, openai_api
from codetune.serving.http_errors import ApiError, from_validation
from codetune.serving.state import ServerState

STATIC = Path(__file__).parent / "static"
OPEN_PATHS = ("/", "/health", "/favicon.ico")  # what a browser or a load balancer reads without the key
ENDPOINTS = (
    "GET /health, GET /v1/models, POST /v1/completions, POST /v1/chat/completions, POST /completion, POST /infill"
)


class BearerAuth:
    """Answer 401 to API requests without `Authorization: Bearer <key>` (ASGI middleware, so streamed
    responses pass through untouched)."""

    def __init__(self, app: Any, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith("/static/"):
            return await self.app(scope, receive, send)
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
            return await self.app(scope, receive, send)
        what = "a wrong API key" if header else "no API key"
        err = ApiError(
            401,
            f"{what}: this server was started with --api-key; send the header `Authorization: Bearer <key>` "
            "(the openai client: api_key=...)",
            type="authentication_error",
            code="invalid_api_key",
        )
        response = JSONResponse(err.body(), status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            message = f"no endpoint {where}; the endpoints are: {ENDPOINTS}"
        elif exc.status_code == 405:
            message = f"{where} is not allowed; the endpoints are: {ENDPOINTS}"
        else:
            message = f"{where}: {exc.detail}"
        err = ApiError(exc.status_code, message, code="not_found" if exc.status_code == 404 else None)
        return JSONResponse(err.body(), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [{**e, "loc": tuple(e.get("loc", ()))[1:]} for e in exc.errors()]  # drop the leading "body"
        err = from_validation(errors, [])
        return JSONResponse(err.body(), status_code=400)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def create_app(state: ServerState) -> FastAPI:
    """The app serving `state`; its lifespan starts the model's loading and closes the engine at exit."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.start_loading()
        try:
            yield
        finally:
            state.close()

    app = FastAPI(title="codetune serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = state
    _install_error_handlers(app)
    if state.settings.api_key:
        app.add_middleware(BearerAuth, key=state.settings.api_key)
    app.include_router(openai_api.router)
    app.include_router(llamacpp_api.router)

    @app.get("/health")
    async def health() -> Response:
        if state.status != "ok":
            return JSONResponse({"status": state.status}, status_code=503, headers={"Retry-After": "1"})
        stats = state.backend().engine.stats()
        busy = int(stats["slots_busy"])
        return JSONResponse(
            {
                "status": "ok",
                "slots_idle": int(stats["slots_total"]) - busy,
                "slots_processing": busy,
                "queued": int(stats["queued"]),
                "engine": stats,
            }
        )

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(status_code=204)  # none: a browser's 404 for it would be a console error

    @app.get("/")
    async def playground() -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
