"""A task's tests as data: the calls of the function under test, and the rule each result must meet.

`to_data(task)` turns a task's `test` into a `DataTests` where the test allows it, and otherwise returns
the reason it does not (the task is then judged by running its test in one process with the
completion, "assert mode"; see `programs`). In data mode the sandboxed program receives only the calls'
inputs and writes each result as plain data; code outside the sandbox judges the results (`datamode`).

Python (HumanEval; HumanEval+'s base tests are HumanEval's): the test's `check(candidate)` is parsed with
`ast`. Every statement of it must be an `assert` of one of these forms (an assert message is ignored;
`assert True` and imports are no-ops), with every argument a literal `ast.literal_eval` accepts (or a
constant arithmetic expression of number literals such as `2.0/3.0`):

- `candidate(ARGS) == EXP` or `EXP == candidate(ARGS)`      rule "eq": result == EXP, as Python's `==`
- `abs(candidate(ARGS) - EXP) < TOL` (or `<=`; also `abs(EXP - candidate(ARGS))`)  "abs_lt" / "abs_le"
- `math.isclose(candidate(ARGS), EXP, rel_tol=..., abs_tol=...)` (either order)    "isclose"
- `candidate(ARGS)` / `not candidate(ARGS)`                 "truthy" / "falsy"
- `candidate(ARGS) is True` / `is False` / `is None`        "is_true" / "is_false" / "is_none"

EXP is the literal when it is one (or a constant arithmetic expression); otherwise it is the canonical
solution's result on the same call (computed in the sandbox, EvalPlus's way; `Check.from_canonical`).
Types are kept both ways (a tuple argument stays a tuple; a result's tuples, sets, dicts, ints and floats
come back as such), so `==` compares as it would have in the original assert: `(1, 2) != [1, 2]`,
`1 == 1.0 == True`.

Java and JavaScript (HumanEval-X): every use of the function under test in the test (after comments
are dropped) must be a call, `s.entry(...)` in Java and `entry(...)` in JavaScript, whose arguments are
self-contained: literals, arrays, object literals (JS), `new ArrayList<>(Arrays.asList(...))`,
`List.of(...)`, `Map.of(...)`, `Optional` and the like (Java); no variable, no other call of the
solution, no random numbers. Each call's source text becomes a `Check` with rule "same": its result
must equal the canonical solution's result on the same call, encoded as JSON by a serializer of ours;
a call written inside `Math.abs(CALL - X) < TOL` is compared with that absolute tolerance instead of
exactly (rule "abs_lt"). A Java test that calls other methods of the solution (`s.encode(...)`) or uses
the function under test in any other way stays in assert mode. Equality with the canonical result on
every call the test makes implies the test's own verdict on those results whenever the test depends on
nothing else, which is what these conditions check, and the canonical solution passes the test, which
`datamode` checks before it uses the canonical results (a task whose canonical solution fails its own
test stays in assert mode).
"""

from __future__ import annotations

import ast
import hashlib
import json
import operator
import re
from dataclasses import dataclass
from typing import Any

from codetune.evaluation.benchmarks import Task

RULES = ("eq", "abs_lt", "abs_le", "isclose", "truthy", "falsy", "is_true", "is_false", "is_none", "same")
FORMAT = 1  # of DataTests.key(): bump when the meaning of a parsed check changes


@dataclass(frozen=True)
class Check:
    """One call of the function under test and the rule its result must meet.

    Attributes:
        call: Python: the argument tuple (Python values); Java/JavaScript: the call's source text.
        rule: one of RULES.
        expected: the value the rule compares with (Python literals); None when `from_canonical`.
        from_canonical: the expected value is the canonical solution's result on this call.
        tol: the tolerance of "abs_lt"/"abs_le".
        isclose: the keyword arguments of "isclose" (rel_tol, abs_tol).
        wrap: "tuple", "list", "set", "frozenset" or "sorted" when the test compares `wrap(candidate(...))`
            (applied to the result, and to the canonical result when that is the expected value).
        source: the test's statement (for one-line details).
    """

    call: Any
    rule: str
    expected: Any = None
    from_canonical: bool = False
    tol: float = 0.0
    isclose: tuple[tuple[str, float], ...] = ()
    wrap: str = ""
    source: str = ""


