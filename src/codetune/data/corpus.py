"""From a source tree to deterministic, leak-free train/test splits.

Order of operations matters for honesty: extract -> drop duplicates (by normalized target) -> length
filter -> one shuffle by `split_seed` -> test set = the first `test_size` items -> train pool = the rest.
A training set of size N is the first N of that one pool, so sizes are nested (50 within 150 within
300) and every run on the same data config is scored on exactly the same test items.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from codetune.config import DataConfig
from codetune.data.records import CodeSample, read_jsonl, write_jsonl
from codetune.errors import DataError
from codetune.paths import cache_dir

EXTRACTOR_VERSION = 2  # bump when extraction output changes, to invalidate cached corpora


@dataclass
class Splits:
    """The items one run trains and is tested on, and how the pool was whittled down."""

    train: list[CodeSample]
    test: list[CodeSample]
    counts: dict[str, int] = field(default_factory=dict)


def resolve_source(language: str, source: str | None) -> Path:
    from codetune.data import sources

    if source is None:
        return Path(sources.default_source(language))
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"data.source '{source}' does not exist", "give an existing file, directory or archive")
    return path


def _fingerprint(path: Path) -> str:
    """Cheap identity of a source: path, and size+mtime of the path itself (or each top entry)."""
    parts = [str(path.resolve())]
    entries = [path] if path.is_file() else sorted(path.iterdir())[:2000]
    for p in entries:
        try:
            st = p.stat()
            parts.append(f"{p.name}:{st.st_size}:{int(st.st_mtime)}")
        except OSError:
            continue
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def load_corpus(language: str, source: str | None, *, use_cache: bool = True) -> list[CodeSample]:
    """Extract (or read from the cache) every documented function of `source`, deduplicated."""
    from codetune.data import sources

    path = resolve_source(language, source)
    cache = cache_dir() / "corpora" / f"{language}-{_fingerprint(path)}-v{EXTRACTOR_VERSION}.jsonl"
    if use_cache and cache.is_file():
        return list(read_jsonl(cache))
    samples = sorted(sources.extract(language, path), key=lambda s: (s.source, s.line))
    samples = deduplicate(samples)
    if not samples:
        raise DataError(
            f"no documented {language} functions found in '{path}'",
            "point data.source at source code whose functions carry doc comments/docstrings",
        )
    write_jsonl(cache, samples)
    return samples


def deduplicate(samples: list[CodeSample]) -> list[CodeSample]:
    """Keep the first sample of each normalized target (ids are hashes of the normalized target)."""
    seen: set[str] = set()
    out = []
    for s in samples:
        if s.id not in seen:
            seen.add(s.id)
            out.append(s)
    return out


def _stratified_order(pool: list[CodeSample], n_bins: int = 4) -> list[CodeSample]:
    """Interleave complexity quartiles round-robin, keeping the shuffled order within each bin."""
    if len(pool) < n_bins:
        return pool
    values = sorted(s.complexity.get("cyclomatic", 1) for s in pool)
    cuts = [values[int(len(values) * q / n_bins)] for q in range(1, n_bins)]
    bins: list[list[CodeSample]] = [[] for _ in range(n_bins)]
    for s in pool:
        c = s.complexity.get("cyclomatic", 1)
        bins[sum(c > cut for cut in cuts)].append(s)
    bins = [b for b in bins if b]
    out = []
    for i in range(max(len(b) for b in bins)):
        out.extend(b[i] for b in bins if i < len(b))
    return out


def curriculum_order(samples: list[CodeSample], n_tokens: dict[str, int]) -> list[CodeSample]:
    """Simple -> complex: by cyclomatic complexity, then by token length, then id (stable)."""
    return sorted(samples, key=lambda s: (s.complexity.get("cyclomatic", 1), n_tokens.get(s.id, 0), s.id))


def make_splits(
    samples: list[CodeSample], cfg: DataConfig, count_tokens: Callable[[list[str]], list[int]]
) -> tuple[Splits, dict[str, int]]:
    """Filter, shuffle once and cut into test set and nested training set.

    Args:
        samples: deduplicated corpus.
        cfg: data config (sizes, filters, seed, sampling).
        count_tokens: tokenizer-backed length function for prompt+target texts (+1 for end-of-text).

    Returns:
        The splits and the token count of every kept sample id.

    Raises:
        DataError: when the corpus holds fewer items than `test_size + train_size` after filtering.
    """
    counts = {"extracted": len(samples)}
    kept = [s for s in samples if sum(1 for ln in s.target.splitlines() if ln.strip()) >= cfg.min_target_lines]
    counts["after_min_target_lines"] = len(kept)
    lengths = count_tokens([s.prompt + s.target for s in kept])
    n_tokens = {s.id: n + 1 for s, n in zip(kept, lengths)}
    kept = [s for s in kept if n_tokens[s.id] <= cfg.max_tokens]
    n_tokens = {s.id: n_tokens[s.id] for s in kept}
    counts["after_max_tokens"] = len(kept)
    kept.sort(key=lambda s: s.id)
    random.Random(cfg.split_seed).shuffle(kept)
    need = cfg.test_size + cfg.train_size
    if len(kept) < need:
        raise DataError(
            f"asked for {cfg.train_size} training + {cfg.test_size} test samples but the {cfg.language} corpus "
            f"has only {len(kept)} after filtering ({json.dumps(counts)})",
            "lower data.train_size or data.test_size, raise data.max_tokens, or give a larger data.source",
        )
    test, pool = kept[: cfg.test_size], kept[cfg.test_size :]
    if cfg.sampling == "stratified":
        pool = _stratified_order(pool)
    train = pool[: cfg.train_size]
    if cfg.order == "curriculum":
        train = curriculum_order(train, n_tokens)
    counts.update(pool=len(pool), train=len(train), test=len(test))
    return Splits(train=train, test=test, counts=counts), n_tokens


def save_splits(splits: Splits, out_dir: Path) -> None:
    write_jsonl(Path(out_dir) / "train.jsonl", splits.train)
    write_jsonl(Path(out_dir) / "test.jsonl", splits.test)
