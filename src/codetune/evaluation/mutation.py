"""Type-aware, seeded mutation of a function's inputs: new argument lists grown from a task's own tests.

EvalPlus's idea (type-aware mutation of seed inputs), codetune's code. An input is a list of arguments;
`mutate_args` changes one or two of them and `grow_args` makes a larger one, and both keep every
argument's Python type, recursively (the rule `same_types` states): a bool stays a bool, an int an int,
a float a float (never nan or inf), a str a str, a list a list whose new elements are mutated copies of
its own elements or of the same position's seed values (a list that already mixes element types, as
`filter_integers([4, {}, [], 23.2, 9, 'adasd'])` does, may also get a plain scalar of any kind: a bool, None,
an int, a float or a str), a tuple a tuple of the same length (tuples in
tests are mostly records, `(start, end)`), a dict a dict, a set a set. The ingredients a mutation draws
from (a string's alphabet, numbers seen, element templates) come from the task's seed inputs (`Pool`).

Everything is driven by one `random.Random` per task (`rng_for`: seeded by a string, so the stream is
the same on every machine and process) and never iterates a set in hash order, so the same seed gives
the same inputs. Sizes stay within a `SizeCap`. Which inputs are kept is decided by running the
canonical solution on them (`testgen`); this module only proposes them.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from codetune.evaluation.testcases import _stable

VERSION = 2  # of the mutation rules: part of a generated file's `generator` record
_STREAM = 1  # the name of the random streams (kept when the rules change: inputs they do not touch stay)
# What a list that mixes element types may also get (the order is part of the seeded stream).
_ANY_SCALARS = (True, False, None, 0, 7, -3, 0.5, "", "x")
_EXTRA_CHARS = " aZ0!_-,.\n"  # besides the seeds' own alphabet
_SMALL_INTS = (0, 1, -1, 2, 10, 100)
_GROW_LENGTHS = (50, 200, 1000)


@dataclass(frozen=True)
class SizeCap:
    """Bounds on what mutation makes.

    Attributes:
        max_len: items of one container, characters of one string.
        int_min, int_max: ints are clamped to this range (X: Java's int range).
        float_abs_max: floats are clamped to +-this.
        max_depth: nesting below which containers are not grown further.
        max_size: `size()` of a whole input; a larger one is not proposed.
    """

    max_len: int = 1000
    int_min: int = -(10**9)
    int_max: int = 10**9
    float_abs_max: float = 1e9
    max_depth: int = 6
    max_size: int = 20_000


@dataclass
class Pool:
    """Ingredients seen in a task's seed inputs.

    Attributes:
        positions: the seed values of each argument position.
        ints, floats, strings: every such value found anywhere in the seeds (sorted, deduplicated).
        alphabet: the characters of the seeds' strings (sorted) and a few others.
    """

    positions: list[list[Any]] = field(default_factory=list)
    ints: list[int] = field(default_factory=list)
    floats: list[float] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)
    alphabet: str = _EXTRA_CHARS

    @classmethod
    def from_inputs(cls, seeds: Sequence[Sequence[Any]]) -> Pool:
        ints: set[int] = set()
        floats: set[float] = set()
        strings: set[str] = set()

        def walk(x: Any, depth: int = 0) -> None:
            if depth > 20:
                return
            if isinstance(x, bool):
                return
            if isinstance(x, int):
                ints.add(x)
            elif isinstance(x, float) and math.isfinite(x):
                floats.add(x)
            elif isinstance(x, str):
                strings.add(x)
            elif isinstance(x, dict):
                for k, v in x.items():
                    walk(k, depth + 1)
                    walk(v, depth + 1)
            elif isinstance(x, (list, tuple, set, frozenset)):
                for v in x:
                    walk(v, depth + 1)

        width = max((len(s) for s in seeds), default=0)
        positions: list[list[Any]] = [[] for _ in range(width)]
        for args in seeds:
            for i, a in enumerate(args):
                positions[i].append(a)
                walk(a)
        chars = sorted({c for s in strings for c in s} | set(_EXTRA_CHARS))
        return cls(positions, sorted(ints), sorted(floats), sorted(strings), "".join(chars))

    def at(self, position: int) -> list[Any]:
        return self.positions[position] if 0 <= position < len(self.positions) else []


def _pool(seeds: Sequence[Sequence[Any]] | Pool) -> Pool:
    return seeds if isinstance(seeds, Pool) else Pool.from_inputs(seeds)


def rng_for(seed: int, task_id: str) -> random.Random:
    """The random stream of one task's mutations: a str seed (hashed by sha512, not by `hash()`), so it is
    the same in every process."""
    return random.Random(f"codetune-mutation:{_STREAM}:{seed}:{task_id}")


# ------------------------------------------------------------------------------------------- measures


def size(value: Any, _depth: int = 0) -> int:
    """Characters of strings + items of containers + decimal digits of numbers, recursively (1 for None
    and bools): how heavy an input is."""
    if _depth > 50:
        return 1
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return max(1, math.ceil(abs(value).bit_length() * 0.30103))
    if isinstance(value, float):
        return max(1, len(repr(value)) - 2)
    if isinstance(value, (str, bytes)):
        return max(1, len(value))
    if isinstance(value, dict):
        return 1 + sum(size(k, _depth + 1) + size(v, _depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return 1 + sum(size(v, _depth + 1) for v in value)
    return 1


def input_key(args: Sequence[Any]) -> str:
    """A key equal for equal inputs of equal types (1, 1.0 and True differ; sets in any order)."""
    return json.dumps(_stable(list(args)), separators=(",", ":"))


def _kind(x: Any) -> str:
    return "bool" if isinstance(x, bool) else type(x).__name__


def _mixed(items: Sequence[Any]) -> bool:
    """Whether the items are of more than one kind (bool and int count as two)."""
    return len({_kind(x) for x in items}) > 1


def _is_scalar(x: Any) -> bool:
    return x is None or isinstance(x, (bool, int, float, str))


def same_types(a: Any, b: Any, _depth: int = 0) -> bool:
    """Whether `b` keeps `a`'s types: same type at the top; tuples of the same length with element-wise
    same types; every element of a list/set (key and value of a dict) of `b` has the type of some element
    of `a` (any type when `a` is empty; any scalar kind too when `a`'s elements mix kinds)."""
    if _kind(a) != _kind(b):
        return False
    if _depth > 30:
        return True
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same_types(x, y, _depth + 1) for x, y in zip(a, b))
    if isinstance(a, (list, set, frozenset)):
        items = _sample(a)
        mixed = _mixed(items)
        return not a or all(
            (mixed and _is_scalar(y)) or any(same_types(x, y, _depth + 1) for x in items) for y in b
        )
    if isinstance(a, dict):
        if not a:
            return True
        keys, vals = _sample(list(a)), _sample(list(a.values()))
        return all(
            any(same_types(x, k, _depth + 1) for x in keys) and any(same_types(x, v, _depth + 1) for x in vals)
            for k, v in b.items()
        )
    return True


def _sample(items: Any, n: int = 20) -> list:
    """Up to n items whose kinds cover those of all items (a long list of ints needs one template)."""
    by_kind: dict[str, list] = {}
    for x in items:
        group = by_kind.setdefault(_kind(x), [])
        if len(group) < n:
            group.append(x)
    return [x for group in by_kind.values() for x in group]


# ----------------------------------------------------------------------------------------- scalars


def _clamp_int(x: int, cap: SizeCap) -> int:
    return min(cap.int_max, max(cap.int_min, x))


def _clamp_float(x: float, cap: SizeCap) -> float:
    if not math.isfinite(x):
        return 0.0
    return min(cap.float_abs_max, max(-cap.float_abs_max, x))


def _mutate_int(x: int, rng: random.Random, pool: Pool, cap: SizeCap) -> int:
    op = rng.randrange(9)
    if op == 0:
        y = x + rng.choice((1, -1))
    elif op == 1:
        y = x + rng.randint(-10, 10)
    elif op == 2:
        y = -x
    elif op == 3:
        y = rng.choice(_SMALL_INTS)
    elif op == 4 and pool.ints:
        y = rng.choice(pool.ints) + rng.choice((0, 0, 1, -1))
    elif op == 5:
        y = x * 2 if rng.random() < 0.5 else x // 2
    elif op == 6:
        y = rng.choice((cap.int_max, cap.int_min, 10 ** rng.randint(2, 6), -(10 ** rng.randint(2, 6))))
    else:
        y = x + rng.randint(-100, 100)
    return _clamp_int(y, cap)


def _mutate_float(x: float, rng: random.Random, pool: Pool, cap: SizeCap) -> float:
    op = rng.randrange(8)
    if op == 0:
        y = x + rng.choice((1.0, -1.0))
    elif op == 1:
        y = x + rng.uniform(-1.0, 1.0)
    elif op == 2:
        y = -x
    elif op == 3:
        y = rng.choice((0.0, 1.0, -1.0, 0.5))
    elif op == 4 and pool.floats:
        y = rng.choice(pool.floats)
    elif op == 5:
        y = x * rng.choice((2.0, 0.5, 10.0, 0.1))
    elif op == 6:
        y = float(round(x))
    else:
        y = x + rng.uniform(-100.0, 100.0)
    return _clamp_float(round(y, 6), cap)


def _char(rng: random.Random, pool: Pool) -> str:
    return rng.choice(pool.alphabet)


def _mutate_str(s: str, rng: random.Random, pool: Pool, cap: SizeCap) -> str:
    op = rng.randrange(10)
    i = rng.randint(0, len(s))
    if op == 0:  # insert
        out = s[:i] + _char(rng, pool) + s[i:]
    elif op == 1 and s:  # delete
        i = rng.randrange(len(s))
        out = s[:i] + s[i + 1 :]
    elif op == 2 and s:  # replace
        i = rng.randrange(len(s))
        out = s[:i] + _char(rng, pool) + s[i + 1 :]
    elif op == 3 and s:  # duplicate a piece
        j = rng.randint(i, min(len(s), i + 8))
        out = s[:j] + s[i:j] + s[j:]
    elif op == 4 and s:  # case of one char, or of all
        if rng.random() < 0.5:
            i = rng.randrange(len(s))
            out = s[:i] + s[i].swapcase() + s[i + 1 :]
        else:
            out = rng.choice((s.upper(), s.lower(), s.swapcase()))
    elif op == 5:
        out = ""
    elif op == 6 and pool.strings:  # splice with a seed string
        other = rng.choice(pool.strings)
        out = s[:i] + other[rng.randint(0, len(other)) :]
    elif op == 7 and len(s) > 1:  # swap two chars
        a, b = rng.randrange(len(s)), rng.randrange(len(s))
        chars = list(s)
        chars[a], chars[b] = chars[b], chars[a]
        out = "".join(chars)
    elif op == 8 and s:  # reverse a piece
        j = rng.randint(i, len(s))
        out = s[:i] + s[i:j][::-1] + s[j:]
    else:
        out = s + _char(rng, pool)
    return out[: cap.max_len]


# -------------------------------------------------------------------------------------- containers


def _template(items: Sequence[Any], donors: Sequence[Any], rng: random.Random) -> Any:
    """An element to mutate into a new one: one of `items`, else one from a donor container."""
    if items:
        return rng.choice(list(items))
    pool = [x for d in donors if isinstance(d, (list, tuple)) for x in d]
    pool += [x for d in donors if isinstance(d, (set, frozenset)) for x in _ordered(d)]
    return rng.choice(pool) if pool else _NOTHING


_NOTHING = object()


def _ordered(s: set | frozenset) -> list:
    """A set's items in a stable order (iteration order depends on the hash seed for strings)."""
    return sorted(s, key=lambda x: input_key([x]))


def _sortable(items: list) -> bool:
    try:
        sorted(items)
    except TypeError:
        return False
    return True


def _mutate_list(
    xs: list, rng: random.Random, pool: Pool, cap: SizeCap, donors: Sequence[Any], depth: int
) -> list:
    out = list(xs)
    op = rng.randrange(10)
    if op == 0 and out:  # drop one
        del out[rng.randrange(len(out))]
    elif op == 1 and out:  # duplicate one
        i = rng.randrange(len(out))
        out.insert(rng.randint(0, len(out)), out[i])
    elif op == 2 and len(out) > 1:  # swap two
        a, b = rng.randrange(len(out)), rng.randrange(len(out))
        out[a], out[b] = out[b], out[a]
    elif op in (3, 4):  # insert a new element of the list's kind (any scalar kind in a list of mixed kinds)
        kinds = out or [x for d in donors if isinstance(d, (list, tuple)) for x in d]
        if _mixed(kinds) and rng.random() < 0.3:
            out.insert(rng.randint(0, len(out)), rng.choice(_ANY_SCALARS))
        else:
            t = _template(out, donors, rng)
            if t is not _NOTHING:
                out.insert(rng.randint(0, len(out)), _mutate(t, rng, pool, cap, (), depth + 1))
    elif op in (5, 6) and out:  # mutate one in place
        i = rng.randrange(len(out))
        out[i] = _mutate(out[i], rng, pool, cap, (), depth + 1)
    elif op == 7 and len(out) > 1:
        if rng.random() < 0.5 and _sortable(out):
            out.sort()
        else:
            out.reverse()
    elif op == 8:
        out = []
    else:  # extend by a few
        for _ in range(rng.randint(1, 4)):
            t = _template(out, donors, rng)
            if t is _NOTHING:
                break
            out.append(_mutate(t, rng, pool, cap, (), depth + 1))
    return out[: cap.max_len]


def _mutate_tuple(xs: tuple, rng: random.Random, pool: Pool, cap: SizeCap, depth: int) -> tuple:
    if not xs:
        return xs
    out = list(xs)
    if len(out) > 1 and rng.random() < 0.2 and _kind(out[0]) == _kind(out[-1]):
        out[0], out[-1] = out[-1], out[0]
    else:
        i = rng.randrange(len(out))
        out[i] = _mutate(out[i], rng, pool, cap, (), depth + 1)
    return tuple(out)


def _mutate_dict(d: dict, rng: random.Random, pool: Pool, cap: SizeCap, donors: Sequence[Any], depth: int) -> dict:
    items = list(d.items())
    if not items:
        donor = [x for x in donors if isinstance(x, dict) and x]
        if not donor:
            return {}
        items = [rng.choice(list(rng.choice(donor).items()))]
        return dict(items)
    op = rng.randrange(6)
    out = dict(items)
    if op == 0:  # drop a key
        del out[rng.choice(items)[0]]
    elif op == 1:  # mutate a value
        k, v = rng.choice(items)
        out[k] = _mutate(v, rng, pool, cap, (), depth + 1)
    elif op == 2:  # mutate a key (same type; a collision just merges)
        k, v = rng.choice(items)
        del out[k]
        out[_mutate_key(k, rng, pool, cap)] = v
    elif op in (3, 4):  # add a key
        k, v = rng.choice(items)
        out[_mutate_key(k, rng, pool, cap)] = _mutate(v, rng, pool, cap, (), depth + 1)
    else:
        out = {}
    return out


def _mutate_key(k: Any, rng: random.Random, pool: Pool, cap: SizeCap) -> Any:
    if isinstance(k, (list, dict, set)):
        return k
    return _mutate(k, rng, pool, cap, (), 0)


def _mutate_set(s: set | frozenset, rng: random.Random, pool: Pool, cap: SizeCap, depth: int) -> set | frozenset:
    items = _ordered(s)
    op = rng.randrange(4)
    if op == 0 and items:
        items.pop(rng.randrange(len(items)))
    elif op in (1, 2) and items:
        items.append(_mutate(rng.choice(items), rng, pool, cap, (), depth + 1))
    elif op == 3:
        items = []
    try:
        return type(s)(items)
    except TypeError:  # an unhashable element appeared: keep the original
        return s


def _mutate(x: Any, rng: random.Random, pool: Pool, cap: SizeCap, donors: Sequence[Any], depth: int) -> Any:
    """A mutant of `x` of the same type (see the module docstring)."""
    if depth > cap.max_depth:
        return x
    if isinstance(x, bool):
        return not x
    if isinstance(x, int):
        return _mutate_int(x, rng, pool, cap)
    if isinstance(x, float):
        return _mutate_float(x, rng, pool, cap)
    if isinstance(x, str):
        return _mutate_str(x, rng, pool, cap)
    if isinstance(x, list):
        return _mutate_list(x, rng, pool, cap, donors, depth)
    if isinstance(x, tuple):
        return _mutate_tuple(x, rng, pool, cap, depth)
    if isinstance(x, dict):
        return _mutate_dict(x, rng, pool, cap, donors, depth)
    if isinstance(x, (set, frozenset)):
        return _mutate_set(x, rng, pool, cap, depth)
    return x  # None and anything else: kept


def mutate(
    value: Any, rng: random.Random, seeds: Sequence[Sequence[Any]] | Pool, cap: SizeCap | None = None
) -> Any:
    """One mutant of a single value, of the same type (`same_types(value, result)` holds)."""
    return _mutate(value, rng, _pool(seeds), cap or SizeCap(), (), 0)


def mutate_args(
    args: Sequence[Any], rng: random.Random, seeds: Sequence[Sequence[Any]] | Pool, cap: SizeCap | None = None
) -> list:
    """A mutant of an argument list: one argument changed (sometimes two), every type kept; `args` untouched."""
    pool, cap = _pool(seeds), cap or SizeCap()
    out = list(args)
    if not out:
        return out
    for _ in range(1 if len(out) == 1 or rng.random() < 0.7 else 2):
        i = rng.randrange(len(out))
        out[i] = _mutate(out[i], rng, pool, cap, pool.at(i), 0)
    return out


# ------------------------------------------------------------------------------------------- growing


def _grow(x: Any, rng: random.Random, pool: Pool, cap: SizeCap, donors: Sequence[Any], depth: int) -> Any:
    """A larger value of `x`'s type (lengths and magnitudes well past the seeds', within `cap`)."""
    if depth > cap.max_depth or isinstance(x, bool) or x is None:
        return x
    n = min(cap.max_len, rng.choice(_GROW_LENGTHS))
    if isinstance(x, int):
        big = rng.choice((10**3, 10**4, 10**5, 10**6, cap.int_max))
        return _clamp_int(rng.randint(big // 10, big) * (-1 if x < 0 else 1), cap)
    if isinstance(x, float):
        return _clamp_float(round(rng.uniform(-1.0, 1.0) * 10 ** rng.randint(2, 6), 6), cap)
    if isinstance(x, str):
        chars = list(x)
        alphabet = sorted(set(x)) or list(pool.alphabet)
        while len(chars) < n:
            if chars and rng.random() < 0.5:  # repeat a piece of itself
                i = rng.randrange(len(chars))
                chars[i:i] = chars[i : i + rng.randint(1, 8)]
            else:
                chars.insert(rng.randint(0, len(chars)), rng.choice(alphabet))
        return "".join(chars[:n])
    if isinstance(x, list):
        out = list(x)
        t_items = out
        for _ in range(n - len(out)):
            t = _template(t_items, donors, rng)
            if t is _NOTHING:
                break
            out.append(_mutate(t, rng, pool, cap, (), depth + 1))
        if rng.random() < 0.5:
            rng.shuffle(out)
        return out[: cap.max_len]
    if isinstance(x, tuple):
        return tuple(_grow(v, rng, pool, cap, (), depth + 1) if rng.random() < 0.5 else v for v in x)
    if isinstance(x, dict):
        out_d = dict(x) or _mutate_dict(x, rng, pool, cap, donors, depth)
        for _ in range(n):
            if not out_d or len(out_d) >= n:
                break
            k, v = rng.choice(list(out_d.items()))
            out_d[_mutate_key(k, rng, pool, cap)] = _mutate(v, rng, pool, cap, (), depth + 1)
        return out_d
    if isinstance(x, (set, frozenset)):
        items = _ordered(x)
        for _ in range(n):
            if not items:
                break
            items.append(_mutate(rng.choice(items), rng, pool, cap, (), depth + 1))
        try:
            return type(x)(items)
        except TypeError:
            return x
    return x


def grow_args(
    args: Sequence[Any], rng: random.Random, seeds: Sequence[Sequence[Any]] | Pool, cap: SizeCap | None = None
) -> list:
    """A larger input: every argument that can grow does, with probability 1/2 each (at least one)."""
    pool, cap = _pool(seeds), cap or SizeCap()
    out = list(args)
    growable = [i for i, a in enumerate(out) if not (a is None or isinstance(a, bool))]
    if not growable:
        return out
    chosen = [i for i in growable if rng.random() < 0.5] or [rng.choice(growable)]
    for i in chosen:
        out[i] = _grow(out[i], rng, pool, cap, pool.at(i), 0)
    return out


# ------------------------------------------------------------------------------------------ candidates


@dataclass(frozen=True)
class Candidate:
    """A proposed input: its arguments and how it was made ("mutant" or "large")."""

    args: list
    kind: str


def candidates(
    seeds: Sequence[Sequence[Any]],
    *,
    rng: random.Random,
    count: int,
    cap: SizeCap | None = None,
    large_share: float = 0.2,
    accept: Callable[[list], bool] | None = None,
) -> list[Candidate]:
    """Up to `count` distinct new inputs grown from `seeds`, about `large_share` of them large.

    Mutants are mutated again with some probability (chains of mutations reach further than one step);
    an input equal to a seed or to an earlier candidate, or larger than `cap.max_size`, is skipped, as is
    one `accept` refuses. Deterministic for a given `rng` state.
    """
    cap = cap or SizeCap()
    seeds = [list(s) for s in seeds]
    if not seeds or count < 1:
        return []
    pool = Pool.from_inputs(seeds)
    seen = {input_key(s) for s in seeds}
    out: list[Candidate] = []
    grown: list[list] = list(seeds)  # mutants feed later mutations
    n_large = round(count * large_share)
    tries = 0
    while len(out) < count and tries < 20 * count:
        tries += 1
        large = sum(c.kind == "large" for c in out) < n_large and rng.random() < large_share * 1.5
        base = rng.choice(grown) if rng.random() < 0.5 else rng.choice(seeds)
        args = grow_args(base, rng, pool, cap) if large else mutate_args(base, rng, pool, cap)
        key = input_key(args)
        if key in seen or size(args) > cap.max_size or (accept is not None and not accept(args)):
            continue
        seen.add(key)
        out.append(Candidate(args, "large" if large else "mutant"))
        if not large and len(grown) < 10 * len(seeds) + 100:
            grown.append(args)
    return out
