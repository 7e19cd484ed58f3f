"""The serving engine: requests in, text events out, decoded by continuous batching on one thread.

One background thread loops: admit queued requests into free row slots (each prompt prefilled alone
and copied into its slot of `codetune.kv_cache.SlotCache`), run ONE decoding forward over every active
row, hand each row its token, free the rows that finished or were cancelled. Rows of different requests,
lengths, adapters and sampling parameters share that forward:

* lengths: each row has its own positions and a mask over the cache (as `codetune.decoding` does);
* adapters: one `PeftModel` holds every adapter over one copy of the base weights, and peft applies each
  row's own adapter in the same forward (`adapter_names=[...]`, "__base__" for the plain base);
* sampling: greedy or temperature/top-p per row, each row from its own seeded generator
  (`decoding.pick_tokens`), so a request's tokens do not depend on which rows shared its steps (up to
  the floating-point differences between batch shapes).

A fill-in-the-middle request (`SamplingParams.infill`) is read as the PSM prompt `codetune.fim.fim_ids`
builds (no token healing) and its middle ends at EOS or any sentinel (`fim.fim_stop_ids`); only the
models named in `fim_models` take one. Sentinels added to the vocabulary for a FIM adapter are rows the
other models never trained, so those models never pick them.

A request submitted while others decode joins at the next step. Text reaches the request's callback
as `Event`s, in order, from the engine thread (`engine_text.TextStream` decides what is safe to show).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from codetune import languages
from codetune.errors import CodetuneError, ModelLoadError

log = logging.getLogger(__name__)

BASE = "__base__"  # peft's adapter name for rows that run the base model alone


@dataclass(frozen=True)
class Infill:
    """A fill-in-the-middle request: the prompt submitted with it is the text before the cursor."""

    suffix: str  # the text after the cursor
    middle_start: str = ""  # llama.cpp's /infill `prompt`: the middle's start, read after <fim_middle>
    extra: str = ""  # context read before <fim_prefix> (llama.cpp's `input_extra`, joined)


@dataclass
class SamplingParams:
    """How one request is decoded."""

    max_tokens: int = 16  # new tokens at most (the HTTP layer checks prompt + max_tokens <= context)
    temperature: float = 1.0  # 0 = greedy (argmax)
    top_p: float = 1.0
    seed: int | None = None  # same seed + same request => the same tokens; None: a fresh random seed
    stop: list[str] = field(default_factory=list)  # the text is cut before the first match of any
    stop_at_function_end: bool = False  # codetune extension: the language's stop rule (codetune.stopping)
    language: str = "python"  # for stop_at_function_end
    ignore_eos: bool = False  # (vLLM's extension) go on past EOS: exactly max_tokens tokens
    choice: int = 0  # which of a request's n choices: each choice is seeded apart from the same seed
    heal: bool = True  # token healing of a trailing newline + indentation (off: the prompt is read as sent)
    infill: Infill | None = None  # fill in the middle before `infill.suffix` (never healed)


@dataclass
class Event:
    """What a request's callback receives, in order: "text"* then "done"; or "error", which also ends it."""

    kind: str  # "text" | "done" | "error"
    text: str = ""  # "text": new visible text (never part of a stop string, never half a UTF-8 character)
    finish_reason: str | None = None  # "done": "stop" (EOS, stop string, function end) | "length" | "cancelled"
    prompt_tokens: int = 0  # "done"
    completion_tokens: int = 0  # "done": tokens generated (what `usage` reports)
    stop_detail: str | None = None  # "done" "stop": "eos" | "stop_string" | "function_end"
    stop_word: str = ""  # "done" at a stop string: which one
    message: str = ""  # "error"


class EngineError(CodetuneError):
    """A request the engine refuses; `http_status` is the status an HTTP layer answers with."""

    http_status = 500


class UnknownModel(EngineError):
    """The model or adapter name is not loaded."""

    http_status = 404


class InvalidRequest(EngineError):
    """A sampling parameter out of range or an unknown language."""

    http_status = 400


class NoFim(InvalidRequest):
    """A fill-in-the-middle request (a suffix, or a prompt in the FIM layout) for a model not trained for it;
    `param` names the request field that asked for it."""

    def __init__(self, message: str, hint: str | None = None, param: str = "suffix") -> None:
        super().__init__(message, hint)
        self.param = param