@dataclass(frozen=True)
class DataTests:
    """A task's tests as data: its checks, in the test's order."""

    language: str
    checks: tuple[Check, ...]

    @property
    def needs_canonical(self) -> bool:
        return any(c.from_canonical for c in self.checks)

    def key(self) -> str:
        """A digest of what the checks are (the expected-output cache's key, with the task's code)."""
        body = [(c.call, c.rule, c.expected, c.from_canonical, c.tol, c.isclose, c.wrap) for c in self.checks]
        text = json.dumps([FORMAT, self.language, _stable(body)])
        return hashlib.sha256(text.encode()).hexdigest()


def _stable(x: Any) -> Any:
    """A JSON form of a literal that is the same in every process (sets sorted: their order is the hash's)."""
    if isinstance(x, (list, tuple)):
        return [type(x).__name__, [_stable(v) for v in x]]
    if isinstance(x, (set, frozenset)):
        return [type(x).__name__, sorted(json.dumps(_stable(v)) for v in x)]
    if isinstance(x, dict):
        return ["dict", [[_stable(k), _stable(v)] for k, v in x.items()]]
    return [type(x).__name__, repr(x)]


def to_data(task: Task) -> DataTests | str:
    """The task's tests as data, or one line saying why they cannot be (the task stays in assert mode)."""
    parse = {"python": _python, "java": _java, "javascript": _javascript}.get(task.language)
    if parse is None:
        return f"tests of {task.language} tasks are not parsed into data"
    try:
        out = parse(task)
    except RecursionError:
        return "the test is nested too deeply to parse"
    if isinstance(out, DataTests) and not out.checks:
        return "the test calls the function under test nowhere"
    return out


# ------------------------------------------------------------------------------------------------ Python

_ARITH = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_NOT_CONSTANT = object()


_SEQUENCES = {"tuple": tuple, "list": list, "set": set, "frozenset": frozenset, "sorted": sorted}


def _constant(node: ast.AST) -> Any:
    """The value of a literal, of arithmetic on literals (`2.0/3.0`, `0 ** 0`, `'ab' + 'c'`) and of
    `tuple/list/set/sorted(LITERAL)`, at any depth inside lists, tuples, sets and dicts; else _NOT_CONSTANT."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_constant(e) for e in node.elts]
        if any(x is _NOT_CONSTANT for x in items):
            return _NOT_CONSTANT
        try:
            return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
        except TypeError:  # an unhashable set element
            return _NOT_CONSTANT
    if isinstance(node, ast.Dict) and None not in node.keys:
        keys, values = [_constant(k) for k in node.keys], [_constant(v) for v in node.values]
        if any(x is _NOT_CONSTANT for x in keys + values):
            return _NOT_CONSTANT
        try:
            return dict(zip(keys, values))
        except TypeError:
            return _NOT_CONSTANT
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        return _arithmetic(node.op, _constant(node.left), _constant(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _constant(node.operand)
        if type(v) in (int, float):
            return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Call) and _wrapper(node) is not None:
        v = _constant(node.args[0])
        if v is not _NOT_CONSTANT:
            try:
                return _SEQUENCES[node.func.id](v)
            except TypeError:
                return _NOT_CONSTANT
    return _NOT_CONSTANT


def _arithmetic(op: ast.operator, a: Any, b: Any) -> Any:
    if a is _NOT_CONSTANT or b is _NOT_CONSTANT:
        return _NOT_CONSTANT
    numbers = all(type(x) in (int, float) for x in (a, b))
    same_sequences = type(a) is type(b) and type(a) in (str, list, tuple)
    if numbers and not (isinstance(op, ast.Pow) and abs(b) > 64):
        fn = _ARITH[type(op)]
    elif isinstance(op, ast.Add) and same_sequences:
        fn = operator.add
    elif isinstance(op, ast.Mult) and _small_repeat(a, b):
        fn = operator.mul
    else:
        return _NOT_CONSTANT
    try:
        return fn(a, b)
    except (ArithmeticError, ValueError, TypeError):
        return _NOT_CONSTANT


def _small_repeat(a: Any, b: Any) -> bool:
    """`a * b` repeats a str or list (either order) into at most 10**6 items."""
    seq, count = (a, b) if type(b) is int else (b, a)
    return type(count) is int and type(seq) in (str, list) and 0 <= count and len(seq) * count <= 10**6


def _wrapper(node: ast.AST) -> str | None:
    """`tuple`, `list`, `set`, `frozenset` or `sorted` when `node` is a call of one of them on one argument."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _SEQUENCES
        and len(node.args) == 1
        and not node.keywords
        and not isinstance(node.args[0], ast.Starred)
    ):
        return node.func.id
    return None


