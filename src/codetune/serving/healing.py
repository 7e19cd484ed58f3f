"""Token healing: a prompt that ends inside a whitespace run the tokenizer would have merged.

Editors send a prompt that ends in a newline, or a newline and the next line's indentation. A byte-level
BPE tokenizer merges "\\n" with the indentation after it (and "\\n    " often with more), so in training
text a token boundary almost never falls there; a model read up to that boundary has seen nothing like
it (a trained adapter answers "<|im_end|>" at once). So the prompt the model reads ends before the run,
and the first generated tokens are constrained to write the run again: a token is allowed while its text
is a prefix of what is left of the run, or starts with all of it ("\\n    return" reproduces "\\n    " and
goes on). The reproduced run is not part of the completion the client sees.

For a prompt ending in a single "\\n", under greedy decoding, this gives what `codetune.generate` does by
trimming that newline (`generate._trim_newlines`), whenever the model would write a newline first there.
"""

from __future__ import annotations

from collections.abc import Sequence

_WHITESPACE = " \t\r\n"


def split_prompt(prompt: str) -> tuple[str, str]:
    """(the prompt the model reads, the trailing run it must reproduce): the run is the prompt's trailing
    whitespace when that contains a newline, else "" (the prompt is read whole)."""
    head = prompt.rstrip(_WHITESPACE)
    run = prompt[len(head) :]
    return (head, run) if "\n" in run else (prompt, "")


class Healer:
    """Which tokens may come next while a row still has part of its trimmed run to write.

    Args:
        texts: each token id's text decoded alone, special tokens as "" (`decoding.token_texts`).
    """

    def __init__(self, texts: Sequence[str]) -> None:
        # Only tokens that start with whitespace can match a run that starts with whitespace.
        self._candidates = [(i, t) for i, t in enumerate(texts) if t and t[0] in _WHITESPACE]
        self._allowed: dict[str, list[int]] = {}  # editors send the same few runs again and again

    def allowed(self, rest: str) -> list[int]:
        """Token ids whose text is a prefix of `rest` or starts with it (never an empty-text token such as EOS)."""
        got = self._allowed.get(rest)
        if got is None:
            got = [i for i, t in self._candidates if rest.startswith(t) or t.startswith(rest)]
            if len(self._allowed) >= 512:
                self._allowed.clear()
            self._allowed[rest] = got
        return got
