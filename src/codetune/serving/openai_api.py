"""OpenAI's API: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (streamed or not).

The adapter is chosen per request by `model` (vLLM's convention); choices are ordered prompt-major.
A completion with a `suffix` fills in the middle (the served model's FIM template, `codetune.fim`): only
models trained with the FIM tokens take one (`"fim": true` in GET /v1/models), the others answer 400.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from codetune.serving.engine import Infill
from codetune.serving.http_errors import ApiError, parse_body
from codetune.serving.plan import Sampling, check_fim, check_fim_layout, plan, resolve_model
from codetune.serving.relay import Choice, Relay, finish_unless_disconnected
from codetune.serving.schemas import ChatRequest, CompletionRequest
from codetune.serving.state import Backend, ServerState

router = APIRouter()

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE = "data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def event_stream(chunks: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE_HEADERS)


def server_of(request: Request) -> ServerState:
    return request.app.state.server


def gone() -> Response:
    """The answer to a client that has already left (no one reads it; the status shows in access logs)."""
    return Response(status_code=499)


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    b = server_of(request).backend()
    data = []
    for name in b.engine.models:
        adapter = name != b.base_name
        data.append(
            {
                "id": name,
                "object": "model",
                "created": b.created,
                "owned_by": "codetune",
                "root": b.adapters.get(name, name) if adapter else b.base_name,
                "parent": b.base_name if adapter else None,
                "max_model_len": b.context,
                "fim": b.engine.takes_fim(name),  # codetune: takes `suffix` (and /infill)
            }
        )
    return {"object": "list", "data": data}


def _sampling(req: CompletionRequest | ChatRequest) -> Sampling:
    return Sampling(
        heal=isinstance(req, CompletionRequest),
        temperature=req.temperature,
        top_p=req.top_p,
        seed=req.seed,
        stop=req.stop,
        stop_at_function_end=req.stop_at_function_end,
        language=req.language,
        ignore_eos=req.ignore_eos,
    )


@dataclass
class _Meta:
    """The fields every response and chunk of one request repeats."""

    id: str
    object: str
    model: str
    created: int

    def wrap(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }


async def _start(request: Request, body_cls: Any) -> tuple[ServerState, Backend, Any, str]:
    state = server_of(request)
    backend = state.backend()
    req = parse_body(body_cls, await request.body())
    return state, backend, req, resolve_model(backend, req.model)


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    state, b, req, model = await _start(request, CompletionRequest)
    infill = _infill(b, req, model)
    items = await plan(
        b, req.prompt, n=req.n, cap=req.max_tokens, cap_field="max_tokens", sampling=_sampling(req), infill=infill
    )
    meta = _Meta(f"cmpl-{uuid.uuid4().hex}", "text_completion", model, int(time.time()))

    def choice(c: Choice) -> dict[str, Any]:
        text = (c.prompt if req.echo else "") + c.text
        return {"index": c.index, "text": text, "logprobs": None, "finish_reason": c.finish_reason}

    return await _answer(request, state, b, items, meta, req.stream, _completion_chunks, choice, req)


def _infill(b: Backend, req: CompletionRequest, model: str) -> Infill | None:
    """The middle a completion asks for: a `suffix` (an empty one only on a FIM model: the file ends at the
    cursor), or None (left to right)."""
    if req.suffix is None or (req.suffix == "" and not b.engine.takes_fim(model)):
        check_fim_layout(b, model, req.prompt)  # e.g. Continue's default template, sent to a plain model
        return None
    check_fim(b, model, "suffix")
    return Infill(suffix=req.suffix)


async def _completion_chunks(relay: Relay, req: CompletionRequest, meta: _Meta) -> AsyncIterator[str]:
    def chunk(c: Choice, text: str, finish: str | None = None) -> str:
        return sse(meta.wrap([{"index": c.index, "text": text, "logprobs": None, "finish_reason": finish}]))

    first = [chunk(c, c.prompt) for c in relay.choices] if req.echo else []
    async for line in _sse_stream(relay, req, meta, first, chunk, lambda text: text, ""):
        yield line


async def _sse_stream(
    relay: Relay, req: Any, meta: _Meta, first: list[str], chunk: Any, payload: Any, empty: Any
) -> AsyncIterator[str]:
    """The SSE lines of a streamed request: `first`, then `chunk(c, payload(text))` per text event and
    `chunk(c, empty, finish)` per finished choice, an error event on failure or timeout, usage, `[DONE]`."""
    try:
        for line in first:
            yield line
        async for c, ev in relay.events():
            if ev.kind == "text":
                yield chunk(c, payload(ev.text))
            elif c.finish_reason in ("stop", "length"):
                yield chunk(c, empty, c.finish_reason)
            else:
                yield sse(relay.failure().body())  # type: ignore[union-attr]
                break
        else:
            if req.include_usage:
                yield sse(meta.wrap([], usage=relay.usage()))
    except ApiError as exc:  # the timeout
        yield sse(exc.body())
    finally:
        relay.cancel()  # the client left (this generator is cancelled), or anything still running
    yield DONE


async def _chat_prompt(b: Backend, req: ChatRequest) -> str:
    """The messages through the tokenizer's chat template, ending where the assistant's turn begins."""
    tok = b.tokenizer
    if not getattr(tok, "chat_template", None):
        raise ApiError(
            400,
            f"model {b.base_name!r} has no chat template (its tokenizer has no chat_template); send a plain "
            "prompt to POST /v1/completions, or serve a model whose tokenizer_config.json has one",
            param="messages",
            code="no_chat_template",
        )
    from jinja2 import TemplateError

    try:
        return await asyncio.to_thread(
            tok.apply_chat_template, req.template_messages(), tokenize=False, add_generation_prompt=True
        )
    except (TemplateError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ApiError(
            400, f"the model's chat template refused `messages`: {first}", param="messages", code="invalid_value"
        ) from None


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    state, b, req, model = await _start(request, ChatRequest)
    prompt = await _chat_prompt(b, req)
    cap_field = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
    items = await plan(b, [prompt], n=req.n, cap=req.token_cap, cap_field=cap_field, sampling=_sampling(req))
    meta = _Meta(f"chatcmpl-{uuid.uuid4().hex}", "chat.completion", model, int(time.time()))
    if req.stream:
        meta.object = "chat.completion.chunk"

    def choice(c: Choice) -> dict[str, Any]:
        message = {"role": "assistant", "content": c.text}
        return {"index": c.index, "message": message, "logprobs": None, "finish_reason": c.finish_reason}

    return await _answer(request, state, b, items, meta, req.stream, _chat_chunks, choice, req)


async def _answer(
    request: Request,
    state: ServerState,
    b: Backend,
    items: Any,
    meta: _Meta,
    stream: bool,
    chunks: Any,
    choice: Any,
    req: Any,
) -> Response:
    """Submit the planned rows; stream `chunks(relay, req, meta)`, or wait and answer with every `choice(c)`."""
    relay = Relay(b.engine, meta.model, state.settings.timeout_s)
    await relay.submit(items)
    if stream:
        return event_stream(chunks(relay, req, meta))
    if not await finish_unless_disconnected(relay, request.receive):
        return gone()
    failure = relay.failure()
    if failure is not None:
        raise failure
    return JSONResponse(meta.wrap([choice(c) for c in relay.choices], usage=relay.usage()))


async def _chat_chunks(relay: Relay, req: ChatRequest, meta: _Meta) -> AsyncIterator[str]:
    def chunk(c: Choice, delta: dict[str, str], finish: str | None = None) -> str:
        return sse(meta.wrap([{"index": c.index, "delta": delta, "logprobs": None, "finish_reason": finish}]))

    first = [chunk(c, {"role": "assistant", "content": ""}) for c in relay.choices]
    async for line in _sse_stream(relay, req, meta, first, chunk, lambda text: {"content": text}, {}):
        yield line
