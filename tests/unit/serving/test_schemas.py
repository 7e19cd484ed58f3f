"""Request bodies: defaults, normalizing, what is refused, and the one-line 400 each refusal becomes."""

from __future__ import annotations

import json

import pytest

from codetune.serving.http_errors import ApiError, parse_body
from codetune.serving.schemas import ChatRequest, CompletionRequest, LlamaCompletionRequest


def _parse(cls, body) -> object:
    return parse_body(cls, body if isinstance(body, bytes) else json.dumps(body).encode())


def _refusal(cls, body) -> ApiError:
    with pytest.raises(ApiError) as info:
        _parse(cls, body)
    err = info.value
    assert err.status == 400 and "\n" not in err.message
    return err


def test_completion_defaults_are_openais_and_null_means_default():
    req = _parse(CompletionRequest, {"prompt": "def f():", "max_tokens": None, "temperature": None, "stop": None})
    assert req.prompt == ["def f():"] and req.max_tokens == 16 and req.temperature == 1.0 and req.top_p == 1.0
    assert req.n == 1 and req.stop == [] and req.seed is None and not req.stream and not req.echo
    assert (req.stop_at_function_end, req.language, req.ignore_eos) == (False, "python", False)


def test_stop_may_be_one_string_or_any_number_and_the_language_an_alias():
    assert _parse(CompletionRequest, {"prompt": "x", "stop": "\n"}).stop == ["\n"]
    many = [f"stop{i}" for i in range(12)]  # OpenAI allows 4; any number here
    assert _parse(CompletionRequest, {"prompt": "x", "stop": many}).stop == many
    assert _parse(CompletionRequest, {"prompt": "x", "language": "JS"}).language == "javascript"


def test_neutral_values_of_unimplemented_fields_are_accepted():
    req = _parse(
        CompletionRequest,
        {
            "prompt": "x",
            "presence_penalty": 0,
            "frequency_penalty": 0.0,
            "logit_bias": {},
            "best_of": 1,
            "user": "u",
        },
    )
    assert req.presence_penalty == 0
    llama = _parse(
        LlamaCompletionRequest, {"prompt": "x", "top_k": -1, "min_p": 0, "mirostat": 0, "cache_prompt": True}
    )
    assert llama.top_k == -1


@pytest.mark.parametrize(
    ("cls", "body", "param", "words"),
    [
        (CompletionRequest, {"prompt": "x", "max_tokns": 3}, "max_tokns", ["unknown field `max_tokns`", "`max_tokens`"]),
        (CompletionRequest, {"prompt": "x", "zzz": 1}, "zzz", ["unknown field", "the fields are:", "max_tokens"]),
        (CompletionRequest, {}, "prompt", ["`prompt` is required", '"prompt": "def add(a, b):"']),
        (CompletionRequest, {"prompt": [[1, 2]]}, "prompt", ["token ids"]),
        (CompletionRequest, {"prompt": ["ok", ""]}, "prompt", ["empty"]),
        (CompletionRequest, {"prompt": 5}, "prompt", ["string or a list of strings"]),
        (CompletionRequest, {"prompt": "x", "stop": [1]}, "stop", ["list of strings"]),
        (CompletionRequest, {"prompt": "x", "temperature": 2.5}, "temperature", ["less than or equal to 2", "2.5"]),
        (CompletionRequest, {"prompt": "x", "n": 1000}, "n", ["less than or equal to 128"]),
        (CompletionRequest, {"prompt": "x", "logprobs": 2}, "logprobs", ["not returned"]),
        (CompletionRequest, {"prompt": "x", "best_of": 3}, None, ["`best_of` 3"]),
        (CompletionRequest, {"prompt": "x", "logit_bias": {"5": 1}}, "logit_bias", ["not supported"]),
        (CompletionRequest, {"prompt": "x", "stream": "sometimes"}, "stream", ["boolean"]),
        (ChatRequest, {"messages": [{"role": "user"}], "max_tokens": 2, "max_completion_tokens": 3}, None, ["differ"]),
        (ChatRequest, {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "u"}]}]},
         "messages", ["messages[0].content"]),
        (ChatRequest, {"messages": "hi"}, "messages", ["valid list"]),
        (ChatRequest, {"messages": [{"role": "user", "content": "x"}], "logprobs": True}, "logprobs", ["not supported"]),
        (LlamaCompletionRequest, {"prompt": "x", "mirostat": 2}, "mirostat", ["not supported", "`mirostat`"]),
        (LlamaCompletionRequest, {"prompt": "x", "seed": -5}, "seed", ["greater than or equal to -1"]),
        (LlamaCompletionRequest, {"prompt": ""}, "prompt", ["empty"]),
        (LlamaCompletionRequest, {"prompt": "x", "max_tokens": 4}, "max_tokens", ["unknown field", "`n_predict`"]),
    ],
)  # fmt: skip
def test_each_refusal_is_one_line_naming_the_field(cls, body, param, words):
    err = _refusal(cls, body)
    assert err.param == param, err.message
    assert all(w in err.message for w in words), err.message
    assert set(err.body()["error"]) == {"message", "type", "param", "code"}


def test_several_problems_go_on_one_line():
    err = _refusal(CompletionRequest, {"prompt": "x", "max_tokens": 0, "top_p": 5, "n": -1, "temperature": 9})
    assert err.message.count("`") >= 6 and "(and 1 more)" in err.message
    assert err.param == "temperature"  # the first in the body's field order


@pytest.mark.parametrize(
    ("raw", "words"),
    [(b"", ["no body"]), (b"  ", ["no body"]), (b"{'a': 1}", ["not valid JSON"]), (b"\xff\xfe", ["not valid JSON"]),
     (b'"text"', ["JSON str", "object"])],
)  # fmt: skip
def test_bodies_that_are_not_json_objects(raw, words):
    err = _refusal(CompletionRequest, raw)
    assert all(w in err.message for w in words), err.message


def test_chat_content_parts_join_and_the_token_cap_takes_either_name():
    req = _parse(
        ChatRequest,
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
            ],
            "max_completion_tokens": 7,
        },
    )
    assert req.template_messages() == [{"role": "user", "content": "ab"}] and req.token_cap == 7
    assert _parse(ChatRequest, {"messages": [{"role": "user", "content": "x"}]}).token_cap is None


def test_llamacpp_defaults_are_llamacpps():
    req = _parse(LlamaCompletionRequest, {"prompt": "x"})
    assert (req.n_predict, req.temperature, req.top_p, req.seed, req.stream) == (-1, 0.8, 0.95, -1, False)
