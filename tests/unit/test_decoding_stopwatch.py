"""StopWatch: the stop rule runs only at tokens that can end the function, and never misses the end."""

import pytest

from codetune import stopping
from codetune.decoding import StopWatch, _Row
from codetune.errors import ConfigError

JAVA_PROMPT = "/**\n * Returns {@code {x}} or '}'.\n */\npublic int f(int x) {\n"
JS_PROMPT = "/** Returns `{a}`. */\nconst f = (a) => {\n"

CASES = [
    ("python", "def f(x):", "\n    return 1\nprint(2)\n"),
    ("python", "def f(x):", "\n    x = 1\n\n    # note\n  \n\t\n    return x\n\ndef g():\n    pass\n"),
    ("python", "def f(x):", " # first line is partial\n    return x\n  \n\u00a0\n    y\nz = 1"),
    ("python", "def f(x):", "\n    s = 'é€'\n    return s\néz = 2\n"),
    ("python", "def f(x):\n", "x = 1\n"),  # a prompt ending in a newline: the first line counts
    ("python", "class A:\n    def f(self):", "\n        return 1\n\n    def g(self):\n        pass\n"),
    ("python", "def f(x):", "\n    return x"),  # never ends
    (
        "java",
        JAVA_PROMPT,
        '  String s = "}}\\"}";\n  char c = \'}\';\n  // } here\n  /* } */\n  return 1;\n}\n}\n',
    ),
    ("java", JAVA_PROMPT, '  String t = """\n      } \\""" {\n      """;\n  return t;\n}\nint g() {}'),
    ("javascript", JS_PROMPT, "  const s = `} ${a} { ${ {k: `}`}.k } \\` }`;\n  return s;\n};\nconst g = 1;\n"),
    (
        "javascript",
        JS_PROMPT,
        "  const r = /[}]\\/}/g;\n  const half = a / 2 / 4;\n  return r.test(a) ? { half } : {};\n}\n",
    ),
    ("javascript", JS_PROMPT, "  const r = a /}\n  return 1;\n}\n"),
    (
        "cpp",
        "int f() {\n",
        "  auto s = R\"x(a\"})\")x\";\n  int n = 1'000'000 + '{';\n  char c = '}';\n  return n;\n}\n}\n",
    ),
    ("java", "int f()", " {\n  return 1;\n}\nx"),
]


class CharTokenizer:
    """One token per character: the finest split a tokenizer can make."""

    def __init__(self, text: str) -> None:
        self.chars = sorted(set(text))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        return [self.chars.index(c) for c in text]

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(self.chars[i] for i in ids)

    def batch_decode(self, seqs: list[list[int]], skip_special_tokens: bool = True) -> list[str]:
        return [self.decode(s) for s in seqs]


def _first_end(tok, language: str, prompt: str, ids: list[int], watch: StopWatch | None) -> tuple[int | None, int]:
    """The index of the token after which the text is complete, checking every token (watch None) or only
    where the watch says; and how many checks ran."""
    row = _Row(0, 0, 0, [], None, watch.start(prompt) if watch else False)
    checks = 0
    for k, token in enumerate(ids):
        row.ids.append(token)
        if watch is None or watch.needs_check(row, token):
            checks += 1
            if stopping.is_complete(language, prompt, tok.decode(row.ids, skip_special_tokens=True)):
                return k, checks
    return None, checks


@pytest.fixture(scope="module")
def bpe(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.mark.parametrize(("language", "prompt", "text"), CASES)
@pytest.mark.parametrize("split", ["chars", "bpe"])
def test_the_watch_stops_where_checking_every_token_stops(language, prompt, text, split, bpe):
    tok = CharTokenizer(text) if split == "chars" else bpe
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    want, every = _first_end(tok, language, prompt, ids, None)
    got, gated = _first_end(tok, language, prompt, ids, StopWatch(tok, language))
    assert got == want
    if split == "chars" and want is not None and want > 20:
        assert gated < every / 2  # it does skip tokens


def test_an_unknown_language_is_checked_at_every_token_and_raises_as_before(bpe):
    watch = StopWatch(bpe, "cobol")
    row = _Row(0, 0, 0, [], None, False)
    assert all(watch.needs_check(row, t) for t in bpe.encode("abc def"))
    with pytest.raises(ConfigError):
        stopping.is_complete("cobol", "", "x")
