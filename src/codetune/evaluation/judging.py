"""Trusted comparison of a sandboxed run's results with the expected ones (data mode and HumanEval+).

Everything here runs outside the sandbox on what a run wrote: result records, one JSON line per call.
Python records come from `_plus_runner` (`{"h": digest, "v": type-preserving value}`, decoded with
`decode`; a value of a user type is an `Opaque`, equal to nothing); Java and JavaScript records from the
serializers in `_data_runner.java` / `_data_runner.js` (`{"v": JSON}`, compared with `same`). The rules
(which tolerance, which order counts) are stated in `datamode`'s docstring.
"""

from __future__ import annotations

import json
import math
from typing import Any

from codetune.evaluation import _plus_runner
from codetune.evaluation.testcases import Check


class Opaque:
    """A result the runner could not write as a value (an object of a user type): equal to nothing."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<{self.text}>"


_TAGS = {
    "t": lambda v: tuple(decode(x) for x in v),
    "d": lambda v: {decode(k): decode(x) for k, x in v},
    "s": lambda v: {decode(x) for x in v},
    "fs": lambda v: frozenset(decode(x) for x in v),
    "b": bytes.fromhex,
    "c": lambda v: complex(*v),
    "i": lambda v: int(v, 16),
    "r": Opaque,
}


def decode(v: Any) -> Any:
    """The Python value of `_plus_runner`'s type-preserving JSON form (ValueError/TypeError if malformed)."""
    if isinstance(v, list):
        return [decode(x) for x in v]
    if isinstance(v, dict):
        if len(v) != 1 or next(iter(v)) not in _TAGS:
            raise ValueError("not a tagged value")
        ((tag, val),) = v.items()
        return _TAGS[tag](val)
    return v


def encode(x: Any) -> Any:
    """`x` (a test's literal: tuples, sets, dicts, bytes...) in the runner's type-preserving form."""
    return _plus_runner._typed(x, [float("inf")])


def close(out: Any, exp: Any, atol: float) -> bool:
    """numpy.allclose(out, exp, rtol=1e-7, atol=atol) for numbers and equally long (nested) sequences."""
    if isinstance(exp, (list, tuple)):
        return (
            isinstance(out, (list, tuple))
            and len(out) == len(exp)
            and all(close(o, e, atol) for o, e in zip(out, exp))
        )
    if not isinstance(out, (int, float)) or not isinstance(exp, (int, float)):
        return False
    try:
        if math.isinf(out) or math.isinf(exp):
            return out == exp
        return abs(out - exp) <= atol + 1e-7 * abs(exp)
    except OverflowError:
        return False


def preview(x: Any, limit: int = 60) -> str:
    """A short repr of a value for a one-line detail."""
    return _cut(repr(x), limit)


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def records(data: bytes) -> list[dict | None]:
    """The result lines a run wrote, in order; None for a line that is not a JSON object."""
    out: list[dict | None] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [None]
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        out.append(rec if isinstance(rec, dict) else None)
    return out


_LARGE = Opaque("a result too large to write as a value")


def _python_value(rec: dict) -> Any:
    """A Python record's value (_LARGE when only its digest was written); ValueError if malformed."""
    if not isinstance(rec.get("h"), str):
        raise ValueError("no digest")
    return decode(rec["v"]) if "v" in rec else _LARGE


_WRAPS = {"tuple": tuple, "list": list, "set": set, "frozenset": frozenset, "sorted": sorted}


