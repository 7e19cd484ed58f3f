"""The fill-in-the-middle fields of the request bodies: OpenAI's `suffix`, llama.cpp's /infill."""

from __future__ import annotations

import pytest

from codetune.serving.http_errors import ApiError, parse_body
from codetune.serving.schemas import SNIPPET_SEPARATOR, CompletionRequest, LlamaInfillRequest


def _parse(cls, body):
    import json

    return parse_body(cls, json.dumps(body).encode())


def _refusal(cls, body) -> ApiError:
    with pytest.raises(ApiError) as exc:
        _parse(cls, body)
    assert exc.value.status == 400 and "\n" not in exc.value.message
    return exc.value


def test_a_suffix_is_taken_and_lets_the_prompt_be_empty():
    req = _parse(CompletionRequest, {"prompt": "def f(x):\n    ", "suffix": "\n    return y\n"})
    assert req.suffix == "\n    return y\n" and req.prompt == ["def f(x):\n    "]
    assert _parse(CompletionRequest, {"prompt": "", "suffix": "return 1\n"}).prompt == [""]  # cursor at the start
    assert _parse(CompletionRequest, {"prompt": "x", "suffix": None}).suffix is None  # null: the default
    err = _refusal(CompletionRequest, {"prompt": "", "suffix": ""})
    assert err.param == "prompt" and "empty" in err.message


def test_echo_with_a_suffix_is_refused():
    err = _refusal(CompletionRequest, {"prompt": "x", "suffix": "y", "echo": True})
    assert "`echo`" in err.message and "`suffix`" in err.message
    assert _parse(CompletionRequest, {"prompt": "x", "suffix": "", "echo": True}).echo


def test_infill_takes_llama_cpps_fields():
    req = _parse(
        LlamaInfillRequest,
        {
            "input_prefix": "",
            "input_suffix": "return x\n",
            "input_extra": [{"filename": "a.py", "text": "A = 1\n", "time": 3}, {"text": "B = 2\n"}],
            "n_predict": 8,
            "stream": True,
            "temperature": 0,
            "top_p": 0.9,
            "seed": 4,
            "stop": ["\n\n"],
            "cache_prompt": True,
        },
    )
    assert req.input_prefix == "" and req.prompt == "" and req.n_predict == 8 and req.stream
    assert [c.filename for c in req.input_extra] == ["a.py", "tmp"]
    assert req.extra == f"{SNIPPET_SEPARATOR}A = 1\n{SNIPPET_SEPARATOR}B = 2\n"
    assert _parse(LlamaInfillRequest, {"input_prefix": "a", "input_suffix": "b", "prompt": "ret"}).prompt == "ret"


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"input_suffix": "x"}, "input_prefix", ["`input_prefix` is required"]),
        ({"input_prefix": "x"}, "input_suffix", ["`input_suffix` is required"]),
        ({"input_prefix": "a", "input_suffix": "b", "prompt": 3}, "prompt", ["start of the middle"]),
        ({"input_prefix": "a", "input_suffix": "b", "input_extra": "ctx"}, "input_extra", ["valid list"]),
        ({"input_prefix": "a", "input_suffix": "b", "input_extra": [{"filename": "a"}]}, "input_extra",
         ["input_extra[0].text", "required"]),
        ({"input_prefix": "a", "input_suffix": "b", "top_k": 40}, "top_k", ["not supported"]),
        ({"input_prefix": "a", "input_suffix": "b", "max_tokens": 4}, "max_tokens", ["`n_predict`"]),
    ],
)  # fmt: skip
def test_bad_infill_bodies_name_the_field(body, param, words):
    err = _refusal(LlamaInfillRequest, body)
    assert err.param == param, err.message
    assert all(w in err.message for w in words), err.message
