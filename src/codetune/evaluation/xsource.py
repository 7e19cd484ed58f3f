"""Java and JavaScript call arguments as values and back: the source side of `testgen_x`.

`parse_args` reads the argument list of one call's source text (`s.entry(...)`, `entry(...)`) into nodes:
literals (`Lit`: int, long, double, float, str, bool), sequences (`Seq`: JS arrays, Java `Arrays.asList`,
`List.of`, `new ArrayList<>(...)`, `new int[]{...}`), maps (`Dict`: JS object literals, Java `Map.of`,
`new HashMap<>(Map.of(...))`) and anything else as its source text (`Raw`: `null`, chars, `Optional`,
`Math.pow(...)`, arithmetic). `merge` sums up what the seeds of a task have at one argument position
(`Template`); `print_value` writes a plain Python value back as source in that form, keeping Java's
literal kinds (`2.0` in a `List<Double>`, `5L` for a `long`, `1.5f` for a `float`) and refusing what the
language cannot hold as a literal (`Unprintable`: ints outside Java's int/long range or beyond 2**53 in
JS, non-finite floats, a list where the seeds have none).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from codetune.evaluation.benchmarks import Task

JAVA_INT = 2**31 - 1
_JAVA_LONG = 2**63 - 1
_JS_SAFE = 2**53


# ------------------------------------------------------------------------------------------ parsing


@dataclass(frozen=True)
class Lit:
    """A literal: kind is int, long, double, float, str or bool."""

    kind: str
    value: Any


@dataclass(frozen=True)
class Seq:
    """A sequence written in `form`: ("js",), ("call", "Arrays.asList"), ("new", "ArrayList<>", inner form
    or None for `new ArrayList<>()`), ("array", "int")."""

    form: tuple
    items: tuple


@dataclass(frozen=True)
class Dict:
    """A map written in `form`: ("js",), ("call", "Map.of"), ("new", "HashMap<>", inner form or None)."""

    form: tuple
    pairs: tuple


@dataclass(frozen=True)
class Raw:
    """A part kept as its source text (not mutated)."""

    text: str


_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<num>(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)[lLfFdD]?)"
    r"|(?P<str>\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\$]|\\.)*`)"
    r"|(?P<name>[A-Za-z_$][\w$]*)"
    r"|(?P<op>.)",
    re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0", "s": " "}
_ESCAPES.update({c: c for c in "\"'\\`/"})


class Unparsed(Exception):
    """An argument list this module does not read."""


def _unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        if e == "u" and re.match(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif e == "x" and re.match(r"[0-9a-fA-F]{2}", body[i + 2 : i + 4]):
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif e in _ESCAPES and not (e == "0" and body[i + 2 : i + 3].isdigit()):
            out.append(_ESCAPES[e])
            i += 2
        else:
            raise Unparsed(f"string escape \\{e}")
    s = "".join(out)
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in s):  # a surrogate pair: join it
        s = s.encode("utf-16", "surrogatepass").decode("utf-16")
    return s


class _Parser:
    """Recursive descent over the tokens of one call's argument list (Java or JavaScript)."""

    def __init__(self, src: str, language: str) -> None:
        self.src, self.language = src, language
        self.toks = [
            (m.lastgroup, m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(src) if m.lastgroup != "ws"
        ]
        self.i = 0

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.toks[j][1] if j < len(self.toks) else ""

    def take(self, text: str | None = None) -> str:
        if self.i >= len(self.toks) or (text is not None and self.toks[self.i][1] != text):
            raise Unparsed(f"expected {text!r}")
        self.i += 1
        return self.toks[self.i - 1][1]

    def items(self, close: str) -> list:
        out = []
        while self.peek() != close:
            out.append(self.value())
            if self.peek() == ",":
                self.take(",")
            elif self.peek() != close:
                raise Unparsed(f"expected , or {close}")
        self.take(close)
        return out

    def value(self):
        """One argument or element: a parsed node, or Raw up to the next separator at depth 0."""
        start = self.i
        try:
            node = self._known()
            if self.peek() in (",", ")", "]", "}", ":", ""):
                return node
        except (Unparsed, IndexError, ValueError):
            pass
        self.i = start
        return self._raw()

    def _raw(self) -> Raw:
        start, depth = self.i, 0
        while self.i < len(self.toks):
            t = self.toks[self.i][1]
            if depth == 0 and t in (",", ")", "]", "}"):
                break
            depth += t in "([{" if len(t) == 1 else 0
            depth -= t in ")]}" if len(t) == 1 else 0
            self.i += 1
        if self.i == start:
            raise Unparsed("an empty argument")
        return Raw(self.src[self.toks[start][2] : self.toks[self.i - 1][3]].strip())

    def _number(self, negative: bool) -> Lit:
        text = self.take().replace("_", "")
        suffix = text[-1].lower() if text[-1] in "lLfFdD" and not text.lower().startswith("0x") else ""
        body = text[:-1] if suffix else text
        if body.lower().startswith("0x"):
            kind, v = "int", int(body, 16)
        elif suffix in ("f", "d") or any(c in body for c in ".eE"):
            kind, v = ("float" if suffix == "f" else "double"), float(body)
        else:
            if len(body) > 1 and body.startswith("0"):
                raise Unparsed("an octal literal")
            kind, v = "int", int(body)
        if suffix == "l":
            kind = "long"
        return Lit(kind, -v if negative else v)

    def _known(self):
        kind, text = self.toks[self.i][0], self.peek()
        if text == "-" and self.toks[self.i + 1][0] == "num":
            self.take()
            return self._number(True)
        if kind == "num":
            return self._number(False)
        if kind == "str":
            if text[0] == "'" and self.language == "java":
                raise Unparsed("a char")
            self.take()
            return Lit("str", _unescape(text[1:-1]))
        if text in ("true", "false"):
            self.take()
            return Lit("bool", text == "true")
        return self._js() if self.language == "javascript" else self._java()

    def _js(self):
        if self.peek() == "[":
            self.take()
            return Seq(("js",), tuple(self.items("]")))
        if self.peek() == "{":
            self.take()
            pairs = []
            while self.peek() != "}":
                kind, key = self.toks[self.i][0], self.take()
                if kind == "str":
                    key = _unescape(key[1:-1])
                elif kind not in ("name", "num"):
                    raise Unparsed("an object key")
                self.take(":")
                pairs.append((Lit("str", str(key)), self.value()))
                if self.peek() == ",":
                    self.take()
            self.take("}")
            return Dict(("js",), tuple(pairs))
        raise Unparsed("not a JS literal")

    def _dotted(self) -> str:
        name = self.take()
        while self.peek() == "." and self.toks[self.i + 1][0] == "name":
            self.take()
            name += "." + self.take()
        return name

    def _java(self):
        if self.peek() == "new":
            self.take()
            cls = self._dotted()
            if self.peek() == "[":  # new int[]{...}
                self.take("[")
                self.take("]")
                self.take("{")
                return Seq(("array", cls), tuple(self.items("}")))
            if self.peek() == "<":
                depth = 0
                while True:
                    t = self.take()
                    cls += t
                    depth += (t == "<") - (t == ">")
                    if depth == 0:
                        break
            self.take("(")
            if self.peek() == ")":
                self.take()
                inner = None
            else:
                inner = self._java()
                self.take(")")
            node = inner or (Dict((), ()) if "Map" in cls else Seq((), ()))
            if isinstance(node, Seq) and "List" in cls:
                return Seq(("new", cls, node.form or None), node.items)
            if isinstance(node, Dict) and "Map" in cls:
                return Dict(("new", cls, node.form or None), node.pairs)
            raise Unparsed("a constructor not parsed")
        name = self._dotted()
        if name in ("Arrays.asList", "List.of"):
            self.take("(")
            return Seq(("call", name), tuple(self.items(")")))
        if name == "Map.of":
            self.take("(")
            flat = self.items(")")
            if len(flat) % 2:
                raise Unparsed("Map.of with an odd number of arguments")
            return Dict(("call", name), tuple(zip(flat[::2], flat[1::2])))
        raise Unparsed(f"{name} not parsed")


def split_call(call: str) -> tuple[str, str]:
    """("s.entry", "ARGS") of a call's source text `s.entry(ARGS)`."""
    head, _, rest = call.partition("(")
    return head.strip(), rest.rstrip()[:-1]


def parse_args(call: str, language: str) -> list[tuple[Any, str]]:
    """(node, source text) of each argument of a call's source text; Unparsed when it is malformed."""
    src = split_call(call)[1]
    p = _Parser(src, language)
    if not p.toks:
        return []
    args = []
    while True:
        start = p.toks[p.i][2]
        node = p.value()
        args.append((node, src[start : p.toks[p.i - 1][3]].strip()))
        if p.peek() == "":
            return args
        p.take(",")


# ----------------------------------------------------------------------------- values and templates


def to_value(node) -> Any:
    """The plain Python value of a node without Raw parts (a JS object's keys are strings)."""
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, Seq):
        return [to_value(x) for x in node.items]
    if isinstance(node, Dict):
        return {to_value(k): to_value(v) for k, v in node.pairs}
    raise TypeError(f"no value for {node!r}")


