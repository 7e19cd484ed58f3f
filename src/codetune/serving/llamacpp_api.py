"""The llama.cpp server's POST /completion, for editor plugins that speak it (Continue's llama.cpp provider,
Tabby's `llama.cpp/completion`): `content`, `stop`, `tokens_predicted`, `tokens_evaluated`, `timings`;
streamed as lines `data: {...}`, the last with `"stop": true` and the totals (no [DONE], as llama.cpp).

POST /infill (llama.cpp's fill-in-the-middle) answers the same way: `input_prefix`, `input_suffix`, and
`prompt`, the middle's start, laid out as llama.cpp does for a model without repo/file tokens:
[input_extra]<fim_prefix>{input_prefix}<fim_suffix>{input_suffix}<fim_middle>{prompt}. Unlike llama.cpp, a
prompt longer than the context is refused (400), not cut, and a model without FIM answers 400, not 501."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from codetune.serving.engine import Infill
from codetune.serving.http_errors import ApiError, parse_body
from codetune.serving.openai_api import event_stream, gone, server_of, sse
from codetune.serving.plan import Sampling, check_fim, check_fim_layout, plan, resolve_model
from codetune.serving.relay import Choice, Relay, finish_unless_disconnected
from codetune.serving.schemas import LlamaCompletionRequest, LlamaInfillRequest

router = APIRouter()


def _timings(c: Choice | None, prompt_tokens: int) -> dict[str, float]:
    """llama.cpp's timings, measured here at the HTTP layer: the prompt phase runs from submission (queue
    wait included) to the first visible text, the predicted phase from there to the end."""
    if c is None or c.done_at is None:
        prompt_s, predicted_s, predicted = 0.0, 0.0, 0
    else:
        first = c.first_at if c.first_at is not None else c.done_at
        prompt_s, predicted_s, predicted = first - c.submitted_at, c.done_at - first, c.completion_tokens

    def rates(n: int, seconds: float) -> tuple[float, float]:
        per_token_ms = 1000 * seconds / n if n else 0.0
        per_second = n / seconds if n and seconds > 0 else 0.0
        return per_token_ms, per_second

    p_tok, p_rate = rates(prompt_tokens, prompt_s)
    g_tok, g_rate = rates(predicted, predicted_s)
    return {
        "prompt_n": prompt_tokens,
        "prompt_ms": 1000 * prompt_s,
        "prompt_per_token_ms": p_tok,
        "prompt_per_second": p_rate,
        "predicted_n": predicted,
        "predicted_ms": 1000 * predicted_s,
        "predicted_per_token_ms": g_tok,
        "predicted_per_second": g_rate,
    }


def _shown_prompt(req: LlamaCompletionRequest) -> str:
    """The prompt as the response reports it: the FIM layout as text for /infill."""
    if isinstance(req, LlamaInfillRequest):
        from codetune.fim import fim_prompt

        return req.extra + fim_prompt(req.input_prefix, req.input_suffix, "psm") + req.prompt
    return req.prompt


def _final(req: LlamaCompletionRequest, model: str, cap: int, c: Choice | None, prompt_tokens: int) -> dict:
    return {
        "index": 0,
        "content": "" if c is None else c.text,
        "stop": True,
        "model": model,
        "prompt": _shown_prompt(req),
        "tokens_predicted": 0 if c is None else c.completion_tokens,
        "tokens_evaluated": prompt_tokens,
        "stopped_eos": c is not None and c.stop_detail == "eos",
        "stopped_word": c is not None and c.stop_detail == "stop_string",
        "stopped_limit": c is None or c.finish_reason == "length",
        "stopping_word": "" if c is None else c.stop_word,
        "truncated": False,
        "generation_settings": {
            "n_predict": cap,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "seed": req.seed,
            "stop": req.stop,
            "stop_at_function_end": req.stop_at_function_end,
            "language": req.language,
            "ignore_eos": req.ignore_eos,
        },
        "timings": _timings(c, prompt_tokens),
    }


@router.post("/completion")
async def completion(request: Request) -> Response:
    state = server_of(request)
    b = state.backend()
    req = parse_body(LlamaCompletionRequest, await request.body())
    model = resolve_model(b, req.model)
    check_fim_layout(b, model, [req.prompt])  # e.g. Continue's default template, sent to a plain model
    return await _complete(request, state, b, req, model, req.prompt, None)


@router.post("/infill")
async def infill(request: Request) -> Response:
    state = server_of(request)
    b = state.backend()
    req = parse_body(LlamaInfillRequest, await request.body())
    model = resolve_model(b, req.model)
    check_fim(b, model, "input_suffix")
    fill = Infill(suffix=req.input_suffix, middle_start=req.prompt, extra=req.extra)
    return await _complete(request, state, b, req, model, req.input_prefix, fill)


async def _complete(
    request: Request, state: Any, b: Any, req: LlamaCompletionRequest, model: str, prompt: str, fill: Infill | None
) -> Response:
    """Answer /completion (`fill` None) or /infill: streamed lines, or one JSON object."""
    if req.n_predict == 0:  # llama.cpp evaluates the prompt and predicts nothing (clients use it to warm up)
        tokens = await asyncio.to_thread(b.engine.count_tokens, prompt, fill)
        return JSONResponse(_final(req, model, 0, None, tokens))
    sampling = Sampling(
        temperature=req.temperature,
        top_p=req.top_p,
        seed=None if req.seed == -1 else req.seed,
        stop=req.stop,
        stop_at_function_end=req.stop_at_function_end,
        language=req.language,
        ignore_eos=req.ignore_eos,
    )
    cap = None if req.n_predict == -1 else req.n_predict
    items = await plan(b, [prompt], n=1, cap=cap, cap_field="n_predict", sampling=sampling, infill=fill)
    relay = Relay(b.engine, model, state.settings.timeout_s)
    await relay.submit(items)
    max_tokens = items[0][2].max_tokens
    if req.stream:
        return event_stream(_chunks(relay, req, model, max_tokens))
    if not await finish_unless_disconnected(relay, request.receive):
        return gone()
    failure = relay.failure()
    if failure is not None:
        raise failure
    c = relay.choices[0]
    return JSONResponse(_final(req, model, max_tokens, c, c.prompt_tokens))


async def _chunks(relay: Relay, req: LlamaCompletionRequest, model: str, cap: int) -> AsyncIterator[str]:
    try:
        async for c, ev in relay.events():
            if ev.kind == "text":
                yield sse({"index": 0, "content": ev.text, "stop": False})
            elif c.finish_reason in ("stop", "length"):
                final: dict[str, Any] = _final(req, model, cap, c, c.prompt_tokens)
                final["content"] = ""  # the text went out in the chunks before
                yield sse(final)
            else:
                yield sse(relay.failure().body())  # type: ignore[union-attr]
    except ApiError as exc:  # the timeout
        yield sse(exc.body())
    finally:
        relay.cancel()
