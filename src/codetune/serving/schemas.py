"""The request bodies `codetune serve` accepts, as pydantic models: the OpenAI completions and chat APIs
and the llama.cpp server's `/completion`.

Unknown fields are refused (a misspelt `max_token` must not silently fall back to a default). Fields that
other servers know but this one does not implement (penalties, top-k, logprobs, ...) are accepted only at
the value that turns them off, so a client that sends its defaults works and one that asks for the feature
is told it is missing. A JSON `null` means "the default" for every field, as most clients send it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

MAX_CHOICES = 128  # `n` per prompt: more than any editor asks for, few enough to fit a queue


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


def _check_language(value: str) -> str:
    from codetune import languages

    lang = languages.lookup(value)
    if lang is None:
        raise ValueError(f"unknown language {value!r}; use one of: {', '.join(languages.names())}")
    return lang.name


def _stop_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError('send a string or a list of strings, e.g. ["\\n\\n"]')
    if any(s == "" for s in value):
        raise ValueError("an empty stop string would stop at once; leave it out")
    return value


class _Extensions(_Body):
    """codetune's fields, on every endpoint."""

    stop_at_function_end: bool = Field(
        False, description="stop where the function the prompt opens ends (the language's stop rule)"
    )
    language: str = Field("python", description="the prompt's language, for stop_at_function_end")
    ignore_eos: bool = Field(False, description="keep generating past the end-of-text token (vLLM's field)")

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        return _check_language(v)


def _off(name: str, value: Any, off: Any, ok: Any = None) -> Any:
    """A field this server does not implement, accepted only at the value that disables it."""
    if not (ok(value) if ok is not None else value == off):
        raise ValueError(f"{value!r} is not supported by codetune serve; leave `{name}` out or send {off!r}")
    return value


class StreamOptions(_Body):
    include_usage: bool = Field(False, description="a last chunk with `usage` before [DONE]")
    continuous_usage_stats: bool = Field(False, description="accepted for vLLM clients; ignored")


class _OpenAISampling(_Extensions):
    """What the completions and chat bodies share."""

    model: str | None = Field(None, description="the base model's name or an adapter's (GET /v1/models)")
    temperature: float = Field(1.0, ge=0, le=2, description="0 = greedy")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling")
    n: int = Field(1, ge=1, le=MAX_CHOICES, description="completions per prompt")
    stop: list[str] = Field(default_factory=list, description="strings that end the text (not included)")
    seed: int | None = Field(None, description="same seed, same request: the same text")
    stream: bool = Field(False, description="server-sent events ending with data: [DONE]")
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = Field(None, description="accepted; ignored")

    @field_validator("stop", mode="before")
    @classmethod
    def _stop(cls, v: Any) -> list[str]:
        return _stop_list(v)

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, v: float, info: ValidationInfo) -> float:
        return _off(info.field_name, v, 0.0)

    @field_validator("logit_bias")
    @classmethod
    def _no_bias(cls, v: dict, info: ValidationInfo) -> dict:
        return _off(info.field_name, v, {}, ok=lambda b: not b)

    @model_validator(mode="after")
    def _stream_options(self) -> _OpenAISampling:
        if self.stream_options is not None and not self.stream:
            raise ValueError("`stream_options` needs `stream`: true")
        return self

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(_OpenAISampling):
    """POST /v1/completions."""

    # Before `prompt`, whose validator reads it: with a suffix, an empty prompt is a cursor at the file's start.
    suffix: str | None = Field(
        None,
        description="the text after the cursor: the model fills in the middle (a model trained with FIM tokens)",
    )
    prompt: list[str] = Field(description="the text to continue: a string, or a list of strings (one each)")
    max_tokens: int = Field(16, ge=1, description="new tokens at most (OpenAI's default: 16)")
    echo: bool = Field(False, description="the prompt in front of each choice's text")
    best_of: int | None = None
    logprobs: int | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, v: Any, info: ValidationInfo) -> list[str]:
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list) and v and all(isinstance(p, int) or isinstance(p, list) for p in v):
            raise ValueError("token ids are not supported; send the prompt as text")
        if not isinstance(v, list) or not all(isinstance(p, str) for p in v):
            raise ValueError('send a string or a list of strings, e.g. "def add(a, b):"')
        if not v:
            raise ValueError("the list is empty; send at least one prompt")
        if any(p == "" for p in v) and not info.data.get("suffix"):
            raise ValueError('a prompt is empty; send some text, e.g. "def add(a, b):"')
        return v

    @model_validator(mode="after")
    def _echo_suffix(self) -> CompletionRequest:
        if self.echo and self.suffix:
            raise ValueError("`echo` with a `suffix` is not supported; leave `echo` out (the text is the middle)")
        return self

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, v: int) -> int:
        raise ValueError("log probabilities are not returned by codetune serve; leave `logprobs` out")

    @model_validator(mode="after")
    def _best_of(self) -> CompletionRequest:
        if self.best_of is not None and self.best_of != self.n:
            raise ValueError(f"`best_of` {self.best_of} is not supported (only best_of = n); leave it out")
        return self


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str = Field("", description="text, or a list of text parts (joined)")
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _content(cls, v: Any) -> str:
        if isinstance(v, str):
            return v
        if isinstance(v, list) and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in v
        ):
            return "".join(p["text"] for p in v)
        raise ValueError('send a string, or a list of {"type": "text", "text": "..."} parts (text only)')