class PromptTooLong(EngineError):
    """Prompt tokens + max_tokens exceed the context."""

    http_status = 400


class Overloaded(EngineError):
    """Every slot is busy and the queue is full."""

    http_status = 503


class Stopped(EngineError):
    """The engine is shutting down."""

    http_status = 503


class Handle:
    """A submitted request: `cancel()` frees its slot at the next step ("done", "cancelled")."""

    def __init__(self, engine: Engine, request: _Request) -> None:
        self._engine, self._request = engine, request

    @property
    def prompt_tokens(self) -> int:
        return self._request.prompt_tokens

    def cancel(self) -> None:
        self._engine._cancel(self._request)


@dataclass(eq=False)
class _Request:
    params: SamplingParams
    adapter: str  # peft adapter name, BASE for the base model
    ids: list[int]  # the token ids the model reads (the prompt without its healed run; never empty)
    prompt_tokens: int  # the prompt's own token count, as sent
    stream: Any  # engine_text.TextStream: generated ids and text
    gen: Any  # torch.Generator, None when greedy
    on_event: Callable[[Event], None]
    stop_ids: frozenset[int] = frozenset()  # tokens that end it whatever ignore_eos says (FIM's sentinels)
    cancelled: bool = False
    ended: bool = False  # its last event ("done" or "error") was sent

    @property
    def cached(self) -> int:
        """Columns of its slot in the cache: the prompt and every generated token but the newest."""
        return len(self.ids) + len(self.stream.ids) - 1


