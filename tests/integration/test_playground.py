"""The playground page at `/` in headless Chromium: pick an adapter, type a prompt, see the text stream in
and the tokens/s; the text is what the API gives for the same request."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _helpers():
    spec = importlib.util.spec_from_file_location("_codetune_serve_helpers", Path(__file__).with_name("_serve.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _wait(page, sync_api, condition: str, errors: list[str]) -> None:
    try:
        page.wait_for_function(condition, timeout=60_000)
    except sync_api.TimeoutError:
        state = {k: page.text_content(k) for k in ("#status", "#model", "#output", "#stats", "#error")}
        raise AssertionError(f"never true: {condition}; the page: {state}; console errors: {errors}") from None


@pytest.mark.slow
def test_playground_streams_a_completion_in_headless_chromium(
    tiny_model_dir, tiny_adapter_dirs, tmp_path, headless_chromium
):
    sync_api = headless_chromium.sync_api
    server = _helpers().Server(
        ["--model", str(tiny_model_dir), "--adapter", f"a={tiny_adapter_dirs['a']}",
         "--adapter", f"b={tiny_adapter_dirs['b']}", "--device", "cpu", "--precision", "fp32"],
        tmp_path / "serve",
    )  # fmt: skip
    try:
        prompt = "def add(a, b):"
        wants = {}
        for model in ("b", "a"):
            status, wants[model] = server.post(
                "/v1/completions", {"model": model, "prompt": prompt, "max_tokens": 24, "temperature": 0}
            )
            assert status == 200, wants[model]
        # Random weights: an adapter may end at once (EOS); the page is tested on one that writes something.
        model = next((m for m, w in wants.items() if w["choices"][0]["text"]), None)
        assert model is not None, f"both tiny adapters answer {prompt!r} with nothing: {wants}"
        want = wants[model]
        errors: list[str] = []
        streamed: list[str] = []
        with headless_chromium() as browser:
            page = browser.new_page()
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on(
                "response",
                lambda r: (
                    streamed.append(r.headers.get("content-type", "")) if "/v1/completions" in r.url else None
                ),
            )
            page.goto(server.url + "/", wait_until="load")
            _wait(page, sync_api, "document.querySelectorAll('#model option').length === 3", errors)
            options = page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")
            assert options == [str(tiny_model_dir), "a", "b"]
            page.select_option("#model", model)
            page.fill("#prompt", prompt)
            page.fill("#max-tokens", "24")
            page.fill("#temperature", "0")
            page.uncheck("#function-end")
            page.click("#generate")
            _wait(page, sync_api, "document.querySelector('#stats').textContent.includes('tokens/s')", errors)
            output = page.text_content("#output")
            stats = page.text_content("#stats")
        assert output == want["choices"][0]["text"]
        n = want["usage"]["completion_tokens"]
        assert f"{n} token{'s' if n != 1 else ''} ·" in stats, stats
        assert streamed and streamed[0].startswith("text/event-stream")
        assert errors == []
    finally:
        server.stop()
