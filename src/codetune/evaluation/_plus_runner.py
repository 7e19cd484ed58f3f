"""Runner of a differential test: calls a solution on many inputs and writes what it returned, as data.

Used by HumanEval+ (`humaneval_plus`) and by the tests-as-data verdicts of Python tasks (`datamode`).
Copied into the sandbox as the program's script (stdlib only, no codetune imports) next to:
- ct_sample.py: prompt + completion (or the canonical solution), exec'd into a namespace of its own;
- ct_inputs.json: the argument lists, base inputs first; ct_config.json: {"entry_point", "limits"
  (seconds per input, or null for none), "typed_inputs" (the inputs are in the type-preserving form
  below, so tuples, sets and dicts arrive as such; every caller of codetune's sends them so)}.

For each input it writes one line to ct_outputs.jsonl: {"h": digest, "v": value, "t": seconds}, where
`v` is the result in a type-preserving JSON form (tuples, dicts, sets tagged; left out when the result is
large) and `h` is SHA-256 of a form in which values Python's `==` calls equal are equal (1, 1.0 and True;
a set and a frozenset; dicts in any order), so large results are compared by digest. As in EvalPlus,
the solution's stdout/stderr are swallowed and reading stdin fails while it runs. An input that runs past
its limit ends the run with `CodetuneInputTimeout` on stderr. The runner reads the nonce from stdin
before the solution is loaded, and gives the process /dev/null as its stdin from then on; after the last
input it prints the end-of-run token (see `programs`): a run that exits early never has it.
"""

# ruff: noqa: S102 (exec of the solution is the point)

import hashlib
import json
import os
import signal
import sys
import time
from array import array

_CAP = 4096  # rough size of a result above which only its digest is written
_MAX_INT_BITS = 12_000  # larger ints go as hex: decimal conversion of them is capped at 4300 digits


class _TooBig(Exception):
    pass


class CodetuneInputTimeout(BaseException):  # noqa: N818 (its name is what the harness looks for)
    pass


def _typed(x, budget):
    """`x` as JSON with its types kept; _TooBig once `budget` (a one-item list) is spent."""
    budget[0] -= 8
    if budget[0] < 0:
        raise _TooBig
    if x is None or isinstance(x, bool):
        return x
    if isinstance(x, int):
        x = int(x)
        budget[0] -= x.bit_length() // 3
        if budget[0] < 0:
            raise _TooBig
        return x if x.bit_length() <= _MAX_INT_BITS else {"i": format(x, "x")}
    if isinstance(x, float):
        return float(x)
    if isinstance(x, str):
        budget[0] -= len(x)
        if budget[0] < 0:
            raise _TooBig
        return str(x)
    if isinstance(x, list):
        return [_typed(v, budget) for v in x]
    if isinstance(x, tuple):
        return {"t": [_typed(v, budget) for v in x]}
    if isinstance(x, dict):
        return {"d": [[_typed(k, budget), _typed(v, budget)] for k, v in x.items()]}
    if isinstance(x, (set, frozenset)):
        return {"fs" if isinstance(x, frozenset) else "s": [_typed(v, budget) for v in x]}
    if isinstance(x, (bytes, bytearray)):
        budget[0] -= 2 * len(x)
        if budget[0] < 0:
            raise _TooBig
        return {"b": bytes(x).hex()}
    if isinstance(x, complex):
        return {"c": [x.real, x.imag]}
    return {"r": f"{type(x).__name__} object"}


_UNTAG = {
    "t": lambda v: tuple(_untyped(x) for x in v),
    "d": lambda v: {_untyped(k): _untyped(x) for k, x in v},
    "s": lambda v: {_untyped(x) for x in v},
    "fs": lambda v: frozenset(_untyped(x) for x in v),
    "b": bytes.fromhex,
    "c": lambda v: complex(*v),
    "i": lambda v: int(v, 16),
}


def _untyped(v):
    """The value of `_typed`'s form (inputs written by the harness)."""
    if isinstance(v, list):
        return [_untyped(x) for x in v]
    if isinstance(v, dict):
        ((tag, val),) = v.items()
        return _UNTAG[tag](val)
    return v


def _scalar(x):
    """The `==` form of a number, string or None (bytes), or None for anything else; exact types first
    (the common case, and the fast one: results can hold millions of them)."""
    t = type(x)
    if t is int or t is bool:
        return b"i%x;" % x
    if t is float:
        if x.is_integer():  # False for inf and nan
            return b"i%x;" % int(x)
        return b"f%s;" % x.hex().encode()
    if t is str:
        e = x.encode("utf-8", "surrogatepass")
        return b"s%d:%s" % (len(e), e)
    if x is None:
        return b"N"
    if isinstance(x, int):
        return b"i%x;" % int(x)
    if isinstance(x, float):
        return _scalar(float(x))
    if isinstance(x, str):
        return _scalar(str(x))
    return None