def _candidate_call(node: ast.AST, name: str) -> tuple | str | None:
    """The argument tuple of `candidate(ARGS)`; a reason when it is such a call we cannot use; else None."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name):
        return None
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        return "a call with keyword or starred arguments"
    args = [_constant(a) for a in node.args]
    if any(a is _NOT_CONSTANT for a in args):
        return f"a call whose arguments are not literals: {ast.unparse(node)[:80]}"
    return tuple(args)


def _expected(node: ast.AST) -> tuple[Any, bool]:
    v = _constant(node)
    return (None, True) if v is _NOT_CONSTANT else (v, False)


def _number(node: ast.AST) -> float | None:
    v = _constant(node)
    return float(v) if type(v) in (int, float) else None


def _check(test: ast.expr, name: str, source: str) -> Check | str:
    """The Check of one assert's test expression, or why it has none."""

    def call(node):
        return _candidate_call(node, name)

    args = call(test)
    if args is not None:
        return args if isinstance(args, str) else Check(args, "truthy", source=source)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        args = call(test.operand)
        if args is not None:
            return args if isinstance(args, str) else Check(args, "falsy", source=source)
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if isinstance(op, ast.Eq):
            for side, other in ((left, right), (right, left)):
                wrap = _wrapper(side)
                args = call(side.args[0] if wrap else side)
                if isinstance(args, str):
                    return args
                if args is not None:
                    if call(other) is not None:
                        return "a comparison of two calls"
                    exp, canon = _expected(other)
                    return Check(args, "eq", exp, canon, wrap=wrap or "", source=source)
        if isinstance(op, ast.Is) and isinstance(right, ast.Constant) and right.value in (True, False, None):
            args = call(left)
            if args is not None:
                if isinstance(args, str):
                    return args
                rule = {True: "is_true", False: "is_false", None: "is_none"}[right.value]
                return Check(args, rule, source=source)
        if isinstance(op, (ast.Lt, ast.LtE)):
            got = _abs_difference(left, name, source, tol=_number(right), le=isinstance(op, ast.LtE))
            if got is not None:
                return got
    got = _isclose(test, name, source)
    if got is not None:
        return got
    return f"an assert of a form not parsed: {ast.unparse(test)[:80]}"


