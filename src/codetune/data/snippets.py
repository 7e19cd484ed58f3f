"""Shared pieces of the brace-language extractors: doc comments and the prompt/target split."""

from __future__ import annotations

import re

_LINE_END = re.compile(rb"[ \t]*\r?\n")


def doc_comment_before(node, src: bytes, comment_type: str):
    """The `/** ... */` comment right before `node` (only whitespace between), or None."""
    prev = node.prev_sibling
    if prev is None or prev.type != comment_type:
        return None
    text = src[prev.start_byte : prev.end_byte]
    # "/**/" is an empty block comment, not a doc comment.
    if not text.startswith(b"/**") or len(text) < 5:
        return None
    if src[prev.end_byte : node.start_byte].strip():
        return None
    return prev


def _dedent(text: str, width: int, first_continues: bool) -> str:
    """Remove up to `width` leading blanks from each line (not from a first line that continues one)."""
    lines = text.split("\n")
    out = lines[:1] if first_continues else []
    for line in lines[len(out) :]:
        blanks = len(line) - len(line.lstrip(" \t"))
        out.append(line[min(blanks, width) :])
    return "\n".join(out)


def split_function(src: bytes, start: int, body_open: int, end: int) -> tuple[str, str]:
    """Split `src[start:end]` (doc comment .. closing brace) into prompt and target.

    The prompt runs through the body's opening `{` (byte `body_open`) and, when nothing but blanks
    follows it on its line, that line's newline. The whole function is dedented by the column of
    `start`, so the doc comment and signature start at column 0 and the body keeps its relative indent.
    """
    col = start - (src.rfind(b"\n", 0, start) + 1)
    split = body_open + 1
    m = _LINE_END.match(src, split)
    if m:
        split = m.end()

    def text(a: int, b: int) -> str:
        return src[a:b].decode("utf-8", errors="replace").replace("\r\n", "\n")

    # The first prompt line is sliced at `start`, so it carries no indentation of its own.
    prompt = _dedent(text(start, split), col, first_continues=True)
    target = _dedent(text(split, end), col, first_continues=not prompt.endswith("\n"))
    return prompt, target
