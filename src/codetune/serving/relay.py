"""One HTTP request's engine work, seen from asyncio.

The engine calls each request's callback from its own thread; `Relay` hands those events to the event
loop (`call_soon_threadsafe`) in one queue for all of the request's choices, enforces the server's
per-request timeout, and cancels what is still running when the client goes away.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from codetune.serving import http_errors
from codetune.serving.engine import EngineError, Event, SamplingParams
from codetune.serving.http_errors import ApiError


@dataclass
class Choice:
    """One engine request (one prompt, one sample) and what came back for it."""

    index: int
    prompt_index: int
    prompt: str
    params: SamplingParams
    handle: Any = None
    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None  # "stop" | "length" | "cancelled" | "error"
    stop_detail: str | None = None  # at "stop": "eos" | "stop_string" | "function_end"
    stop_word: str = ""
    error: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    submitted_at: float = 0.0  # time.perf_counter()
    first_at: float | None = None  # the first visible text
    done_at: float | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)


class Relay:
    """The choices of one HTTP request on `engine`, for adapter/base `model`."""

    def __init__(self, engine: Any, model: str, timeout_s: float) -> None:
        self.engine, self.model, self.timeout_s = engine, model, timeout_s
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + timeout_s
        self.choices: list[Choice] = []
        self._queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        self._lock = threading.Lock()
        self._cancelled = False

    async def submit(self, items: list[tuple[int, str, SamplingParams]]) -> None:
        """Queue every (prompt index, prompt, params) on the engine; on a refusal cancel those already
        queued and raise the refusal's ApiError (404, 400, 503)."""
        for prompt_index, prompt, params in items:
            choice = Choice(len(self.choices), prompt_index, prompt, params)
            self.choices.append(choice)
            try:
                # In a worker thread: submit tokenizes, and may wait for the engine's lock during a step.
                await asyncio.to_thread(self._submit, choice)
            except EngineError as exc:
                self.cancel()
                raise http_errors.from_engine(exc) from None

    def _submit(self, choice: Choice) -> None:
        choice.submitted_at = time.perf_counter()
        index = choice.index
        handle = self.engine.submit(
            choice.prompt, choice.params, model=self.model, on_event=lambda ev: self._deliver(index, ev)
        )
        with self._lock:
            choice.handle = handle
            cancel = self._cancelled  # the client left while this was being submitted
        if cancel:
            handle.cancel()

    def _deliver(self, index: int, event: Event) -> None:  # on the engine's thread
        try:
            self.loop.call_soon_threadsafe(self._queue.put_nowait, (index, event))
        except RuntimeError:  # the event loop is closed: the server is gone, nobody is waiting
            pass

    async def events(self) -> AsyncIterator[tuple[Choice, Event]]:
        """Each choice's events in order as they come, until every choice is done.

        Raises:
            ApiError: 504 once the request has run for the server's timeout (everything is cancelled).
        """
        pending = sum(1 for c in self.choices if c.finish_reason is None)
        while pending:
            remaining = self.deadline - self.loop.time()
            try:
                if remaining <= 0:
                    raise asyncio.TimeoutError
                index, event = await asyncio.wait_for(self._queue.get(), remaining)
            except asyncio.TimeoutError:
                self.cancel()
                raise http_errors.timed_out(self.timeout_s) from None
            choice = self.choices[index]
            if not self._record(choice, event):
                pending -= 1
            yield choice, event

    def _record(self, choice: Choice, event: Event) -> bool:
        """Note the event on its choice; False once the choice is finished."""
        if event.kind == "text":
            if choice.first_at is None:
                choice.first_at = time.perf_counter()
            choice.parts.append(event.text)
            return True
        choice.done_at = time.perf_counter()
        if event.kind == "done":
            choice.finish_reason = event.finish_reason
            choice.stop_detail, choice.stop_word = event.stop_detail, event.stop_word
            choice.prompt_tokens, choice.completion_tokens = event.prompt_tokens, event.completion_tokens
        else:
            choice.finish_reason, choice.error = "error", event.message or "the engine failed"
        return False

    async def drain(self) -> None:
        """Wait for every choice to finish (the non-streaming responses)."""
        async for _ in self.events():
            pass

    def cancel(self) -> None:
        """Cancel every choice not finished yet (idempotent); the engine frees their slots at its next step."""
        with self._lock:
            self._cancelled = True
            handles = [c.handle for c in self.choices if c.handle is not None and c.finish_reason is None]
        for handle in handles:
            handle.cancel()

    def failure(self) -> ApiError | None:
        """The error to answer with when a choice did not finish normally."""
        for c in self.choices:
            if c.finish_reason == "error":
                return ApiError(500, f"generation failed: {c.error}", type="server_error", code="engine_error")
            if c.finish_reason == "cancelled":
                return ApiError(
                    503,
                    "the server is shutting down; retry against a running server",
                    type="unavailable_error",
                    code="shutting_down",
                )
        return None

    def usage(self) -> dict[str, int]:
        """OpenAI's usage: each prompt's tokens counted once, every choice's generated tokens."""
        prompts = {c.prompt_index: c.prompt_tokens for c in self.choices}
        prompt_tokens = sum(prompts.values())
        completion = sum(c.completion_tokens for c in self.choices)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }


async def until_disconnected(receive: Any) -> None:
    """Return when the client has gone away (for responses that are not streamed)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def finish_unless_disconnected(relay: Relay, receive: Any) -> bool:
    """Drain the relay; False (and everything cancelled) when the client leaves first."""
    work = asyncio.ensure_future(relay.drain())
    gone = asyncio.ensure_future(until_disconnected(receive))
    try:
        done, _ = await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        if work in done:
            work.result()  # the 504, if it timed out
            return True
        return False
    finally:
        for task in (work, gone):
            task.cancel()
        relay.cancel()
