"""Does the training set contain the benchmark, or the test split? Long n-grams and MinHash near-duplicates.

Code is compared as a stream of normalised tokens (`code_tokens`): comments (`#`, `//`) and whitespace are
dropped, so reformatting changes nothing; documentation is kept as its lower-cased words (Python docstrings
are string literals, Java/JavaScript descriptions are `/* ... */` block comments, and a benchmark prompt is
mostly that text); string literals become their words, numbers stay as written, keywords and operators stay.
An identifier a copy would rename (a variable, parameter or function name) is canonicalised inside each
window of tokens: it becomes "new" or "the identifier k tokens back", so a copy with consistently renamed
identifiers gives the same windows wherever it sits. Names a copy keeps are kept: attributes and methods
after a `.`, Python's builtins, and capitalised (type) names in Java/JavaScript. JavaScript's optional
semicolons are dropped.

Two checks, each flag naming the training item, the benchmark task (or test item), the part compared, the
method and its score:

- `ngram`: the share of a reference part's `n`-token windows (a benchmark task's prompt, its canonical
  solution; a test item's whole function) that occur in a training item; flagged from `min_share`. A part
  shorter than `n` tokens has no window and cannot be flagged this way (counted as `short_parts`).
- `minhash`: whole functions (prompt + body) as sets of `shingle`-token windows, candidates from MinHash LSH
  (`datasketch`, `num_perm` permutations, banded for `lsh_threshold`), flagged where the exact Jaccard
  similarity of the two sets is at least `jaccard` (the LSH band threshold sits below it so that a pair just
  above the flag threshold is rarely missed; every score written is exact).

The defaults and why: benchmarks/RESULTS.md (contamination) and the report's section. A run writes its check
to contamination.json (`check_splits`); with `data.decontaminate` the flagged training items are dropped
before training.
"""

from __future__ import annotations

import builtins
import hashlib
import keyword
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codetune.data.records import CodeSample

FILE = "contamination.json"  # in the run directory, beside train.jsonl
VERSION = 1


@dataclass(frozen=True)
class Settings:
    """How overlap is measured (written into every contamination.json)."""

    n: int = 13  # n-gram length in normalised tokens (as GPT-3's decontamination; why: benchmarks/RESULTS.md)
    min_share: float = 0.5  # flag when this share of a reference part's n-grams is in a training item
    shingle: int = 5  # MinHash shingle length in normalised tokens
    num_perm: int = 128  # MinHash permutations
    jaccard: float = 0.7  # flag when the exact Jaccard similarity of two functions' shingle sets reaches this
    lsh_threshold: float = 0.5  # the LSH bands are tuned for this similarity (candidates; verified exactly)


@dataclass
class Reference:
    """What a training set must not contain: a benchmark task (prompt, solution) or a test item (function)."""

    kind: str  # "benchmark" | "test"
    id: str
    name: str
    language: str
    parts: dict[str, str]  # part -> code, checked by n-grams
    whole: str  # the whole function, checked by MinHash


@dataclass
class Flag:
    """One training item found in one reference, by one method."""

    train_id: str
    train_name: str
    train_source: str
    train_line: int
    ref_kind: str
    ref_id: str
    ref_name: str
    part: str  # "prompt" | "solution" | "function"
    method: str  # "ngram" | "minhash"
    score: float  # ngram: share of the part's n-grams found; minhash: exact Jaccard of the shingle sets
    shared: int  # ngram: n-grams shared; minhash: shingles shared


def benchmark_references(tasks: Iterable[Any]) -> list[Reference]:
    """References of benchmark tasks (anything with task_id, language, prompt, canonical_solution,
    entry_point): the prompt and the canonical solution as parts, both together as the whole function."""
    out = []
    for t in tasks:
        parts = {"prompt": t.prompt}
        if t.canonical_solution:
            parts["solution"] = t.canonical_solution
        name = getattr(t, "entry_point", "") or t.task_id
        whole = t.prompt + (t.canonical_solution or "")
        out.append(Reference("benchmark", t.task_id, name, t.language, parts, whole))
    return out


def heldout_references(samples: Iterable[CodeSample]) -> list[Reference]:
    """References of held-out test items: each whole function (prompt + target)."""
    out = []
    for s in samples:
        code = s.prompt + s.target
        out.append(Reference("test", s.id, s.name, s.language, {"function": code}, code))
    return out


# ------------------------------------------------------------------------------------------- tokens

