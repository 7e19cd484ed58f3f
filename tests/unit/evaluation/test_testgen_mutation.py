"""Type-aware mutation (evaluation/mutation.py): every mutant keeps its arguments' types, the stream is
seeded (same seed, same inputs, in any process), larger inputs are larger and within the cap."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from codetune.evaluation import mutation
from codetune.evaluation.mutation import Pool, SizeCap, candidates, grow_args, input_key, mutate_args, same_types

SEEDS = {
    "ints": [[3], [0], [-7]],
    "floats": [[1.5, 2], [0.0, 1]],
    "bools": [[True, "x"], [False, "yy"]],
    "strings": [["hello world"], ["(()())"], [""]],
    "lists": [[[1, 2, 3]], [[]], [[5, -1]]],
    "mixed_list": [[[1, "a", 3.5, None, [2]]]],
    "nested": [[[[1, 2], [3]], "ab"], [[[4]], ""]],
    "tuples": [[(1, 5), (2, 8)]],
    "dicts": [[{"a": 1, 5: "banana"}], [{}]],
    "sets": [[{"apple", "pear", "fig"}, frozenset({1, 2})]],
}


def _types_kept(seeds, args) -> bool:
    """Each argument keeps the type of the same position's argument in some seed."""
    return len(args) == len(seeds[0]) and all(any(same_types(s[i], a) for s in seeds) for i, a in enumerate(args))


@pytest.mark.parametrize("name", list(SEEDS))
def test_mutants_and_large_inputs_keep_every_arguments_type(name):
    seeds = SEEDS[name]
    pool = Pool.from_inputs(seeds)
    rng = mutation.rng_for(0, name)
    for i in range(300):
        base = seeds[i % len(seeds)]
        for args in (mutate_args(base, rng, pool), grow_args(base, rng, pool)):
            assert _types_kept(seeds, args), (name, base, args)


def test_type_rules_themselves():
    assert same_types([1, 2], [3]) and same_types([1, "a"], ["b", 2, 4]) and same_types([], ["anything"])
    assert not same_types([1, 2], [1.5]) and not same_types(1, True) and not same_types(1, 1.0)
    assert not same_types((1, 2), (1, 2, 3)) and not same_types((1, "a"), ("a", 1))
    assert same_types({"a": 1}, {"b": 2}) and not same_types({"a": 1}, {1: 2})


def test_a_list_of_mixed_kinds_gets_scalars_of_other_kinds_and_a_plain_one_never():
    """filter_integers' seeds mix kinds but hold no bool: a solution that keeps bools (isinstance(x, int))
    is caught only by a list that holds one. A list of ints alone never gets a bool."""
    assert same_types([4, {}, "a"], [True, None, 2.5]) and not same_types([1, 2], [True])
    mixed = [[[]], [[4, {}, [], 23.2, 9, "adasd"]], [[3, "c", 3, 3, "a", "b"]]]
    plain = [[[1, 2, 3]], [[4, 5]]]
    for seeds, want in ((mixed, True), (plain, False)):
        pool, rng = Pool.from_inputs(seeds), mutation.rng_for(0, "HumanEval/22")
        got = [mutate_args(seeds[i % len(seeds)], rng, pool) for i in range(300)]
        assert any(isinstance(x, bool) for (xs,) in got for x in xs) is want
        assert all(_types_kept(seeds, args) for args in got)


def test_floats_stay_finite_and_ints_in_the_cap():
    cap = SizeCap(int_min=-(2**31), int_max=2**31 - 1, float_abs_max=1e6)
    pool = Pool.from_inputs([[2**31 - 5, 1e300]])
    rng = mutation.rng_for(1, "cap")
    for i in range(500):
        step = mutate_args if i % 2 else grow_args
        x, f = step([2**31 - 5, 3.0], rng, pool, cap)
        assert -(2**31) <= x <= 2**31 - 1 and isinstance(f, float) and abs(f) <= 1e6


def test_mutation_does_not_touch_its_input():
    args = [[1, [2, 3]], {"k": [1]}, "s"]
    before = json.dumps([args[0], args[1], args[2]])
    rng = mutation.rng_for(0, "pure")
    for _ in range(200):
        mutate_args(args, rng, [args])
        grow_args(args, rng, [args])
    assert json.dumps(args) == before


def test_candidates_are_distinct_new_seeded_and_some_are_large():
    seeds = [[[1, 2, 3], "abc"], [[], "x"]]
    a = candidates(seeds, rng=mutation.rng_for(0, "T/1"), count=60)
    b = candidates(seeds, rng=mutation.rng_for(0, "T/1"), count=60)
    c = candidates(seeds, rng=mutation.rng_for(1, "T/1"), count=60)
    assert [x.args for x in a] == [x.args for x in b] and [x.args for x in a] != [x.args for x in c]
    keys = [input_key(x.args) for x in a]
    assert len(set(keys)) == len(keys) == 60 and not {input_key(s) for s in seeds} & set(keys)
    large = [x for x in a if x.kind == "large"]
    assert 5 <= len(large) <= 15
    biggest_seed = max(mutation.size(s) for s in seeds)
    assert all(mutation.size(x.args) > biggest_seed for x in large)
    assert all(mutation.size(x.args) <= SizeCap().max_size for x in a)


def test_input_key_tells_types_apart_and_ignores_set_order():
    assert len({input_key([1]), input_key([1.0]), input_key([True]), input_key(["1"])}) == 4
    assert input_key([(1, 2)]) != input_key([[1, 2]])
    assert input_key([{"b", "a"}]) == input_key([{"a", "b"}])


_SCRIPT = """
import json
from codetune.evaluation import mutation
seeds = [[{"apple", "pear", "fig", "kiwi"}, {"x": 1, "y": 2}, "word"]]
out = mutation.candidates(seeds, rng=mutation.rng_for(3, "H/1"), count=40)
print(json.dumps([mutation.input_key(c.args) for c in out]))
"""


def test_the_same_seed_gives_the_same_inputs_under_any_hash_seed():
    """Sets of strings iterate in hash order; the mutations never depend on it."""
    outs = []
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        res = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True)
        outs.append(res.stdout)
    assert outs[0] == outs[1] and len(json.loads(outs[0])) == 40
