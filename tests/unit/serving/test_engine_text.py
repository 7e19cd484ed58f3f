"""TextStream (what a client is shown, delta by delta) and token healing, on the tiny byte-level tokenizer."""

import pytest

from codetune.decoding import StopWatch, token_texts
from codetune.serving.engine_text import TextStream
from codetune.serving.healing import Healer, split_prompt


@pytest.fixture(scope="module")
def tok(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def _ids(tok, text: str) -> list[int]:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text  # byte-level: the tokens spell the text exactly
    return ids


def _stream(tok, prompt="", heal="", stop=(), language=None) -> TextStream:
    watch = StopWatch(tok, language) if language else None
    read = prompt[: len(prompt) - len(heal)]
    return TextStream(tok, prompt, heal, list(stop), language, watch, watch.start(read) if watch else False)


def _feed(stream: TextStream, ids: list[int]) -> tuple[list[str], bool]:
    """Push every token (until the stream says the completion ended); the deltas, and whether it ended."""
    deltas = []
    for t in ids:
        delta, ended = stream.push(t)
        deltas.append(delta)
        if ended:
            return deltas, True
    delta, _ = stream.flush()
    deltas.append(delta)
    return deltas, False


def test_the_deltas_spell_the_text_and_a_split_character_waits_until_whole(tok):
    text = "x = 'é→ü'  # naïve\n    return x"
    ids = _ids(tok, text)
    assert len(ids) > len(text.encode()) // 2  # the non-ASCII characters span several tokens
    deltas, ended = _feed(_stream(tok), ids)
    assert "".join(deltas) == text and not ended
    assert all("\ufffd" not in d for d in deltas)
    # Some token completed no character: its delta is empty, and the next one carries the whole character.
    assert "" in deltas[:-1]


def test_a_stop_string_spanning_tokens_cuts_before_it_and_is_never_shown(tok):
    text = "total = x * 2 + y\n    return total\n"
    ids = _ids(tok, text)
    stop = "2 + y\n    ret"
    s = _stream(tok, stop=["never", stop, "zzz"])
    deltas, ended = _feed(s, ids)
    assert ended
    assert "".join(deltas) == text[: text.index(stop)]
    assert len(s.ids) < len(ids)  # it stopped at the token that completed the match


def test_a_tail_that_may_start_a_stop_string_is_held_until_decided(tok):
    text = "a = b + c\nreturn a"
    ids = _ids(tok, text)
    s = _stream(tok, stop=["+ c\nyield"])
    shown = ""
    for t in ids:
        delta, ended = s.push(t)
        shown += delta
        assert not ended
        visible = s.visible()
        # The held tail is a prefix of the stop string (or nothing).
        held = visible[len(shown) :]
        assert "+ c\nyield".startswith(held) or held == ""
    shown += s.flush()[0]
    assert shown == text


def test_the_first_of_several_stop_strings_wins(tok):
    text = "one two three four"
    s = _stream(tok, stop=["four", "three", "t"])
    deltas, ended = _feed(s, _ids(tok, text))
    assert ended and "".join(deltas) == "one "


def test_healing_reproduces_the_trimmed_run_and_does_not_show_it(tok):
    prompt = "def add(a, b):\n    "
    read, heal = split_prompt(prompt)
    assert (read, heal) == ("def add(a, b):", "\n    ")
    s = _stream(tok, prompt=prompt, heal=heal)
    assert s.heal_rest() == "\n    "
    ids = _ids(tok, "\n    return a + b")
    deltas, _ = _feed(s, ids)
    assert "".join(deltas) == "return a + b"
    assert s.heal_rest() == ""


def test_split_prompt_trims_only_a_whitespace_run_with_a_newline():
    assert split_prompt("def f():\n") == ("def f():", "\n")
    assert split_prompt("x = 1  \n\t  ") == ("x = 1", "  \n\t  ")
    assert split_prompt("x = 1 ") == ("x = 1 ", "")
    assert split_prompt("x") == ("x", "")
    assert split_prompt("\n") == ("", "\n")


def test_healer_allows_prefixes_of_the_run_and_tokens_that_start_with_it(tok):
    texts = token_texts(tok)
    healer = Healer(texts)
    rest = "\n    "
    allowed = healer.allowed(rest)
    assert allowed
    for i, t in enumerate(texts):
        ok = bool(t) and (rest.startswith(t) or t.startswith(rest))
        assert (i in allowed) == ok, repr(t)
    assert tok.eos_token_id not in allowed  # an empty-text token would reproduce nothing


def test_python_function_end_cuts_the_blank_lines_it_had_held(tok):
    prompt = "def f(x):\n"
    text = "    y = x + 1\n    return y\n\n\ndef g():\n    pass\n"
    s = _stream(tok, prompt=prompt, language="python")
    deltas, ended = _feed(s, _ids(tok, text))
    assert ended
    assert "".join(deltas) == "    y = x + 1\n    return y\n"
    assert "def" not in "".join(deltas)


def test_brace_function_end_cuts_after_the_closing_brace(tok):
    prompt = "function f(x) {\n"
    text = "  if (x) { return 1; }\n  return 2;\n}\nfunction g() {}\n"
    s = _stream(tok, prompt=prompt, language="javascript")
    deltas, ended = _feed(s, _ids(tok, text))
    assert ended
    assert "".join(deltas) == "  if (x) { return 1; }\n  return 2;\n}"


def test_a_stop_string_before_the_function_end_wins(tok):
    prompt = "def f(x):\n"
    text = "    y = x  # TODO\n    return y\nprint(1)\n"
    s = _stream(tok, prompt=prompt, stop=["# TODO"], language="python")
    deltas, ended = _feed(s, _ids(tok, text))
    assert ended and "".join(deltas) == "    y = x  "


def test_a_stop_string_in_the_healed_run_does_not_count(tok):
    """Single-line completion (stop at "\\n") after a prompt ending in newline + indent: the run's own newline
    is the prompt's, so the completion is the next line, not nothing."""
    prompt = "def add(a, b):\n    "
    s = _stream(tok, prompt=prompt, heal="\n    ", stop=["\n"])
    deltas, ended = _feed(s, _ids(tok, "\n    return a + b\n    pass"))
    assert ended and "".join(deltas) == "return a + b"