class Engine:
    """Serves completions of one base model and its adapters, batching every request in flight.

    Args:
        model: the base model, or a `PeftModel` with every adapter loaded (`serving.adapters`).
        tokenizer: its tokenizer.
        base_name: the name that selects the base model (the `--model` value).
        adapters: the adapter names loaded in the PeftModel, each selectable by name.
        max_batch: rows decoded together (request slots).
        max_queue: requests waiting beyond the slots; one more is `Overloaded`.
        context: prompt + new tokens at most, per request (capped at the model's position limit).
        device: where the model is ("cpu", "cuda").
        precision: "fp32" or "bf16" (autocast). With bf16 the frozen Linear weights are stored in bf16 once
            (`models.cast_frozen_linears`): autocast would cast them at every step, to the same values.
        fim_models: the served names (the base's and adapters') that take fill-in-the-middle requests.
        untrained_ids: token ids added to the vocabulary for the FIM models (their sentinels), whose rows
            the other models never trained: rows of those models never pick them.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        base_name: str,
        adapters: Sequence[str] = (),
        max_batch: int = 16,
        max_queue: int = 64,
        context: int = 2048,
        device: str = "cpu",
        precision: str = "fp32",
        fim_models: Sequence[str] = (),
        untrained_ids: Sequence[int] = (),
    ) -> None:
        from codetune import decoding
        from codetune.serving.healing import Healer

        self.model, self.tokenizer, self.base_name = model.eval(), tokenizer, base_name
        self.adapters = list(adapters)
        self.max_batch, self.max_queue, self.device, self.precision = max_batch, max_queue, device, precision
        if max_batch < 1 or max_queue < 0:
            raise ValueError(f"max_batch must be >= 1 and max_queue >= 0, got {max_batch} and {max_queue}")
        self._peft = hasattr(model, "peft_config")
        missing = [a for a in self.adapters if not self._peft or a not in model.peft_config]
        if missing:
            raise ModelLoadError(
                f"adapters {missing} are not loaded in the model", "load them with serving.adapters"
            )
        base = model.get_base_model() if self._peft else model
        limit = getattr(base.config, "max_position_embeddings", None)
        self.context = min(context, limit) if limit else context
        why = decoding.unsupported(model, self.context)
        if why is not None:
            raise ModelLoadError(
                f"the serving engine cannot batch this model: {why}", "serve a llama-family model"
            )
        if precision == "bf16":
            from codetune.models import cast_frozen_linears

            cast_frozen_linears(base, "bf16")
        self._texts = decoding.token_texts(tokenizer)
        self._healer = Healer(self._texts)
        self._watches: dict[str, Any] = {}
        self._eos = _eos_ids(model, tokenizer)
        self._set_fim(fim_models, untrained_ids)
        self._mask_dtype = decoding.mask_dtype(model)
        self._cond = threading.Condition()
        # Callers tokenize on their own threads; a fast tokenizer must not be entered by two at once.
        self._tokenize_lock = threading.Lock()
        self._queue: deque[_Request] = deque()
        self._rows: list[_Request] = []  # engine thread only: slot i of the cache holds _rows[i]
        self._cache: Any = None
        self._outstanding = 0  # submitted and not yet done: at most max_batch + max_queue
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._steps = self._max_rows = self._done = 0

    # ------------------------------------------------------------------ public

    @property
    def models(self) -> list[str]:
        return [self.base_name, *self.adapters]

    @property
    def fim_models(self) -> list[str]:
        """The served names that take fill-in-the-middle requests."""
        return [m for m in self.models if self._adapter(m) in self._fim]

    def takes_fim(self, model: str | None) -> bool:
        """Whether `model` (a served name; None: the base) takes fill-in-the-middle requests."""
        return self._adapter(model) in self._fim

    def start(self) -> None:
        """Start the decoding thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="codetune-engine", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the thread; every request still queued or decoding gets "done" with "cancelled"."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread = self._thread
        if thread is None:
            self._drain()
        elif thread is not threading.current_thread():
            thread.join()

    def count_tokens(self, prompt: str, infill: Infill | None = None) -> int:
        """The prompt's tokens as the model reads it (`infill`: the whole FIM prompt)."""
        with self._tokenize_lock:
            return len(self._fim_ids(prompt, infill) if infill is not None else self._encode(prompt))

    def submit(
        self,
        prompt: str,
        params: SamplingParams,
        *,
        model: str | None = None,
        on_event: Callable[[Event], None],
    ) -> Handle:
        """Queue a completion of `prompt`; its events go to `on_event` from the engine thread.

        Raises:
            UnknownModel, InvalidRequest, PromptTooLong, Overloaded, Stopped.
        """
        if self._stopping:
            raise Stopped("the server is shutting down", "retry against a running server")
        adapter = self._adapter(model)
        self._check(params)
        if adapter not in self._fim and params.infill is not None:
            raise NoFim(*no_fim_message(model or self.base_name, self.fim_models, "suffix"))
        request = self._request(prompt, params, adapter, on_event)
        with self._cond:
            if self._stopping:
                raise Stopped("the server is shutting down", "retry against a running server")
            if self._outstanding >= self.max_batch + self.max_queue:
                raise Overloaded(
                    f"all {self.max_batch} slots are busy and {self.max_queue} requests are waiting",
                    "retry later, or start the server with a larger --max-queue or --max-batch",
                )
            self._outstanding += 1
            self._queue.append(request)
            self._cond.notify()
        return Handle(self, request)

    def stats(self) -> dict[str, int]:
        with self._cond:
            queued = len(self._queue)
            busy = self._outstanding - queued
        return {
            "slots_total": self.max_batch,
            "slots_busy": busy,
            "queued": queued,
            "steps": self._steps,
            "max_rows_in_step": self._max_rows,
            "requests_done": self._done,
        }

    # ------------------------------------------------------------------ submitting (caller threads)

    def _adapter(self, model: str | None) -> str:
        if model is None or model == self.base_name:
            return BASE
        if model in self.adapters:
            return model
        raise UnknownModel(f"model '{model}' is not loaded", f"use one of: {', '.join(self.models)}")

    def _check(self, p: SamplingParams) -> None:
        problems = []
        if not isinstance(p.max_tokens, int) or p.max_tokens < 1:
            problems.append(f"`max_tokens` must be an integer >= 1, got {p.max_tokens!r}")
        if not p.temperature >= 0:
            problems.append(f"`temperature` must be >= 0, got {p.temperature!r}")
        if not 0 < p.top_p <= 1:
            problems.append(f"`top_p` must be in (0, 1], got {p.top_p!r}")
        if p.stop_at_function_end and languages.lookup(p.language) is None:
            problems.append(
                f"`language` '{p.language}' has no stop rule; use one of: {', '.join(languages.names())}"
            )
        if problems:
            raise InvalidRequest("; ".join(problems))

    def _request(self, prompt: str, params: SamplingParams, adapter: str, on_event: Callable) -> _Request:
        import torch

        from codetune import decoding
        from codetune.serving.engine_text import TextStream
        from codetune.serving.healing import split_prompt

        infill = params.infill
        read, heal = split_prompt(prompt) if params.heal and infill is None else (prompt, "")
        with self._tokenize_lock:
            if infill is not None:  # the middle continues the prefix (and the middle's start, if sent)
                ids = self._fim_ids(prompt, infill)
                n_prompt, read = len(ids), prompt + infill.middle_start
            else:
                n_prompt = len(self._encode(prompt))
                ids = self._encode(read) if heal else self._encode(prompt)
            watch = self._watch(params.language) if params.stop_at_function_end else None
        ids = ids or decoding.start_ids(self.tokenizer)
        need = max(n_prompt, len(ids)) + params.max_tokens
        if need > self.context:
            raise PromptTooLong(
                f"the prompt has {n_prompt} tokens and `max_tokens` is {params.max_tokens}: "
                f"{need} > the context of {self.context} tokens",
                "shorten the prompt or lower max_tokens",
            )
        gen = None
        if params.temperature > 0:
            seed = secrets.randbits(63) if params.seed is None else params.seed
            gen = torch.Generator(device=self.device).manual_seed(decoding.row_seed(seed, 0, params.choice))
        language = params.language if params.stop_at_function_end else None
        line_blank = watch.start(read) if watch is not None else False
        stream = TextStream(
            self.tokenizer, read if infill is not None else prompt, heal, params.stop, language, watch, line_blank
        )
        stops = self._fim_stops if adapter in self._fim else frozenset()  # a FIM model writes no sentinel
        return _Request(params, adapter, ids, n_prompt, stream, gen, on_event, stop_ids=stops)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text)["input_ids"]

    def _set_fim(self, fim_models: Sequence[str], untrained_ids: Sequence[int]) -> None:
        from codetune import fim

        unknown = [m for m in fim_models if m not in self.models]
        if unknown:
            raise ModelLoadError(f"fim_models {unknown} are not served", f"name some of: {', '.join(self.models)}")
        tokens = fim.fim_tokens(self.tokenizer)
        if fim_models and tokens is None:
            raise ModelLoadError(
                f"models {list(fim_models)} are to take fill-in-the-middle requests, but the tokenizer has no "
                f"{'/'.join(fim.SENTINELS)}",
                "load FIM adapters with serving.adapters.load_served",
            )
        self._fim_tokens = tokens
        self._fim = {BASE if m == self.base_name else m for m in fim_models}
        self._fim_stops = frozenset(fim.fim_stop_ids(self.tokenizer)) if tokens is not None else frozenset()
        self._untrained = sorted(set(untrained_ids))

    def _fim_ids(self, prefix: str, infill: Infill) -> list[int]:
        """The PSM prompt: [BOS] [extra] <fim_prefix> prefix <fim_suffix> suffix <fim_middle> [middle_start],
        each piece tokenized as plain text (a sentinel written in the code stays text); llama.cpp's layout."""
        from codetune import fim

        if self._fim_tokens is None:
            raise NoFim(*no_fim_message(self.base_name, [], "suffix"))
        ids = fim.fim_ids(self.tokenizer, prefix, infill.suffix, "psm")
        at = ids.index(self._fim_tokens.prefix)
        return (
            ids[:at]
            + fim.text_ids(self.tokenizer, infill.extra)
            + ids[at:]
            + fim.text_ids(self.tokenizer, infill.middle_start)
        )

    def _watch(self, language: str) -> Any:
        from codetune.decoding import StopWatch

        if language not in self._watches:
            self._watches[language] = StopWatch(self.tokenizer, language, self._texts)
        return self._watches[language]

    def _cancel(self, request: _Request) -> None:
        with self._cond:
            request.cancelled = True
            self._cond.notify()

    # ------------------------------------------------------------------ the engine thread

    def _run(self) -> None:
        from codetune.generate import bf16_decoding

        try:
            with bf16_decoding(self.model, enabled=self.precision == "bf16"):
                while True:
                    try:
                        if not self._next_rows():
                            return
                        self._step()
                    except Exception as exc:  # noqa: BLE001 - a failed step must not take the server down
                        log.exception("decoding step failed")
                        self._fail_all(exc)
        finally:
            self._drain()

    def _next_rows(self) -> bool:
        """Admit queued requests into free slots and drop cancelled rows, waiting while there is nothing to
        do; False once the engine stops."""
        while True:
            self._compact([not r.cancelled for r in self._rows], reason="cancelled")
            with self._cond:
                while not self._stopping and not self._queue and not self._rows:
                    self._cond.wait()
                if self._stopping:
                    return False
                dropped = [r for r in self._queue if r.cancelled]
                if dropped:
                    self._queue = deque(r for r in self._queue if not r.cancelled)
                free = self.max_batch - len(self._rows)
                new = [self._queue.popleft() for _ in range(min(free, len(self._queue)))]
            for request in dropped:
                self._finish(request, "cancelled")
            for request in new:
                self._admit(request)
            if self._rows:
                return True

    def _admit(self, request: _Request) -> None:
        """Prefill a request and give it a slot, unless it ends at its first token; a failure ends it alone."""
        try:
            self._prefill_into_slot(request)
        except Exception as exc:  # noqa: BLE001 - one bad request must not take the server down
            log.exception("prefill failed")
            self._error(request, exc)

    def _prefill_into_slot(self, request: _Request) -> None:
        from codetune import decoding
        from codetune.kv_cache import SlotCache

        kv, logits = decoding.prefill(
            self.model, request.ids, self.device, self.precision, **self._adapter_kwargs([request])
        )
        if not self._accept(request, self._pick(logits, [request])[0]):
            return
        need = len(request.ids) + request.params.max_tokens
        if self._cache is None:
            self._cache = SlotCache(len(kv), self.max_batch, _round_up(need, self.context), self.device)
        elif need > self._cache.capacity:
            self._cache.reserve(_round_up(max(need, 2 * self._cache.capacity), self.context))
        self._cache.write_prompt(len(self._rows), kv)
        self._rows.append(request)

    def _step(self) -> None:
        """One decoding forward over every active row; rows that finish leave."""
        import torch

        from codetune import decoding

        rows = self._rows
        last = torch.tensor([[r.stream.ids[-1]] for r in rows], device=self.device)  # (n, 1)
        pos = torch.tensor([r.cached for r in rows], device=self.device)  # (n,)
        self._cache.step(pos)
        logits = decoding.forward_logits(
            self.model,
            self.device,
            self.precision,
            input_ids=last,
            position_ids=pos[:, None],
            attention_mask=self._cache.mask(self._mask_dtype),
            cache=self._cache,
            **self._adapter_kwargs(rows),
        )
        self._steps += 1
        self._max_rows = max(self._max_rows, len(rows))
        alive = [self._accept(r, t) for r, t in zip(rows, self._pick(logits, rows))]
        self._compact(alive)

    def _adapter_kwargs(self, rows: list[_Request]) -> dict[str, Any]:
        return {"adapter_names": [r.adapter for r in rows]} if self._peft else {}

    def _pick(self, logits: Any, rows: list[_Request]) -> list[int]:
        """One token per row; a row still healing may take only tokens that continue its trimmed run."""
        import torch

        from codetune.decoding import pick_tokens

        for i, r in enumerate(rows):
            rest = r.stream.heal_rest()
            if not rest:
                continue
            allowed = self._healer.allowed(rest)
            if not allowed:
                r.stream.give_up_healing()
                continue
            idx = torch.tensor(allowed, device=logits.device)
            row = torch.full_like(logits[i], float("-inf"))
            row[idx] = logits[i, idx]
            logits[i] = row
        if self._untrained:
            plain = [i for i, r in enumerate(rows) if r.adapter not in self._fim]
            if plain:  # rows these models never trained: not a token they can write
                idx = torch.tensor(self._untrained, device=logits.device)
                logits[torch.tensor(plain, device=logits.device)[:, None], idx[None, :]] = float("-inf")
        p = [r.params for r in rows]
        return pick_tokens(logits, [q.temperature for q in p], [q.top_p for q in p], [r.gen for r in rows])

    def _accept(self, request: _Request, token: int) -> bool:
        """Hand the request its token; False when it ended (its "done" is sent)."""
        text, ended = request.stream.push(token)
        reason = "stop" if ended else None
        if reason is None and token in self._eos and not request.params.ignore_eos:
            reason = "stop"
        if reason is None and token in request.stop_ids:  # a sentinel: never part of a middle
            reason = "stop"
        if reason is None and len(request.stream.ids) >= request.params.max_tokens:
            reason = "length"
        if reason is not None and not ended:
            rest, cut = request.stream.flush()
            text += rest
            reason = "stop" if cut else reason
        if text:
            self._emit(request, Event("text", text=text))
        if reason is None and not request.cancelled:
            return True
        self._finish(request, reason or "cancelled")
        return False

    def _compact(self, alive: list[bool], reason: str | None = None) -> None:
        """Drop the rows not alive (finishing them with `reason` when given) and move the last rows into
        their slots, so the active rows are slots [0, n) again."""
        rows = self._rows
        if all(alive):
            return
        n = sum(alive)
        holes = [i for i in range(n) if not alive[i]]
        movers = [j for j in range(n, len(rows)) if alive[j]]
        if reason is not None:
            for r, a in zip(rows, alive):
                if not a:
                    self._finish(r, reason)
        for hole, j in zip(holes, movers):
            self._cache.move(j, hole, rows[j].cached)
            rows[hole] = rows[j]
        del rows[n:]

    def _emit(self, request: _Request, event: Event) -> None:
        try:
            request.on_event(event)
        except Exception:  # noqa: BLE001 - a broken callback cancels its own request only
            log.exception("a request's event callback failed; cancelling the request")
            request.cancelled = True

    def _finish(self, request: _Request, reason: str) -> None:
        if request.ended:
            return
        request.ended = True
        stream = request.stream
        detail = None
        if reason == "stop":
            detail = stream.stopped_by or "eos"
        done = Event(
            "done",
            finish_reason=reason,
            prompt_tokens=request.prompt_tokens,
            completion_tokens=len(stream.ids),
            stop_detail=detail,
            stop_word=stream.stop_word if detail == "stop_string" else "",
        )
        self._emit(request, done)
        self._release()

    def _error(self, request: _Request, exc: BaseException) -> None:
        if request.ended:
            return
        request.ended = True
        self._emit(request, Event("error", message=f"generation failed: {type(exc).__name__}: {exc}"))
        self._release()

    def _release(self) -> None:
        with self._cond:
            self._outstanding -= 1
            self._done += 1

    def _fail_all(self, exc: BaseException) -> None:
        """After a failed step the cache may be half written: every active row ends with an error."""
        rows, self._rows, self._cache = self._rows, [], None
        for request in rows:
            self._error(request, exc)

    def _drain(self) -> None:
        with self._cond:
            self._stopping = True
            left, self._queue = list(self._queue), deque()
        rows, self._rows = self._rows, []
        for request in rows + left:
            self._finish(request, "cancelled")