def has_raw(node) -> bool:
    if isinstance(node, Raw):
        return True
    if isinstance(node, Seq):
        return any(has_raw(x) for x in node.items)
    if isinstance(node, Dict):
        return any(has_raw(k) or has_raw(v) for k, v in node.pairs)
    return False


@dataclass
class Template:
    """What the seeds say about one position: its form and, below it, its elements' templates."""

    shape: str  # "lit", "seq", "dict" or "any" (mixed, or nothing known)
    kinds: frozenset = frozenset()  # literal kinds seen (lit)
    form: tuple = ()  # seq/dict: the first seed's form
    item: Template | None = None  # seq: elements; dict: values
    key: Template | None = None  # dict: keys


def merge(nodes: list) -> Template:
    """One template from the nodes the seeds have at the same position (elements of all seeds together)."""
    nodes = [n for n in nodes if not isinstance(n, Raw)]
    if not nodes:
        return Template("any")
    shapes = {type(n) for n in nodes}
    if shapes == {Lit}:
        return Template("lit", frozenset(n.kind for n in nodes))
    if shapes == {Seq}:
        # A constructed list (`new ArrayList<>(...)`) first: the solution may change its argument, and it
        # fits an ArrayList parameter too; then one that names its inner form.
        forms = sorted(
            (n.form for n in nodes), key=lambda f: (f[:1] != ("new",), f[:1] == ("new",) and f[2] is None)
        )
        form = forms[0]
        return Template("seq", form=form, item=merge([x for n in nodes for x in n.items]))
    if shapes == {Dict}:
        keys = [k for n in nodes for k, _ in n.pairs]
        values = [v for n in nodes for _, v in n.pairs]
        return Template("dict", form=nodes[0].form, item=merge(values), key=merge(keys))
    return Template("any")