def _abs_difference(node, name: str, source: str, tol: float | None, le: bool) -> Check | str | None:
    """`abs(candidate(ARGS) - EXP)` (either order) compared with the number `tol`."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("abs",)):
        return None
    if len(node.args) != 1 or node.keywords or not isinstance(node.args[0], ast.BinOp):
        return None
    diff = node.args[0]
    if not isinstance(diff.op, ast.Sub) or tol is None:
        return None
    for side, other in ((diff.left, diff.right), (diff.right, diff.left)):
        args = _candidate_call(side, name)
        if isinstance(args, str):
            return args
        if args is not None:
            exp, canon = _expected(other)
            return Check(args, "abs_le" if le else "abs_lt", exp, canon, tol=tol, source=source)
    return None


def _isclose(node, name: str, source: str) -> Check | str | None:
    """`math.isclose(candidate(ARGS), EXP, rel_tol=..., abs_tol=...)` (either order)."""
    if not (isinstance(node, ast.Call) and ast.unparse(node.func) in ("math.isclose", "isclose")):
        return None
    if len(node.args) != 2:
        return None
    kw = []
    for k in node.keywords:
        v = _number(k.value)
        if k.arg not in ("rel_tol", "abs_tol") or v is None:
            return f"math.isclose with an argument not parsed: {ast.unparse(node)[:80]}"
        kw.append((k.arg, v))
    for side, other in ((node.args[0], node.args[1]), (node.args[1], node.args[0])):
        args = _candidate_call(side, name)
        if isinstance(args, str):
            return args
        if args is not None:
            exp, canon = _expected(other)
            return Check(args, "isclose", exp, canon, isclose=tuple(sorted(kw)), source=source)
    return None


def _check_function(tree: ast.Module) -> ast.FunctionDef | str:
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if len(checks) != 1:
        return "the test does not define one check(candidate)"
    fn = checks[0]
    if len(fn.args.args) != 1 or fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs or fn.decorator_list:
        return "check() does not take exactly one parameter"
    for n in tree.body:  # the rest of the module: constants (METADATA), imports, a call of check()
        simple = isinstance(n, (ast.Assign, ast.Import, ast.ImportFrom)) or n is fn
        call = isinstance(n, ast.Expr) and isinstance(n.value, ast.Call) and ast.unparse(n.value.func) == "check"
        if not (simple or call):
            return f"the test module has other code: {ast.unparse(n).splitlines()[0][:80]}"
    return fn


def _python(task: Task) -> DataTests | str:
    try:
        tree = ast.parse(task.test)
    except (SyntaxError, ValueError) as exc:
        return f"the test does not parse ({type(exc).__name__})"
    fn = _check_function(tree)
    if isinstance(fn, str):
        return fn
    name = fn.args.args[0].arg
    checks = []
    for st in fn.body:
        if isinstance(st, (ast.Import, ast.ImportFrom, ast.Pass)):
            continue
        if isinstance(st, ast.Expr) and isinstance(st.value, (ast.Constant, ast.Name)):
            continue  # a docstring, or a bare name (HumanEval/129 has a lone `print`)
        if not isinstance(st, ast.Assert):
            return f"check() has a statement that is not an assert: {ast.unparse(st).splitlines()[0][:80]}"
        if isinstance(st.test, ast.Constant) and st.test.value is True:
            continue  # `assert True, "..."`: a no-op
        got = _check(st.test, name, ast.unparse(st.test))
        if isinstance(got, str):
            return got
        checks.append(got)
    return DataTests("python", tuple(checks))


# ------------------------------------------------------------------------------------- Java, JavaScript

_QUOTES = {"java": "\"'", "javascript": "\"'`"}


def mask(src: str, language: str) -> str:
    """`src` with comments blanked and string/char literal contents replaced by spaces (same length, same
    offsets), so that parentheses and names are found only in code. Newlines are kept."""
    out = list(src)
    i, n = 0, len(src)
    quotes = _QUOTES[language]

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif src[i] in quotes:
            q, j = src[i], i + 1
            while j < n and src[j] != q and not (src[j] == "\n" and q != "`"):
                j += 2 if src[j] == "\\" else 1
            if q == "`" and "${" in src[i:j]:
                out[i] = "$"  # a template with substitutions is code: flagged by the name check
            blank(i + 1, min(j, n))
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _close_paren(masked: str, start: int) -> int | None:
    """Index just past the `)` that closes the `(` at `start - 1`, or None."""
    depth = 1
    for j in range(start, len(masked)):
        c = masked[j]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return j + 1 if c == ")" else None
    return None


_JS_NAMES = {"true", "false", "null", "undefined", "NaN", "Infinity"}
_JAVA_NAMES = {
    "new", "true", "false", "null",
    "ArrayList", "LinkedList", "Arrays", "asList", "List", "of", "Map", "HashMap", "TreeMap", "Set", "HashSet",
    "TreeSet", "Optional", "empty", "Integer", "Long", "Double", "Float", "Boolean", "Character", "String",
    "Object", "int", "long", "double", "float", "boolean", "char", "MAX_VALUE", "MIN_VALUE", "valueOf",
}  # fmt: skip
_NUMBER = re.compile(
    r"(?<![\w$])(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)[lLfFdDn]?"
)
_NAME = re.compile(r"[A-Za-z_$][\w$]*")


_MATH = re.compile(r"\bMath\s*\.\s*(?:pow|abs|min|max|sqrt)\b")


def _free_names(masked_args: str, language: str) -> list[str]:
    """Names in a call's (masked) arguments that are not literals, allowed constructors or Math.pow & co."""
    text = _MATH.sub(" ", _NUMBER.sub(" ", masked_args))
    allowed = _JAVA_NAMES if language == "java" else _JS_NAMES
    bad = []
    for m in _NAME.finditer(text):
        name = m.group(0)
        if name in allowed:
            continue
        if language == "javascript" and re.match(r"\s*:", text[m.end() :]) and "?" not in text:
            continue  # an object literal's key
        bad.append(name)
    if "$" in masked_args and language == "javascript":
        bad.append("${...}")
    return bad