def _doubles(x):
    """The elements of list/tuple `x` packed as doubles when each is a number a double holds exactly
    (whether that is so depends only on the values, so `==`-equal sequences agree), else None."""
    try:
        arr = array("d", x)
    except (TypeError, OverflowError, ValueError):
        return None
    return arr.tobytes() if arr.tolist() == list(x) else None


def _eq_form(x, u):
    """Feed `u` (a hash's update) a form of `x` equal for values `==` calls equal."""
    s = _scalar(x)
    if s is not None:
        u(s)
    elif isinstance(x, (list, tuple)):
        tag = b"L" if isinstance(x, list) else b"T"
        packed = _doubles(x)
        if packed is not None:
            u(b"%sd%d[%s]" % (tag, len(x), packed))
            return
        u(b"%s%d[" % (tag, len(x)))
        parts = [_scalar(v) for v in x]
        if None in parts:
            for v in x:
                _eq_form(v, u)
        else:
            u(b"".join(parts))
        u(b"]")
    elif isinstance(x, (bytes, bytearray)):
        u(b"b%d:" % len(x))
        u(bytes(x))
    elif isinstance(x, dict):  # order-free, as `==` is
        _unordered(b"D", [_digest(k) + _digest(v) for k, v in x.items()], u)
    elif isinstance(x, (set, frozenset)):
        _unordered(b"S", [_digest(v) for v in x], u)
    elif isinstance(x, complex) and x.imag == 0:
        _eq_form(x.real, u)
    else:  # an object of another type: equal to nothing (EvalPlus's outputs are builtins)
        u(b"R%d;" % id(x))


def _unordered(tag, parts, u):
    u(b"%s%d{" % (tag, len(parts)))
    for p in sorted(parts):
        u(p)
    u(b"}")


def _digest(x):
    h = hashlib.sha256()
    _eq_form(x, h.update)
    return h.digest()


def _record(x, seconds):
    rec = {"t": round(seconds, 6)}
    try:
        rec["h"] = _digest(x).hex()
    except RecursionError:
        rec["h"] = f"!{id(x)}"
    try:
        v = _typed(x, [_CAP])
        json.dumps(v)
        rec["v"] = v
    except (_TooBig, RecursionError, ValueError):
        pass
    return rec


class _Sink:
    """Where the solution's prints go (discarded)."""

    def write(self, s):
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False


class _NoInput(_Sink):
    def read(self, *a):
        raise OSError("reading stdin is not allowed")

    readline = read
    readlines = read


def _on_alarm(signum, frame):
    raise CodetuneInputTimeout


def _call_all(fn, inputs, limits, out):
    signal.signal(signal.SIGALRM, _on_alarm)
    for i, args in enumerate(inputs):
        limit = limits[i] if limits else 0
        t0 = time.perf_counter()
        if limit:
            signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            result = fn(*args)
        except CodetuneInputTimeout:
            raise CodetuneInputTimeout(f"input {i} ran past its time limit of {limit:g} s") from None
        finally:
            if limit:
                signal.setitimer(signal.ITIMER_REAL, 0)
        out.write(json.dumps(_record(result, time.perf_counter() - t0)) + "\n")
        out.flush()  # what was judged so far survives a later timeout or crash


def _take_nonce():
    """The nonce on stdin, read before any solution code runs; stdin is /dev/null from then on."""
    nonce = sys.stdin.read().strip()
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
    except OSError:
        os.close(0)
    return nonce


def main():
    nonce = _take_nonce()
    with open("ct_config.json", encoding="utf-8") as f:
        config = json.load(f)
    with open("ct_inputs.json", encoding="utf-8") as f:
        inputs = json.load(f)
    if config.get("typed_inputs"):
        inputs = [_untyped(args) for args in inputs]
    with open("ct_sample.py", encoding="utf-8") as f:
        src = f.read()
    real = sys.stdout, sys.stderr, sys.stdin
    with open("ct_outputs.jsonl", "w", encoding="utf-8") as out:
        sys.stdout, sys.stderr, sys.stdin = _Sink(), _Sink(), _NoInput()
        try:
            namespace = {}
            exec(compile(src, "ct_sample.py", "exec", dont_inherit=True), namespace)
            _call_all(namespace[config["entry_point"]], inputs, config["limits"], out)
        finally:
            sys.stdout, sys.stderr, sys.stdin = real
    sys.stdout.write("\n" + hashlib.sha256(("codetune:" + nonce).encode()).hexdigest() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
