"""Files every stage shares: atomic writes (temp file + rename) and JSON Lines read/append.

A reader never sees half a file: each write goes to a temp file in the same directory, then one
`os.replace` puts it in place. JSONL appends (a resumable stage's partial output) are the only
non-atomic writes; their readers stop at the first torn line, which a kill mid-write leaves behind.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from codetune.errors import CodetuneError


def _tmp_for(path: Path) -> Path:
    # The pid keeps two processes that write the same file from sharing a temp file.
    return path.with_name(f"{path.name}.tmp{os.getpid()}")


def atomic_write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` atomically (the parent is created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_for(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_json(path: Path, obj: Any, indent: int | None = 1) -> Path:
    """`obj` as JSON, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False))


def atomic_write_jsonl(path: Path, records: Iterable[dict]) -> int:
    """One JSON object a line, atomically; returns how many were written."""
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
    atomic_write_text(path, "".join(lines))
    return len(lines)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temp path (same directory, same suffix) to write a file of any kind to, e.g. a PNG by a library;
    it replaces `path` when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Build a directory under a temp name and swap it in whole when the block ends without error."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(path, ignore_errors=True)
    tmp.replace(path)


def read_json(path: Path, what: str = "file", hint: str = "rerun the command that writes it") -> Any:
    """A JSON file's value; a CodetuneError naming the file when it cannot be read or parsed."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CodetuneError(f"cannot read {what} {path}: {exc}", hint) from None


def iter_jsonl(path: Path, *, torn_tail: bool = False) -> Iterator[dict]:
    """JSON objects of a .jsonl (or .jsonl.gz) file; blank lines skipped.

    torn_tail=True: stop quietly at the first line that is not JSON (what a kill during an append
    leaves); False: raise a CodetuneError naming the file and line.
    """
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                if torn_tail:
                    return
                raise CodetuneError(
                    f"{path}:{lineno}: not valid JSON ({exc.msg})", "each line must be one JSON object"
                ) from None


def read_jsonl(path: Path, *, torn_tail: bool = False, missing_ok: bool = False) -> list[dict]:
    """All records of a JSONL file (see `iter_jsonl`); [] for a missing file when missing_ok."""
    path = Path(path)
    if missing_ok and not path.is_file():
        return []
    return list(iter_jsonl(path, torn_tail=torn_tail))


def append_jsonl(f: IO[str], records: Iterable[dict]) -> None:
    """Append records to an open text file and flush, so a kill loses at most the line being written."""
    for r in records:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
    f.flush()
