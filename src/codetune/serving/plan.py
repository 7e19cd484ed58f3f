"""From a validated request body to the engine requests it stands for: which model, how many tokens fit
the context, one SamplingParams per choice. Refusals are ApiErrors that name the field to change."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from codetune.serving.engine import Infill, NoFim, SamplingParams, fim_layout, no_fim_message
from codetune.serving.http_errors import ApiError, from_engine
from codetune.serving.state import Backend


def resolve_model(backend: Backend, name: str | None) -> str:
    """The served model a request names (the default, the base unless --default-model, when it names
    none); 404 for any other name."""
    if name is None or name == "":
        return backend.default_model or backend.base_name
    models = list(backend.engine.models)
    if name not in models:
        raise ApiError(
            404,
            f"model {name!r} is not served here; send `model` as one of: {', '.join(models)} (GET /v1/models)",
            param="model",
            code="model_not_found",
        )
    return name


@dataclass
class Sampling:
    """What every choice of a request shares."""

    temperature: float
    top_p: float
    seed: int | None
    stop: list[str]
    stop_at_function_end: bool
    language: str
    ignore_eos: bool
    heal: bool = True  # off for chat: the template's trailing newline is text the model was trained on
    # (never on for fill-in-the-middle: the FIM prompt ends in <fim_middle>, not in the code's whitespace)


def _cap(backend: Backend, prompt_tokens: int, cap: int | None, cap_field: str, what: str = "`prompt`") -> int:
    context = backend.context
    if prompt_tokens >= context:
        raise ApiError(
            400,
            f"{what} is {prompt_tokens} tokens and the context holds {context} (--context), leaving no room to "
            "generate; shorten the prompt, or restart the server with a larger --context",
            param="prompt",
            code="context_length_exceeded",
        )
    room = context - prompt_tokens
    if cap is None:
        return room
    if cap > room:
        raise ApiError(
            400,
            f"`{cap_field}` {cap} plus the prompt's {prompt_tokens} tokens exceeds the context of {context} "
            f"tokens; ask for at most {room}",
            param=cap_field,
            code="context_length_exceeded",
        )
    return cap


def check_fim(backend: Backend, model: str, field: str) -> None:
    """A 400 naming `field` when served model `model` does not take fill-in-the-middle requests."""
    engine = backend.engine
    if not engine.takes_fim(model):
        raise from_engine(NoFim(*no_fim_message(model, engine.fim_models, field), param=field))


def check_fim_layout(backend: Backend, model: str, prompts: list[str]) -> None:
    """A 400 (param `prompt`) when a completion prompt is written in the FIM layout for a model without FIM:
    its sentinels would be rows that model never trained (or, with no FIM model served, plain text)."""
    engine = backend.engine
    if not engine.takes_fim(model) and any(fim_layout(p) for p in prompts):
        raise from_engine(NoFim(*no_fim_message(model, engine.fim_models, "prompt"), param="prompt"))


async def plan(
    backend: Backend,
    prompts: list[str],
    *,
    n: int,
    cap: int | None,
    cap_field: str,
    sampling: Sampling,
    infill: Infill | None = None,
) -> list[tuple[int, str, SamplingParams]]:
    """(prompt index, prompt, params) for every choice: `n` per prompt, in OpenAI's order (prompt-major).

    Args:
        cap: new tokens asked for; None = as many as the context leaves.
        cap_field: the body's name for `cap`, for the error message.
        infill: fill in the middle before `infill.suffix` (each prompt is a prefix); `check_fim` first.
    """
    items = []
    for i, prompt in enumerate(prompts):
        tokens = await asyncio.to_thread(backend.engine.count_tokens, prompt, infill)
        what = "the fill-in-the-middle prompt (prefix and suffix)" if infill is not None else "`prompt`"
        max_tokens = _cap(backend, tokens, cap, cap_field, what)
        for j in range(n):
            params = SamplingParams(
                max_tokens=max_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                seed=sampling.seed,
                stop=list(sampling.stop),
                stop_at_function_end=sampling.stop_at_function_end,
                language=sampling.language,
                ignore_eos=sampling.ignore_eos,
                choice=j,  # the engine seeds each choice apart from the one seed
                heal=sampling.heal and infill is None,
                infill=infill,
            )
            items.append((i, prompt, params))
    return items
