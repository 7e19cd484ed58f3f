"""Files every stage shares: atomic writes (temp file + rename) and JSON Lines read/append.

A reader never sees half a file: each write goes to a temp file in the same directory, then one
`os.replace` puts it in place. JSONL appends (a resumable stage's partial output) are the only
non-atomic writes; their readers stop at the first torn line, which a kill mid-write leaves behind.
A write that runs out of space is a CodetuneError naming the file, the old file left as it was.

Readers of text, JSON, JSONL and YAML turn every way a file can be bad (missing, not UTF-8, not parsable,
not an object) into one CodetuneError line naming the file, and the line where there is one.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import shutil
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from codetune.errors import CodetuneError


def _tmp_for(path: Path) -> Path:
    # The pid keeps two processes that write the same file from sharing a temp file.
    return path.with_name(f"{path.name}.tmp{os.getpid()}")


def disk_full(exc: BaseException, path: Path | str) -> CodetuneError | None:
    """The one-line error for a write to `path` that ran out of space (or quota); None for any other error."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CodetuneError(f"no space left on device writing {path}", "free space and rerun to resume")
    return None


@contextlib.contextmanager
def disk_full_is_an_error(path: Path | str) -> Iterator[None]:
    """Turn running out of space inside the block into `disk_full`'s one-line error; other errors pass."""
    try:
        yield
    except OSError as exc:
        full = disk_full(exc, path)
        if full is None:
            raise
        raise full from None


def atomic_write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` atomically (the parent is created); returns the path. Out of space, the old
    file stays and a CodetuneError names the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_for(path)
    try:
        with disk_full_is_an_error(path):
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
        with disk_full_is_an_error(path):
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
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        full = disk_full(exc, path)
        if full:
            raise full from None
        raise
    shutil.rmtree(path, ignore_errors=True)
    tmp.replace(path)


def _not_utf8(where: Path | str, data: bytes, exc: UnicodeDecodeError, line_offset: int = 0) -> str:
    """Where a file stops being UTF-8 text: `PATH:LINE:COL: not UTF-8 text (byte 0xff)`."""
    before = data[: exc.start]
    line = line_offset + before.count(b"\n") + 1
    col = exc.start - (before.rfind(b"\n") + 1) + 1
    return f"{where}:{line}:{col}: not UTF-8 text (byte 0x{data[exc.start]:02x}; is it a binary file?)"


def read_text(path: Path, what: str = "file", hint: str = "check the path") -> str:
    """A UTF-8 text file's contents; a CodetuneError naming the file (and where it is not UTF-8) otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CodetuneError(f"cannot read {what} {path}: {exc.strerror or exc}", hint) from None
    return decode_text(data, f"{what} {path}", hint)


def decode_text(data: bytes, where: str, hint: str) -> str:
    """`data` as UTF-8; a CodetuneError `WHERE:LINE:COL: not UTF-8 text (byte 0x..)` otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodetuneError(_not_utf8(where, data, exc), hint) from None


def parse_yaml(text: str, where: str, hint: str = "fix the YAML syntax there") -> Any:
    """YAML text's value; a CodetuneError of one line otherwise: `WHERE:LINE:COL: not valid YAML: problem`."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CodetuneError(f"{where}{_yaml_problem(exc, text)}", hint) from None


def _yaml_problem(exc: Exception, text: str) -> str:
    # PyYAML's own message spans several lines (a snippet with a caret); this keeps the position and problem.
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        position = getattr(exc, "position", None)  # a ReaderError: a character YAML does not allow
        if position is None:
            return f": not valid YAML: {first}"
        line = text.count("\n", 0, position) + 1
        col = position - (text.rfind("\n", 0, position) + 1) + 1
        return f":{line}:{col}: not valid YAML: {first}"
    out = f":{mark.line + 1}:{mark.column + 1}: not valid YAML: {problem}"
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context:
        out += f" ({context}" + (f" at {cmark.line + 1}:{cmark.column + 1}" if cmark else "") + ")"
    return out


def read_yaml(path: Path, what: str = "file", hint: str = "check the file") -> Any:
    """A UTF-8 YAML file's value; a one-line CodetuneError naming the file (and line) otherwise."""
    path = Path(path)
    return parse_yaml(read_text(path, what, hint), f"{what} {path}", hint)


def _kind(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def read_json(
    path: Path, what: str = "file", hint: str = "rerun the command that writes it", *, expect: type = dict
) -> Any:
    """A JSON file's value (an object unless `expect` says otherwise: `object` takes any value); a
    CodetuneError naming the file when it cannot be read, is not UTF-8, is not JSON or not of that type."""
    path = Path(path)
    text = read_text(path, what, hint)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CodetuneError(f"{what} {path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})", hint) from None
    if not isinstance(value, expect):
        raise CodetuneError(f"{what} {path} holds {_kind(value)}, not a JSON object", hint)
    return value


def iter_jsonl(
    path: Path, *, torn_tail: bool = False, what: str = "", hint: str = "each line must be one JSON object"
) -> Iterator[dict]:
    """JSON objects of a .jsonl (or .jsonl.gz) file; blank lines skipped.

    torn_tail=True: stop quietly at the first line that is not JSON or not UTF-8 (what a kill during an
    append leaves); False: raise a CodetuneError naming the file and line. A line that is JSON but not an
    object, and a file that cannot be read, raise either way. `what` and `hint` word those errors.
    """
    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            # Bytes, decoded a line at a time: a bad byte is then reported with its line.
            for lineno, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    if torn_tail:
                        return
                    raise CodetuneError(_not_utf8(name, raw, exc, lineno - 1), hint) from None
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    if torn_tail:
                        return
                    raise CodetuneError(f"{name}:{lineno}: not valid JSON ({exc.msg})", hint) from None
                if not isinstance(rec, dict):
                    raise CodetuneError(
                        f"{name}:{lineno}: {_kind(rec)}, not a JSON object (JSON Lines: one object per line)", hint
                    )
                yield rec
    except (OSError, EOFError, zlib.error) as exc:  # missing, unreadable, or a broken .gz
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise CodetuneError(f"cannot read {name}: {reason}", hint) from None


def read_jsonl(path: Path, *, torn_tail: bool = False, missing_ok: bool = False) -> list[dict]:
    """All records of a JSONL file (see `iter_jsonl`); [] for a missing file when missing_ok."""
    path = Path(path)
    if missing_ok and not path.is_file():
        return []
    return list(iter_jsonl(path, torn_tail=torn_tail))


def append_jsonl(f: IO[str], records: Iterable[dict]) -> None:
    """Append records to an open text file and flush, so a kill loses at most the line being written."""
    with disk_full_is_an_error(getattr(f, "name", "a JSONL file")):
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.flush()
