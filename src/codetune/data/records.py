"""The record every corpus extractor yields, whatever the language, and its JSONL round trip."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from codetune.io import atomic_write_jsonl, iter_jsonl


@dataclass
class CodeSample:
    """One documented function split into what the model sees and what it should write.

    Attributes:
        id: stable id, a hash of the language and the normalized target (equal targets share an id).
        language: a canonical name from `codetune.languages.names(corpus=True)`.
        prompt: documentation + signature, up to and including the line that opens the body.
        target: the rest of the function (the reference completion), ending with the function's end.
        source: where it came from: a file path, or `archive.zip!member/path`.
        line: 1-based line of the function's first line (decorators / doc comment included) in `source`.
        name: the function or method name.
        complexity: measured fields of the whole function (e.g. cyclomatic, nloc, token_count).
    """

    id: str
    language: str
    prompt: str
    target: str
    source: str
    line: int
    name: str
    complexity: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> CodeSample:
        return cls(**d)


def normalize_code(code: str) -> str:
    """Whitespace-insensitive form used for duplicate detection: runs of spaces collapsed, blank lines dropped."""
    return "\n".join(" ".join(line.split()) for line in code.splitlines() if line.strip())


def sample_id(language: str, target: str) -> str:
    """Stable id from the normalized target, so duplicates collapse to one id."""
    h = hashlib.sha1(f"{language}\0{normalize_code(target)}".encode()).hexdigest()
    return h[:16]


def write_jsonl(path: Path, samples: Iterable[CodeSample]) -> int:
    """Write samples atomically (temp file + rename); return how many were written."""
    return atomic_write_jsonl(Path(path), (asdict(s) for s in samples))


def read_jsonl(path: Path) -> Iterator[CodeSample]:
    """Samples of a JSONL file written by `write_jsonl`; a line that is not JSON raises CodetuneError."""
    for rec in iter_jsonl(Path(path)):
        yield CodeSample.from_dict(rec)