def no_fim_message(model: str, fim_models: Sequence[str], param: str) -> tuple[str, str]:
    """(what failed, the fix) for a fill-in-the-middle request to `model`, which does not take one; `param`
    is the request field that asked for it ("suffix", "input_suffix", or "prompt": a prompt in the FIM layout)."""
    from codetune.fim import SENTINELS

    asked = f"a prompt in the FIM layout ({'...'.join(SENTINELS)})" if param == "prompt" else f"`{param}`"
    what = (
        f"{asked} asks model '{model}' to fill in the middle, and it was not trained for fill-in-the-middle "
        "(no trained FIM tokens)"
    )
    other = {
        "suffix": "leave out the suffix",
        "input_suffix": "send the text before the cursor to POST /completion",
        "prompt": 'for Continue, set promptTemplates autocomplete: "{{{prefix}}}"',
    }.get(param, f"leave out `{param}`")
    if fim_models:
        return what, f"send `model` as one of: {', '.join(fim_models)}; or {other}"
    return what, f"serve an adapter trained with data.fim_rate > 0 (codetune serve --adapter NAME=DIR); or {other}"


def fim_layout(prompt: str) -> bool:
    """Whether a text prompt is written in the FIM layout, all three sentinels in it (as Continue's default
    autocomplete template writes it)."""
    from codetune.fim import SENTINELS

    return all(s in prompt for s in SENTINELS)


def _round_up(n: int, cap: int, step: int = 256) -> int:
    return min(cap, -(-n // step) * step)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """The tokenizer's EOS and any the model's generation config names (chat models end turns with one)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(gen_eos, int):
        ids.add(gen_eos)
    elif isinstance(gen_eos, (list, tuple)):
        ids.update(int(i) for i in gen_eos)
    return ids