_TOLERANCE = re.compile(r"^\s*-[^;<>]*?\)\s*(<=?)\s*(" + _NUMBER.pattern + r")")


def _tolerance(masked: str, src: str, start: int, end: int) -> tuple[str, float] | None:
    """("abs_lt"|"abs_le", TOL) when the call at src[start:end] is written `Math.abs(CALL - X) < TOL`."""
    if not re.search(r"Math\s*\.\s*abs\s*\(\s*$", masked[:start]):
        return None
    m = _TOLERANCE.match(masked[end:])
    if m is None:
        return None
    try:
        return ("abs_le" if m.group(1) == "<=" else "abs_lt"), float(
            src[end + m.start(2) : end + m.end(2)].rstrip("dDfF")
        )
    except ValueError:
        return None


def _calls(task: Task, language: str) -> DataTests | str:
    src = task.test
    masked = mask(src, language)
    name = re.escape(task.entry_point)
    uses = list(
        re.finditer(rf"(?<![\w$.]){name}(?![\w$])" if language == "javascript" else rf"\b{name}\b", masked)
    )
    prefix = r"\bs\s*\.\s*" if language == "java" else r"(?<![\w$.])"
    checks = []
    for m in re.finditer(prefix + name + r"\s*\(", masked):
        end = _close_paren(masked, m.end())
        if end is None:
            return "a call of the function under test whose parentheses do not balance"
        args = masked[m.end() : end - 1]
        free = _free_names(args, language)
        if free:
            return f"a call whose arguments are not self-contained (uses {', '.join(dict.fromkeys(free))})"
        tol = _tolerance(masked, src, m.start(), end)
        text = src[m.start() : end]
        line = src[src.rfind("\n", 0, m.start()) + 1 : src.find("\n", end) if "\n" in src[end:] else len(src)]
        if tol is None:
            checks.append(Check(text, "same", from_canonical=True, source=line.strip()))
        else:
            checks.append(Check(text, tol[0], from_canonical=True, tol=tol[1], source=line.strip()))
    if len(uses) != len(checks):
        return "the test uses the function under test other than by calling it"
    if language == "java":
        other = sorted({x for x in re.findall(r"\bs\s*\.\s*(\w+)", masked) if x != task.entry_point})
        if other:
            return f"the test calls other methods of the solution ({', '.join(other)})"
        if len(re.findall(r"\bnew\s+Solution\s*\(", masked)) != 1:
            return "the test does not make exactly one Solution"
    return DataTests(language, tuple(checks))


def _java(task: Task) -> DataTests | str:
    return _calls(task, "java")


def _javascript(task: Task) -> DataTests | str:
    return _calls(task, "javascript")