def java_param_types(task: Task) -> list[str]:
    """The declared parameter types of the Java function under test ([] when not found)."""
    text = task.declaration or task.prompt
    m = re.search(rf"\b{re.escape(task.entry_point)}\s*\(([^)]*)\)", text)
    if m is None:
        return []
    params, depth, cur = [], 0, ""
    for c in m.group(1):
        depth += (c == "<") - (c == ">")
        if c == "," and depth == 0:
            params.append(cur)
            cur = ""
        else:
            cur += c
    params.append(cur)
    return [p.strip().rsplit(None, 1)[0] if " " in p.strip() else "" for p in params if p.strip()]


# ------------------------------------------------------------------------------------------ printing


def _java_string(s: str) -> str:
    """A Java string literal of `s`. Unicode escapes are read before lexing in Java, so quote, backslash
    and line breaks must be written as plain escapes, never as \\uXXXX."""
    out = []
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\n\t\r\b\f":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}[ch])
        elif 0x20 <= o < 0x7F:
            out.append(ch)
        elif o < 0x100:
            out.append(f"\\{o:03o}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            hi, lo = divmod(o - 0x10000, 0x400)
            out.append(f"\\u{0xD800 + hi:04x}\\u{0xDC00 + lo:04x}")
    return '"' + "".join(out) + '"'


class Unprintable(Exception):
    """A value that cannot be written in the template's form."""


def _number(v, t: Template, language: str, declared: str) -> str:
    kinds = t.kinds if t.shape == "lit" else frozenset()
    if isinstance(v, float) or ("double" in kinds or "float" in kinds) and language == "java":
        v = float(v)
        if not math.isfinite(v):
            raise Unprintable("a non-finite float")
        text = repr(v)
        if language == "java" and ("float" in kinds or re.search(r"\bfloat\b|Float", declared)):
            if abs(v) > 3.4e38:
                raise Unprintable("a float out of range")
            text += "f"
        return text
    if language == "javascript":
        if abs(v) > _JS_SAFE:
            raise Unprintable("an int beyond 2**53")
        return str(v)
    if "long" in kinds or re.search(r"\blong\b|Long", declared):
        if abs(v) > _JAVA_LONG:
            raise Unprintable("an int beyond Java's long")
        return f"{v}L"
    if abs(v) > JAVA_INT:
        raise Unprintable("an int beyond Java's int")
    return str(v)


def print_value(v: Any, t: Template, language: str, declared: str = "") -> str:
    """Source text of value `v` in the form of template `t` (Unprintable when it has none)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return _number(v, t, language, declared)
    if isinstance(v, str):
        return _java_string(v) if language == "java" else json.dumps(v)
    if isinstance(v, list):
        if t.shape not in ("seq", "any") or (language == "java" and t.shape != "seq"):
            raise Unprintable("a list where the seeds have none")
        item = t.item or Template("any")
        parts = ", ".join(print_value(x, item, language, declared) for x in v)
        return f"[{parts}]" if language == "javascript" else _java_seq(t.form, parts)
    if isinstance(v, dict):
        if t.shape != "dict" and not (language == "javascript" and t.shape == "any"):
            raise Unprintable("a map where the seeds have none")
        key, item = t.key or Template("any"), t.item or Template("any")
        if language == "javascript":
            return (
                "{"
                + ", ".join(f"{json.dumps(str(k))}: {print_value(x, item, language)}" for k, x in v.items())
                + "}"
            )
        pairs = [
            (print_value(k, key, language, declared), print_value(x, item, language, declared))
            for k, x in v.items()
        ]
        return _java_map(t.form, pairs)
    raise Unprintable(f"a {type(v).__name__}")


def _java_seq(form: tuple, parts: str) -> str:
    if form[:1] == ("array",):
        return f"new {form[1]}[]{{{parts}}}"
    if form[:1] == ("new",):
        inner = form[2] or ("call", "Arrays.asList")
        return f"new {form[1]}({_java_seq(inner, parts)})" if parts or form[2] else f"new {form[1]}()"
    name = form[1] if form[:1] == ("call",) else "Arrays.asList"
    return f"{name}({parts})"


def _java_map(form: tuple, pairs: list[tuple[str, str]]) -> str:
    if form[:1] == ("new",):
        inner = form[2] or ("call", "Map.of")
        return f"new {form[1]}({_java_map(inner, pairs)})" if pairs or form[2] else f"new {form[1]}()"
    if len(pairs) <= 10:
        return "Map.of(" + ", ".join(f"{k}, {v}" for k, v in pairs) + ")"
    return "Map.ofEntries(" + ", ".join(f"Map.entry({k}, {v})" for k, v in pairs) + ")"