class ChatRequest(_OpenAISampling):
    """POST /v1/chat/completions: the messages through the tokenizer's chat template."""

    messages: list[ChatMessage] = Field(min_length=1, description="the conversation so far")
    max_tokens: int | None = Field(None, ge=1, description="new tokens at most; default: up to the context")
    max_completion_tokens: int | None = Field(None, ge=1, description="the newer name of max_tokens")
    logprobs: bool | None = None
    top_logprobs: int | None = None

    @field_validator("logprobs", "top_logprobs")
    @classmethod
    def _no_logprobs(cls, v: Any, info: ValidationInfo) -> Any:
        return _off(info.field_name, v, False if info.field_name == "logprobs" else 0)

    @model_validator(mode="after")
    def _one_cap(self) -> ChatRequest:
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            if self.max_tokens != self.max_completion_tokens:
                raise ValueError("`max_tokens` and `max_completion_tokens` differ; send one of them")
        return self

    @property
    def token_cap(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def template_messages(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


# llama.cpp's sampling fields this server does not implement, and the value of each that turns it off
# (llama.cpp: top_k <= 0 keeps the whole vocabulary).
_LLAMA_OFF: dict[str, tuple[Any, Any]] = {
    "top_k": (0, lambda v: v <= 0),
    "min_p": (0.0, None),
    "typical_p": (1.0, None),
    "tfs_z": (1.0, None),
    "repeat_penalty": (1.0, None),
    "presence_penalty": (0.0, None),
    "frequency_penalty": (0.0, None),
    "dry_multiplier": (0.0, None),
    "xtc_probability": (0.0, None),
    "dynatemp_range": (0.0, None),
    "mirostat": (0, None),
    "n_probs": (0, None),
}


class LlamaCompletionRequest(_Extensions):
    """POST /completion, as the llama.cpp server takes it (its defaults for temperature and top_p)."""

    prompt: str = Field(description="the text to continue")
    n_predict: int = Field(-1, ge=-1, description="new tokens at most; -1 = up to the context")
    stream: bool = Field(False, description="lines `data: {...}` as llama.cpp sends them")
    stop: list[str] = Field(default_factory=list, description="strings that end the text (not included)")
    temperature: float = Field(0.8, ge=0, description="0 = greedy")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling")
    seed: int = Field(-1, ge=-1, description="-1 = a random seed")
    model: str | None = Field(None, description="codetune: the base model's name or an adapter's")
    # Accepted and ignored: they tune llama.cpp's own cache and slots, not what is generated.
    cache_prompt: bool | None = None
    n_keep: int | None = None
    id_slot: int | None = None
    samplers: list[str] | None = None
    penalty_last_n: int | None = None
    repeat_last_n: int | None = None
    top_k: int | None = None
    min_p: float | None = None
    typical_p: float | None = None
    tfs_z: float | None = None
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    dry_multiplier: float | None = None
    xtc_probability: float | None = None
    dynatemp_range: float | None = None
    mirostat: int | None = None
    n_probs: int | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, v: Any) -> str:
        if isinstance(v, list):
            raise ValueError("send one prompt as a string (lists of prompts or token ids are not supported)")
        if not isinstance(v, str):
            raise ValueError('send a string, e.g. "def add(a, b):"')
        if v == "":
            raise ValueError('the prompt is empty; send some text, e.g. "def add(a, b):"')
        return v

    @field_validator("stop", mode="before")
    @classmethod
    def _stop(cls, v: Any) -> list[str]:
        return _stop_list(v)

    @field_validator(*_LLAMA_OFF)
    @classmethod
    def _unsupported(cls, v: Any, info: ValidationInfo) -> Any:
        off, ok = _LLAMA_OFF[info.field_name]
        return _off(info.field_name, v, off, ok)


class InfillChunk(BaseModel):
    """One piece of llama.cpp's `input_extra`: context from another file (other keys, e.g. `time`, ignored)."""

    model_config = ConfigDict(extra="ignore")

    text: str = Field(description="the context's text")
    filename: str = Field("tmp", description="where it comes from (llama.cpp's default: tmp)")


# llama.cpp's separator before each `input_extra` chunk when the model has no repo/file tokens.
SNIPPET_SEPARATOR = "\n\n--- snippet ---\n\n"


class LlamaInfillRequest(LlamaCompletionRequest):
    """POST /infill, as the llama.cpp server takes it: `input_prefix` and `input_suffix` around the cursor,
    `prompt` (optional) the start of the middle, read after <fim_middle>; every /completion option."""

    input_prefix: str = Field(description="the code before the cursor (may be empty)")
    input_suffix: str = Field(description="the code after the cursor (may be empty)")
    input_extra: list[InfillChunk] = Field(
        default_factory=list, description='context read before the prefix: [{"filename": ..., "text": ...}]'
    )
    prompt: str = Field("", description="the middle's start, after <fim_middle> (llama.cpp's `prompt`)")

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError('send a string: the start of the middle, e.g. "return "')
        return v

    @property
    def extra(self) -> str:
        """`input_extra` as the text read before <fim_prefix> (llama.cpp's layout without repo tokens)."""
        return "".join(SNIPPET_SEPARATOR + chunk.text for chunk in self.input_extra)