def _judge_python(check: Check, rec: dict, canon: dict | None) -> str | None:
    got = _python_value(rec)
    if check.wrap and got is not _LARGE:
        got = _WRAPS[check.wrap](got)
    if check.from_canonical:
        exp = _python_value(canon)
        if check.wrap and exp is not _LARGE:
            exp = _WRAPS[check.wrap](exp)
    else:
        exp = check.expected
    if check.rule == "eq":
        if got is _LARGE or exp is _LARGE:  # compare digests of `==`-equal forms
            want = canon["h"] if check.from_canonical else _plus_runner._digest(exp).hex()
            ok = not check.wrap and rec["h"] == want
        else:
            ok = got == exp
        return None if ok else f"expected {preview(exp)}, got {preview(got)}"
    if isinstance(got, Opaque):
        return f"expected plain data, got {preview(got)}"
    if check.rule in ("abs_lt", "abs_le"):
        if not isinstance(got, (int, float, complex)):
            return f"expected a number within {check.tol:g} of {preview(exp)}, got {preview(got)}"
        diff = abs(got - exp)
        ok = diff < check.tol if check.rule == "abs_lt" else diff <= check.tol
        return None if ok else f"expected within {check.tol:g} of {preview(exp)}, got {preview(got)}"
    if check.rule == "isclose":
        ok = math.isclose(got, exp, **dict(check.isclose))
        return None if ok else f"expected close to {preview(exp)}, got {preview(got)}"
    want = {"truthy": bool(got), "falsy": not got, "is_true": got is True, "is_false": got is False}
    want["is_none"] = got is None
    what = {"truthy": "a true value", "falsy": "a false value", "is_true": "True", "is_false": "False"}
    return None if want[check.rule] else f"expected {what.get(check.rule, 'None')}, got {preview(got)}"


def _number(x: Any) -> bool:
    return type(x) in (int, float)


def _sort_key(x: Any) -> str:
    """An order for JSON values in which numbers equal by value sort together (2 and 2.0)."""

    def norm(v):
        if _number(v):
            return float(v)
        if isinstance(v, list):
            return [norm(i) for i in v]
        if isinstance(v, dict):
            return {k: norm(i) for k, i in v.items()}
        return v

    return json.dumps(norm(x), sort_keys=True)


def same(a: Any, b: Any, tol: float = 0.0) -> bool:
    """Whether two JSON values from the Java/JS serializers are equal (see the module docstring)."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str):
        return type(a) is type(b) and a == b
    if _number(a) and _number(b):
        return a == b or (tol > 0 and abs(a - b) < tol)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, tol) for x, y in zip(a, b))
    if not (isinstance(a, dict) and isinstance(b, dict) and len(a) == len(b) == 1 and a.keys() == b.keys()):
        return False
    ((tag, x),) = a.items()
    y = b[tag]
    if tag == "r" or not (isinstance(x, list) and isinstance(y, list)) and tag in ("map", "set", "o", "opt"):
        return False
    if tag in ("map", "set"):  # any order
        return len(x) == len(y) and same(sorted(x, key=_sort_key), sorted(y, key=_sort_key), tol)
    return same(x, y, tol) if tag in ("o", "opt") else x == y


def _judge_json(check: Check, rec: dict, canon: dict) -> str | None:
    if set(rec) != {"v"}:
        raise ValueError("not a result record")
    got, exp = rec["v"], canon["v"]
    if check.rule in ("abs_lt", "abs_le"):
        ok = (
            _number(got)
            and _number(exp)
            and (abs(got - exp) < check.tol or check.rule == "abs_le" and abs(got - exp) <= check.tol)
        )
        return None if ok else f"expected within {check.tol:g} of {_json_preview(exp)}, got {_json_preview(got)}"
    return None if same(got, exp) else f"expected {_json_preview(exp)}, got {_json_preview(got)}"


def _json_preview(v: Any) -> str:
    return _cut(json.dumps(v, separators=(",", ":")).replace('{"u":0}', "undefined"))


def judge_check(language: str, check: Check, rec: dict | None, canon: dict | None) -> str | None:
    """None when the result record `rec` meets the check (given the canonical record), else why not."""
    if rec is None:
        return "an unreadable result"
    try:
        if language == "python":
            return _judge_python(check, rec, canon)
        return _judge_json(check, rec, canon)  # type: ignore[arg-type]
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError, ArithmeticError) as exc:
        return f"a result that cannot be judged ({type(exc).__name__})"
