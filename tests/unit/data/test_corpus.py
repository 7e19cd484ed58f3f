import pytest

from codetune.config import DataConfig
from codetune.data.corpus import curriculum_order, deduplicate, load_corpus, make_splits
from codetune.data.records import CodeSample, sample_id
from codetune.errors import DataError


def _sample(i, target=None, cc=1):
    target = target or f"    return {i}\n"
    return CodeSample(
        id=sample_id("python", target),
        language="python",
        prompt=f'def f{i}():\n    """Doc {i}."""\n',
        target=target,
        source="x.py",
        line=i,
        name=f"f{i}",
        complexity={"cyclomatic": cc},
    )


def _lengths(texts):
    return [len(t.split()) for t in texts]


def test_duplicates_dropped_before_split_so_no_target_leaks():
    samples = [_sample(i) for i in range(30)] + [_sample(100 + i, target=f"    return {i}\n") for i in range(30)]
    samples += [_sample(200 + i, target=f"  return   {i}\n") for i in range(30)]  # same after normalization
    uniq = deduplicate(samples)
    assert len(uniq) == 30
    splits, _ = make_splits(uniq, DataConfig(train_size=20, test_size=10), _lengths)
    train_targets = {s.target.strip() for s in splits.train}
    assert not train_targets & {s.target.strip() for s in splits.test}


def test_sizes_are_nested_and_test_set_shared():
    samples = [_sample(i) for i in range(400)]
    small, _ = make_splits(samples, DataConfig(train_size=50, test_size=40), _lengths)
    mid, _ = make_splits(samples, DataConfig(train_size=150, test_size=40), _lengths)
    big, _ = make_splits(samples, DataConfig(train_size=300, test_size=40), _lengths)
    assert [s.id for s in small.test] == [s.id for s in mid.test] == [s.id for s in big.test]

    def ids(sp):
        return [s.id for s in sp.train]

    assert ids(small) == ids(mid)[:50] and ids(mid) == ids(big)[:150]
    other, _ = make_splits(samples, DataConfig(train_size=50, test_size=40, split_seed=7), _lengths)
    assert [s.id for s in other.test] != [s.id for s in small.test]


def test_too_little_data_is_an_error_not_a_smaller_set():
    samples = [_sample(i) for i in range(30)]
    with pytest.raises(DataError, match="asked for 25 training \\+ 10 test samples"):
        make_splits(samples, DataConfig(train_size=25, test_size=10), _lengths)


def test_token_filter_uses_the_given_counter():
    samples = [_sample(i) for i in range(20)] + [_sample(50, target="    x = 1\n" * 40)]
    splits, n_tokens = make_splits(samples, DataConfig(train_size=10, test_size=5, max_tokens=20), _lengths)
    assert splits.counts["after_max_tokens"] == 20
    assert all(n <= 20 for n in n_tokens.values())


def test_stratified_pool_spreads_complexity_and_curriculum_sorts():
    samples = [_sample(i, cc=1 + i % 4) for i in range(200)]
    splits, n_tok = make_splits(samples, DataConfig(train_size=8, test_size=20, sampling="stratified"), _lengths)
    assert sorted({s.complexity["cyclomatic"] for s in splits.train}) == [1, 2, 3, 4]
    ordered = curriculum_order(splits.train, n_tok)
    assert [s.complexity["cyclomatic"] for s in ordered] == sorted(s.complexity["cyclomatic"] for s in ordered)


def test_load_corpus_caches_and_rejects_empty_trees(source_tree, tmp_path):
    first = load_corpus("python", str(source_tree))
    assert len(first) == 48
    assert [s.id for s in load_corpus("python", str(source_tree))] == [s.id for s in first]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.py").write_text("x = 1\n")
    with pytest.raises(DataError, match="no documented python functions"):
        load_corpus("python", str(empty))
    with pytest.raises(DataError, match="does not exist"):
        load_corpus("python", str(tmp_path / "missing"))
