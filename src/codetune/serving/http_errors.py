"""Every failed request as one JSON shape, `{"error": {"message", "type", "param", "code"}}` (OpenAI's),
with a one-line message that names the field and says what to send instead."""

from __future__ import annotations

import difflib
import json
from typing import Any

from codetune.serving.engine import (
    EngineError,
    InvalidRequest,
    NoFim,
    Overloaded,
    PromptTooLong,
    Stopped,
    UnknownModel,
)


class ApiError(Exception):
    """A request that fails with `status`; `message` is one line: what is wrong, then the fix."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.split("\n"))
        self.type, self.param, self.code = type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def loading() -> ApiError:
    return ApiError(
        503,
        "the model is still loading; retry when GET /health answers 200",
        type="unavailable_error",
        code="loading",
        headers={"Retry-After": "1"},
    )


def timed_out(seconds: float) -> ApiError:
    return ApiError(
        504,
        f"the request took longer than the server's --timeout of {seconds:g} s and was cancelled; "
        "ask for fewer tokens (max_tokens / n_predict), or restart the server with a longer --timeout",
        type="timeout_error",
        code="timeout",
    )


def from_engine(exc: EngineError) -> ApiError:
    """The HTTP meaning of an engine's refusal."""
    text = str(exc)
    if isinstance(exc, UnknownModel):
        return ApiError(404, text, param="model", code="model_not_found")
    if isinstance(exc, NoFim):
        return ApiError(400, text, param=exc.param, code="fim_not_supported")
    if isinstance(exc, PromptTooLong):
        return ApiError(400, text, param="prompt", code="context_length_exceeded")
    if isinstance(exc, InvalidRequest):
        return ApiError(400, text, code="invalid_value")
    if isinstance(exc, Overloaded):
        return ApiError(503, text, type="overloaded_error", code="overloaded", headers={"Retry-After": "1"})
    if isinstance(exc, Stopped):
        return ApiError(503, text, type="unavailable_error", code="shutting_down")
    status = int(getattr(exc, "http_status", 500))
    return ApiError(status, text, type="server_error" if status >= 500 else "invalid_request_error")


# What to send instead, per field, after the validator's own words.
_EXAMPLES = {
    "prompt": '"prompt": "def add(a, b):"',
    "messages": '"messages": [{"role": "user", "content": "Write add(a, b) in Python"}]',
    "max_tokens": '"max_tokens": 64',
    "n_predict": '"n_predict": 64 (-1 = up to the context)',
    "temperature": '"temperature": 0.2 (0 = greedy)',
    "top_p": '"top_p": 0.95',
    "n": '"n": 1',
    "seed": '"seed": 1234',
    "stop": '"stop": ["\\n\\n"]',
    "stream": '"stream": true',
    "model": '"model": "<an id from GET /v1/models>"',
}


# Fields that another API of this server names differently.
_OTHER_NAME = {"max_tokens": "n_predict", "n_predict": "max_tokens", "max_new_tokens": "max_tokens"}


def _where(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{item}]"]
        else:
            parts.append(str(item))
    return ".".join(parts)


def _one(err: dict[str, Any], fields: list[str]) -> tuple[str, str | None]:
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    where = _where(loc)
    top = str(loc[0]) if loc else None
    if kind == "extra_forbidden":
        other = _OTHER_NAME.get(str(loc[-1]))
        close = [other] if other in fields else difflib.get_close_matches(str(loc[-1]), fields, n=1)
        fix = f"did you mean `{close[0]}`?" if close else f"the fields are: {', '.join(fields)}"
        return f"unknown field `{where}`; {fix}", top
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if not loc:  # a check across fields: its message names them
        return msg[0].upper() + msg[1:] if msg else "invalid request", None
    if kind == "missing":
        example = _EXAMPLES.get(where)
        return f"`{where}` is required" + (f"; send it, e.g. {example}" if example else ""), top
    got = err.get("input")
    shown = json.dumps(got)[:60] if isinstance(got, str | int | float | bool | list | dict) else None
    text = f"`{where}`: {msg}" + (f" (got {shown})" if shown is not None and "got" not in msg else "")
    example = _EXAMPLES.get(where)
    if example and not msg.startswith(("send ", "unknown")) and "; " not in msg:
        text += f"; e.g. {example}"
    return text, top


def from_validation(errors: list[dict[str, Any]], fields: list[str]) -> ApiError:
    """One 400 for a body that failed validation: every problem on one line, the first field as `param`."""
    parts = [_one(err, fields) for err in errors]
    message = "; ".join(text for text, _ in parts[:3])
    if len(parts) > 3:
        message += f" (and {len(parts) - 3} more)"
    param = next((p for _, p in parts if p), None)
    return ApiError(400, message, param=param, code="invalid_value")


def parse_body(model_cls: Any, raw: bytes) -> Any:
    """The body as `model_cls`, whatever its Content-Type (curl -d sends a form type), or a 400."""
    from pydantic import ValidationError

    if not raw.strip():
        raise ApiError(400, 'the request has no body; send a JSON object, e.g. {"prompt": "def add(a, b):"}')
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            400, f"the body is not valid JSON ({exc}); send a JSON object", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the body is a JSON {type(data).__name__}; send a JSON object", code="invalid_json")
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc.errors(), sorted(model_cls.model_fields)) from None