_C_KEYWORDS = {
    "java": """abstract assert boolean break byte case catch char class const continue default do double else
        enum extends final finally float for goto if implements import instanceof int interface long native new
        package private protected public return short static strictfp super switch synchronized this throw
        throws transient try void volatile while var record yield sealed permits true false null""",
    "javascript": """await break case catch class const continue debugger default delete do else export extends
        finally for function if import in instanceof let new return super switch this throw try typeof var void
        while with yield async of static get set true false null undefined NaN Infinity""",
}
_KEEP = {
    # Soft keywords (match, case, _) are names most of the time; `_` is a builtin only in some processes.
    "python": set(keyword.kwlist) | {n for n in dir(builtins) if not n.startswith("_")} | {"self", "cls"},
    **{lang: set(words.split()) for lang, words in _C_KEYWORDS.items()},
}
_OPS = r"\*\*=?|//=?|>>>?=?|<<=?|->|=>|:=|::|\.\.\.|===|!==|\+\+|--|&&|\|\||[-+*/%&|^!=<>]=|\S"
_NUMBER = r"0[xXbBoO][0-9a-fA-F_]+[lLnN]?|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][-+]?\d+)?[jJlLfFdDnN]?"
_PY = re.compile(
    r"(?P<skip>\s+|#[^\n]*|\\\n)"
    r"|(?P<str>(?i:[rbuf]{0,2})(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"))"
    rf"|(?P<num>{_NUMBER})|(?P<name>[^\W\d]\w*)|(?P<op>{_OPS})"
)
_C = re.compile(
    r"(?P<skip>\s+|//[^\n]*)|(?P<doc>/\*[\s\S]*?(?:\*/|$))"
    r"|(?P<str>\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"|`(?:\\.|[^`\\])*`)"
    rf"|(?P<num>{_NUMBER})|(?P<name>[A-Za-z_$][\w$]*)|(?P<op>{_OPS})"
)
_WORD = re.compile(r"[^\W_]+")
_WORD_TAG, _STR_TAG = "\x01", "\x02"  # words of text and the start of a string: never equal to code


def code_tokens(code: str, language: str) -> list[tuple[str, bool]]:
    """The normalised tokens of `code`: (text, canonicalised) pairs, canonicalised = an identifier a copy
    would rename (its text then plays no part, only where it recurs)."""
    pattern = _PY if language == "python" else _C
    keep = _KEEP.get(language, set())
    out: list[tuple[str, bool]] = []
    after_dot = False
    for m in pattern.finditer(code):
        kind, text = m.lastgroup, m.group()
        if kind == "skip":
            continue
        if kind in ("doc", "str"):
            if kind == "str":
                out.append((_STR_TAG, False))
            out += [(_WORD_TAG + w.lower(), False) for w in _WORD.findall(text)]
        elif kind == "num":
            out.append((text.lower().replace("_", ""), False))
        elif kind == "name":
            rename = not (after_dot or text in keep or (language != "python" and text[:1].isupper()))
            out.append((text, rename))
        elif not (text == ";" and language == "javascript"):  # optional there (ASI): a copy may lack them
            out.append((text, False))
        after_dot = text == "."
    return out


_CODES: dict[str, int] = {}
_MASK62 = (1 << 62) - 1


def _code(text: str) -> int:
    """A stable 62-bit code of a token (the same in every process, unlike hash()), far above the small
    values of canonicalised identifiers."""
    c = _CODES.get(text)
    if c is None:
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        c = _CODES[text] = (int.from_bytes(digest, "little") & _MASK62) | (1 << 61)
    return c


def _arrays(tokens: list[tuple[str, bool]]) -> tuple[np.ndarray, np.ndarray]:
    """Token codes, and for a canonicalised identifier the distance back to its previous occurrence
    (0 elsewhere; a huge value for a first occurrence)."""
    codes = np.empty(len(tokens), dtype=np.uint64)
    back = np.zeros(len(tokens), dtype=np.int64)
    last: dict[str, int] = {}
    for i, (text, rename) in enumerate(tokens):
        if rename:
            codes[i] = 0
            back[i] = i - last[text] if text in last else 1 << 40
            last[text] = i
        else:
            codes[i] = _code(text)
    return codes, back


_K = np.random.default_rng(20261202).integers(1, 1 << 63, size=64, dtype=np.uint64) | np.uint64(1)


def window_hashes(tokens: list[tuple[str, bool]], n: int) -> np.ndarray:
    """64-bit hashes of every `n`-token window (empty when there are fewer than n tokens), each identifier
    inside a window encoded as new (1) or as the distance back to its previous occurrence in the window (2+d),
    so the hash does not depend on the names or on where the window sits."""
    return windows(_arrays(tokens), n)


def encode(code: str, language: str) -> tuple[np.ndarray, np.ndarray]:
    """`code`'s normalised tokens as arrays (codes, distances back), from which `windows` hashes any n."""
    return _arrays(code_tokens(code, language))


def windows(encoded: tuple[np.ndarray, np.ndarray], n: int) -> np.ndarray:
    """`window_hashes` of an `encode`d text."""
    if n > len(_K):
        raise ValueError(f"windows of at most {len(_K)} tokens")
    codes, back = encoded
    m = codes.size - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(m, dtype=np.uint64)
    for j in range(n):
        c, b = codes[j : j + m], back[j : j + m]
        ident = c == 0
        v = np.where(ident, np.where(b <= j, b + 2, 1).astype(np.uint64), c)
        h += v * _K[j]  # uint64 arithmetic wraps: a polynomial hash modulo 2**64
    return _mix(h)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads the bits so the high half works as a 32-bit hash too."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


# -------------------------------------------------------------------------------------------- checks


def find_flags(
    train: list[CodeSample], refs: list[Reference], settings: Settings = Settings()
) -> tuple[list[Flag], dict[str, int]]:
    """Every (training item, reference) overlap by either method, and counts of what was checked.

    Returns:
        The flags, sorted by training item, reference and method; and `short_parts`: reference parts with
        fewer than `settings.n` tokens (no n-gram to look for).
    """
    encoded = [encode(t.prompt + t.target, t.language) for t in train]  # once for both checks
    flags = ngram_flags(train, refs, settings, encoded)
    flags += minhash_flags(train, refs, settings, encoded)
    flags.sort(key=lambda f: (f.train_id, f.ref_kind, f.ref_id, f.part, f.method))
    short = sum(len(code_tokens(code, r.language)) < settings.n for r in refs for code in r.parts.values())
    return flags, {"short_parts": short}


def ngram_flags(
    train: list[CodeSample], refs: list[Reference], s: Settings, encoded: list | None = None
) -> list[Flag]:
    """Training items holding at least `s.min_share` of a reference part's `s.n`-token windows (`encoded`:
    the training items' `encode`d texts, when the caller has them)."""
    index: dict[int, list[int]] = {}  # n-gram -> the reference parts holding it
    parts: list[tuple[Reference, str, int]] = []
    for r in refs:
        for part, code in r.parts.items():
            grams = np.unique(window_hashes(code_tokens(code, r.language), s.n))
            if grams.size == 0:
                continue
            for g in grams.tolist():
                index.setdefault(g, []).append(len(parts))
            parts.append((r, part, int(grams.size)))
    if not parts:
        return []
    known = np.sort(np.fromiter(index, dtype=np.uint64, count=len(index)))
    out = []
    for k, t in enumerate(train):
        enc = encoded[k] if encoded is not None else encode(t.prompt + t.target, t.language)
        grams = np.unique(windows(enc, s.n))
        at = np.minimum(np.searchsorted(known, grams), known.size - 1)
        hits = grams[known[at] == grams]
        counts: dict[int, int] = {}
        for g in hits.tolist():
            for p in index[g]:
                counts[p] = counts.get(p, 0) + 1
        for p, shared in counts.items():
            r, part, total = parts[p]
            if shared / total >= s.min_share:
                out.append(_flag(t, r, part, "ngram", shared / total, shared))
    return out


def minhash_flags(
    train: list[CodeSample], refs: list[Reference], s: Settings, encoded: list | None = None
) -> list[Flag]:
    """Training items whose whole function is a near-duplicate (exact Jaccard >= `s.jaccard`) of a reference's
    (`encoded` as for `ngram_flags`)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=s.lsh_threshold, num_perm=s.num_perm)
    sets: dict[int, np.ndarray] = {}
    for i, r in enumerate(refs):
        shingles = np.unique(window_hashes(code_tokens(r.whole, r.language), s.shingle))
        if shingles.size:
            sets[i] = shingles
            lsh.insert(i, _minhash(shingles, s.num_perm))
    out = []
    for k, t in enumerate(train):
        enc = encoded[k] if encoded is not None else encode(t.prompt + t.target, t.language)
        shingles = np.unique(windows(enc, s.shingle))
        if not shingles.size or not sets:
            continue
        for i in sorted(lsh.query(_minhash(shingles, s.num_perm))):
            shared = int(np.intersect1d(shingles, sets[i], assume_unique=True).size)
            jac = shared / (shingles.size + sets[i].size - shared)
            if jac >= s.jaccard:
                out.append(_flag(t, refs[i], "function", "minhash", jac, shared))
    return out


_PERMUTATIONS: dict[int, Any] = {}


def _minhash(shingles: np.ndarray, num_perm: int):
    """datasketch's MinHash of a set of shingle hashes (their high 32 bits are the element hashes)."""
    from datasketch import MinHash

    if num_perm not in _PERMUTATIONS:
        _PERMUTATIONS[num_perm] = MinHash(num_perm=num_perm, seed=1).permutations
    m = MinHash(num_perm=num_perm, seed=1, hashfunc=int, permutations=_PERMUTATIONS[num_perm], scheme="affine32")
    m.update_batch((shingles >> np.uint64(32)).tolist())
    return m


def _flag(t: CodeSample, r: Reference, part: str, method: str, score: float, shared: int) -> Flag:
    return Flag(t.id, t.name, t.source, t.line, r.kind, r.id, r.name, part, method, round(score, 4), shared)


# ------------------------------------------------------------------------------------- per-run check


@dataclass
class Check:
    """One run's check, as contamination.json holds it."""

    settings: dict[str, Any]
    benchmark: str | None
    benchmark_note: str | None
    n_tasks: int
    n_train: int
    n_test: int
    flags: list[dict]
    short_parts: int
    decontaminate: bool
    dropped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    version: int = VERSION

    def summary(self) -> dict[str, Any]:
        """The run's metrics.json fields (`contam_*`)."""
        bench = [f for f in self.flags if f["ref_kind"] == "benchmark"]
        test = [f for f in self.flags if f["ref_kind"] == "test"]
        return {
            "contam_benchmark": self.benchmark,
            "contam_train_flagged_benchmark": len({f["train_id"] for f in bench}),
            "contam_tasks_flagged": len({f["ref_id"] for f in bench}),
            "contam_train_flagged_test": len({f["train_id"] for f in test}),
            "contam_test_flagged": len({f["ref_id"] for f in test}),
            "contam_dropped": len(self.dropped),
        }


def run_check(
    train: list[CodeSample],
    test: list[CodeSample],
    bench: Any,
    decontaminate: bool,
    settings: Settings = Settings(),
) -> Check:
    """Check a training set against a benchmark (an object with `name`, `tasks` (None when unavailable) and
    `note`, or None) and against the test split; `decontaminate` lists every flagged item as dropped."""
    start = time.perf_counter()
    tasks = list(getattr(bench, "tasks", None) or [])
    refs = benchmark_references(tasks) + heldout_references(test)
    flags, counts = find_flags(train, refs, settings)
    dropped = sorted({f.train_id for f in flags}) if decontaminate else []
    return Check(
        settings=asdict(settings),
        benchmark=getattr(bench, "name", None) if tasks else None,
        benchmark_note=None if tasks else (getattr(bench, "note", None) or "no benchmark for this run"),
        n_tasks=len(tasks),
        n_train=len(train),
        n_test=len(test),
        flags=[asdict(f) for f in flags],
        short_parts=counts["short_parts"],
        decontaminate=decontaminate,
        dropped=dropped,
        seconds=round(time.perf_counter() - start, 3),
    )


def check_splits(splits: Any, cfg: Any, bench: Any, run_dir: Path) -> Any:
    """The runner's data stage, on fresh splits (a `codetune.data.corpus.Splits`): check them, write
    contamination.json, and with `data.decontaminate` drop the flagged training items (counts updated:
    `decontaminated`, `train`). A base-model run trains nothing and is not checked. Returns the splits."""
    if cfg.baseline:
        return splits
    check = run_check(splits.train, splits.test, bench, cfg.data.decontaminate)
    write_check(run_dir, check)
    if check.dropped:
        drop = set(check.dropped)
        splits.train = [s for s in splits.train if s.id not in drop]
        splits.counts.update(decontaminated=len(drop), train=len(splits.train))
    return splits


def check_saved(train: list[CodeSample], test: list[CodeSample], cfg: Any, bench: Any, run_dir: Path) -> None:
    """A resumed run's splits (already saved, so never changed here): check them where contamination.json
    is missing (a run begun before the check existed)."""
    if cfg.baseline or (Path(run_dir) / FILE).is_file():
        return
    write_check(run_dir, run_check(train, test, bench, decontaminate=False))


def write_check(run_dir: Path, check: Check) -> None:
    from codetune.io import atomic_write_json

    atomic_write_json(Path(run_dir) / FILE, asdict(check))


def read_check(run_dir: Path) -> Check | None:
    """A run's contamination.json, None when it has none."""
    from codetune.io import read_json

    path = Path(run_dir) / FILE
    if not path.is_file():
        return None
    data = read_json(path, "contamination check", f"delete {path}: a rerun of the experiment writes it again")
    return Check(**data)


def contamination_metrics(run_dir: Path) -> dict[str, Any]:
    """The `contam_*` fields of a run's metrics ({} for a run without a check: a base-model run)."""
    check = read_check(run_dir)
    return {} if check is None else check.summary()
