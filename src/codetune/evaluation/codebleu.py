"""CodeBLEU (Ren et al. 2020, arXiv:2009.10297) for Python, Java, JavaScript, C and C++.

    CodeBLEU = a * BLEU + b * weighted n-gram match + c * syntax (AST) match + d * dataflow match

with a = b = c = d = 0.25 by default. Each component follows the reference implementation
(CodeXGLUE / the ``codebleu`` package 0.7.0) so scores are comparable, except where that
implementation is wrong; the differences are deliberate and listed here:

1. **Dataflow 0 is 0.** Upstream combines ``d * (dataflow or 1)``, so a candidate that matches none
   of the reference's dataflow edges gets full dataflow credit. Here 0 stays 0.
2. **No reference dataflow = undefined, not 0 or 1.** When the references of the whole corpus (or of
   the one sample, for sentence scores) have no dataflow edges (e.g. ``return 1``), the dataflow
   match is reported as ``None`` and CodeBLEU is computed from the other three components with
   their weights rescaled to the same total: ``(a*B + b*W + c*S) * (a+b+c+d) / (a+b+c)``.
   ``CodeBLEUResult.weights`` holds the weights actually used.
3. **C and C++ use a C-family dataflow extractor** written for the tree-sitter C/C++ grammars
   (``init_declarator``, ``assignment_expression``, ``update_expression``, ``for_range_loop``, ...);
   upstream runs its C# rules on C/C++ trees, whose node names mostly do not occur there.
4. **Deterministic.** Upstream orders the merged parents of a dataflow node by ``list(set(...))``,
   which depends on ``PYTHONHASHSEED``, and the order decides how variables are renumbered, so its
   dataflow score changes between processes (on HumanEval-X pairs built by
   ``benchmarks/codebleu_agreement.py``, many sample scores differ across PYTHONHASHSEED values; the
   counts are in benchmarks/RESULTS.md). Here merged parents are sorted by name: that is upstream's
   behaviour under one fixed hash order (equal sets still give equal lists), and it is reproducible.

Kept as upstream computes them, for comparability (documented, not endorsed):
    - BLEU and weighted n-gram match tokenise with ``str.split()`` after ``strip()``; smoothing is
      Chen & Cherry method 1 (epsilon 0.1 for zero n-gram matches); 0 if no unigram matches.
    - The weighted n-gram match is recall-oriented (clipped counts over the reference's n-grams);
      keywords weigh 1 and other unigrams 0.2; its brevity penalty uses a reference length of 2 per
      sample (upstream measures the length of a ``[tokens, weights]`` pair), so it is ~1 in practice.
    - Syntax match = fraction of the reference's subtrees (every node with children, plus the root,
      compared by S-expression) that occur anywhere in the candidate's tree.
    - Comments and docstrings are removed before the syntax and dataflow parts; the Python/Java/JS
      dataflow rules, quirks included (e.g. JavaScript ``x = y`` is not an assignment rule there).

Keyword lists are the languages' reserved words (Python ``keyword.kwlist`` + soft keywords
``match case type``; JLS 17 section 3.9; ECMAScript 2023 reserved words incl. strict-mode ones;
C11 section 6.4.1; C++20 [lex.key] + alternative tokens). Upstream's JavaScript list has ``True``
where ``true`` belongs; pass ``keywords=`` to reproduce it.

Differences from ``codebleu`` 0.7.0 (measured by ``benchmarks/codebleu_agreement.py``) also come from
grammar versions: 0.7.0 needs tree-sitter grammars from 2023-24, we use the current wheels, whose
node names and shapes changed in places. Seen on HumanEval-X pairs: JavaScript ``for (;;)`` conditions
are no longer wrapped in ``expression_statement`` and Python's ``not in`` / ``is not`` operators now
have children, which moves the syntax match of such samples a little. BLEU and weighted n-gram match
agree to rounding; dataflow agrees exactly except where upstream's set order (point 4) decides (the
figures are in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import io
import math
import re
import tokenize
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from codetune import languages
from codetune.errors import ConfigError
from codetune.evaluation._dataflow import extract_dataflow

SUPPORTED_LANGUAGES = languages.names(codebleu=True)
# Reserved words per language (the records in codetune.languages say which standard each list follows).
KEYWORDS: dict[str, frozenset[str]] = {n: languages.get(n).codebleu.keywords for n in SUPPORTED_LANGUAGES}

DEFAULT_WEIGHTS = (0.25, 0.25, 0.25, 0.25)
_KEYWORD_WEIGHT, _OTHER_WEIGHT = 1.0, 0.2
_SMOOTH_EPSILON = 0.1  # Chen & Cherry (2014) method 1
_MAX_N = 4
# Upstream's weighted n-gram brevity penalty measures len([tokens, weights]) == 2 per sample.
_UPSTREAM_WEIGHTED_REF_LEN = 2


@dataclass(frozen=True)
class CodeBLEUResult:
    """CodeBLEU and its four components, each in [0, 1].

    ``dataflow_match`` is None when the references have no dataflow edges; ``codebleu`` is then the
    rescaled combination of the other three (see ``weights``), or None if only dataflow had weight.
    """

    codebleu: float | None
    ngram_match: float
    weighted_ngram_match: float
    syntax_match: float
    dataflow_match: float | None
    weights: tuple[float, float, float, float]
    dataflow_reference_edges: int = field(default=0)

    def to_dict(self) -> dict[str, object]:
        return {
            "codebleu": self.codebleu,
            "ngram_match": self.ngram_match,
            "weighted_ngram_match": self.weighted_ngram_match,
            "syntax_match": self.syntax_match,
            "dataflow_match": self.dataflow_match,
            "weights": list(self.weights),
            "dataflow_reference_edges": self.dataflow_reference_edges,
        }


# ----------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------


def _check_language(language: str) -> str:
    """The canonical name of a language CodeBLEU supports (aliases accepted), else ConfigError."""
    record = languages.lookup(language)
    if record is None or record.codebleu is None:
        hint = (
            "C# and other languages are not supported"
            if language in ("c_sharp", "csharp", "cs")
            else "use one of: " + ", ".join(SUPPORTED_LANGUAGES)
        )
        raise ConfigError(f"CodeBLEU does not support language {language!r}", hint=hint)
    return record.name


def _check_weights(weights: Sequence[float]) -> tuple[float, float, float, float]:
    w = tuple(float(x) for x in weights)
    if len(w) != 4 or any(not math.isfinite(x) or x < 0 for x in w) or sum(w) == 0:
        raise ConfigError(
            f"CodeBLEU `weights` must be 4 non-negative numbers with a positive sum, got {weights!r}",
            hint="use e.g. weights=(0.25, 0.25, 0.25, 0.25) for (bleu, weighted, syntax, dataflow)",
        )
    return w  # type: ignore[return-value]


def _normalise_references(references: Sequence[str | Sequence[str]], n: int) -> list[list[str]]:
    if len(references) != n:
        raise ConfigError(
            f"CodeBLEU got {n} hypotheses but {len(references)} references",
            hint="pass one reference (or a list of references) per hypothesis",
        )
    out = []
    for i, ref in enumerate(references):
        refs = [ref] if isinstance(ref, str) else list(ref)
        if not refs or not all(isinstance(r, str) for r in refs):
            raise ConfigError(
                f"reference {i} must be a string or a non-empty list of strings", hint="pass source code strings"
            )
        out.append([r.strip() for r in refs])
    return out


# ----------------------------------------------------------------------------------------------
# BLEU and keyword-weighted n-gram match (token level)
# ----------------------------------------------------------------------------------------------


def _ngram_counts(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _closest_length(ref_lengths: Iterable[int], hyp_len: int) -> int:
    # Ties go to the shorter reference (Papineni et al. 2002, as in NLTK).
    return min(ref_lengths, key=lambda r: (abs(r - hyp_len), r))


def _combine(numerators: list[float], denominators: list[float], hyp_len: float, ref_len: float) -> float:
    """Geometric mean of n-gram precisions with method-1 smoothing, times the brevity penalty."""
    numerators = [float(x) for x in numerators]
    denominators = [float(x) for x in denominators]
    hyp_len, ref_len = float(hyp_len), float(ref_len)
    if numerators[0] == 0:
        return 0.0
    if hyp_len > ref_len:
        bp = 1.0
    elif hyp_len == 0:
        bp = 0.0
    else:
        bp = math.exp(1 - ref_len / hyp_len)
    logs = [
        math.log((num if num != 0 else _SMOOTH_EPSILON) / den) / _MAX_N
        for num, den in zip(numerators, denominators)
    ]
    return bp * math.exp(math.fsum(logs))


def _bleu_item_counts(hyp: list[str], refs: list[list[str]]) -> list[float]:
    """BLEU sufficient statistics of one sample: 4 clipped numerators, 4 denominators, hyp and ref length."""
    num, den = [], []
    for n in range(1, _MAX_N + 1):
        counts = _ngram_counts(hyp, n)
        max_ref: Counter = Counter()
        for ref in refs:
            max_ref |= _ngram_counts(ref, n)  # element-wise max over references
        num.append(sum(min(c, max_ref[g]) for g, c in counts.items()))
        den.append(max(1, sum(counts.values())))
    return [*num, *den, len(hyp), _closest_length((len(r) for r in refs), len(hyp))]


def _weighted_item_counts(hyp: list[str], refs: list[list[str]], keywords: frozenset[str]) -> list[float]:
    """Weighted n-gram statistics of one sample: recall of reference n-grams, unigrams keyword-weighted."""
    num = [0.0] * _MAX_N
    den = [0.0] * _MAX_N
    for n in range(1, _MAX_N + 1):
        hyp_counts = _ngram_counts(hyp, n)
        for ref in refs:
            ref_counts = _ngram_counts(ref, n)
            if n == 1:
                w = {g: (_KEYWORD_WEIGHT if g[0] in keywords else _OTHER_WEIGHT) for g in ref_counts}
                num[0] += sum(min(c, hyp_counts[g]) * w[g] for g, c in ref_counts.items())
                den[0] += max(1, sum(c * w[g] for g, c in ref_counts.items()))
            else:
                num[n - 1] += sum(min(c, hyp_counts[g]) for g, c in ref_counts.items())
                den[n - 1] += max(1, sum(ref_counts.values()))
    return [*num, *den, _UPSTREAM_WEIGHTED_REF_LEN]


# ----------------------------------------------------------------------------------------------
# Parsing and comment removal
# ----------------------------------------------------------------------------------------------


@cache
def _parser(language: str):
    import importlib

    from tree_sitter import Language, Parser

    grammar = importlib.import_module(languages.get(language).tree_sitter)
    return Parser(Language(grammar.language()))


def parse(code: str, language: str):
    """tree-sitter tree of ``code`` (errors are kept in the tree as ERROR/MISSING nodes)."""
    return _parser(_check_language(language)).parse(code.encode("utf8"))


def _drop_blank_lines(code: str) -> str:
    return "\n".join(line for line in code.split("\n") if line.strip())


def _strip_python(source: str) -> str:
    """Drop comments and docstring-like strings (a string token that starts a logical line)."""
    out: list[str] = []
    prev_type = tokenize.INDENT
    last_row, last_col = -1, 0
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        (row, col), (end_row, end_col) = tok.start, tok.end
        if row > last_row:
            last_col = 0
        if col > last_col:
            out.append(" " * (col - last_col))
        is_docstring = tok.type == tokenize.STRING and (
            prev_type in (tokenize.INDENT, tokenize.NEWLINE) or col == 0
        )
        if tok.type != tokenize.COMMENT and not is_docstring:
            out.append(tok.string)
        prev_type = tok.type
        last_row, last_col = end_row, end_col
    return _drop_blank_lines("".join(out))


# Comments, or string/char literals that must be skipped so that "//" inside them survives.
_C_FAMILY_COMMENT = re.compile(
    r"""//.*?$|/\*.*?\*/|'(?:\\.|[^\\'])*'|"(?:\\.|[^\\"])*\"""", re.DOTALL | re.MULTILINE
)
# JavaScript also has template literals (`https://...`), which upstream does not protect.
_JS_COMMENT = re.compile(
    r"""//.*?$|/\*.*?\*/|'(?:\\.|[^\\'])*'|"(?:\\.|[^\\"])*"|`(?:\\.|[^\\`])*`""", re.DOTALL | re.MULTILINE
)


def remove_comments(code: str, language: str) -> str:
    """Source without comments (and, for Python, docstrings) and without blank lines."""
    rule = languages.get(language).codebleu.comments
    if rule == "tokenize":
        try:
            return _strip_python(code)
        except (tokenize.TokenError, IndentationError, SyntaxError):
            return code  # untokenizable code is scored as written
    pattern = _JS_COMMENT if rule == "c_family_templates" else _C_FAMILY_COMMENT
    return _drop_blank_lines(pattern.sub(lambda m: " " if m.group(0).startswith("/") else m.group(0), code))


# ----------------------------------------------------------------------------------------------
# Syntax match
# ----------------------------------------------------------------------------------------------


def _subtree_sexps(root) -> list[str]:
    """S-expressions of the root and of every descendant that has children."""
    out = []
    stack = [root]
    while stack:
        node = stack.pop()
        out.append(str(node))
        stack.extend(child for child in node.children if child.child_count)
    return out


def syntax_match_counts(hyp: str, refs: list[str], language: str) -> tuple[int, int]:
    """(matched, total) reference subtrees for one sample, comments already removed."""
    matched = total = 0
    hyp_sexps = set(_subtree_sexps(parse(hyp, language).root_node))
    for ref in refs:
        ref_sexps = _subtree_sexps(parse(ref, language).root_node)
        matched += sum(1 for s in ref_sexps if s in hyp_sexps)
        total += len(ref_sexps)
    return matched, total


# ----------------------------------------------------------------------------------------------
# Dataflow match
# ----------------------------------------------------------------------------------------------


def normalise_dataflow(edges: list[tuple[str, str, list[str]]]) -> list[tuple[str, str, tuple[str, ...]]]:
    """Rename variables to var_0, var_1, ... in order of first appearance (parents before the node)."""
    names: dict[str, str] = {}
    out = []
    for var, relation, parents in edges:
        for name in [*parents, var]:
            names.setdefault(name, f"var_{len(names)}")
        out.append((names[var], relation, tuple(names[p] for p in parents)))
    return out


def dataflow_match_counts(hyp: str, refs: list[str], language: str) -> tuple[int, int]:
    """(matched, total) reference dataflow edges for one sample, comments already removed."""
    matched = total = 0
    hyp_edges = normalise_dataflow(extract_dataflow(parse(hyp, language), hyp, language))
    for ref in refs:
        ref_edges = normalise_dataflow(extract_dataflow(parse(ref, language), ref, language))
        remaining = Counter(hyp_edges)
        total += len(ref_edges)
        for edge in ref_edges:
            if remaining[edge] > 0:
                matched += 1
                remaining[edge] -= 1
    return matched, total


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


# Layout of one row of codebleu_item_stats(); every column is additive over samples.
STAT_COLUMNS = (
    *(f"bleu_num_{n}" for n in range(1, 5)),
    *(f"bleu_den_{n}" for n in range(1, 5)),
    "hyp_len",
    "bleu_ref_len",
    *(f"wngram_num_{n}" for n in range(1, 5)),
    *(f"wngram_den_{n}" for n in range(1, 5)),
    "wngram_ref_len",
    "syntax_matched",
    "syntax_total",
    "dataflow_matched",
    "dataflow_total",
)


def codebleu_item_stats(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    language: str,
    keywords: Iterable[str] | None = None,
) -> np.ndarray:
    """Per-sample sufficient statistics of CodeBLEU, shape (n_samples, len(STAT_COLUMNS)).

    Every corpus-level component pools counts over samples, so the CodeBLEU of any multiset of samples
    is ``codebleu_from_stats(stats[idx].sum(axis=0))``: a bootstrap over test items needs no re-parsing.
    """
    language = _check_language(language)
    hyps = [h.strip() for h in hypotheses]
    refs = _normalise_references(references, len(hyps))
    kw = KEYWORDS[language] if keywords is None else frozenset(keywords)
    rows = []
    for hyp, rs in zip(hyps, refs):
        tok_hyp, tok_refs = hyp.split(), [r.split() for r in rs]
        clean_hyp = remove_comments(hyp, language)
        clean_refs = [remove_comments(r, language) for r in rs]
        rows.append(
            [
                *_bleu_item_counts(tok_hyp, tok_refs),
                *_weighted_item_counts(tok_hyp, tok_refs, kw),
                *syntax_match_counts(clean_hyp, clean_refs, language),
                *dataflow_match_counts(clean_hyp, clean_refs, language),
            ]
        )
    return np.array(rows, dtype=float).reshape(len(rows), len(STAT_COLUMNS))


def codebleu_from_stats(stats: np.ndarray, weights: Sequence[float] = DEFAULT_WEIGHTS) -> CodeBLEUResult:
    """CodeBLEU from summed statistics (a row of length len(STAT_COLUMNS), or a matrix summed over rows)."""
    w = _check_weights(weights)
    total = np.asarray(stats, dtype=float)
    if total.ndim == 2:
        total = total.sum(axis=0)
    bleu = _combine(list(total[0:4]), list(total[4:8]), total[8], total[9])
    weighted = _combine(list(total[10:14]), list(total[14:18]), total[8], total[18])
    syn_m, syn_t, df_m, df_t = total[19:23]
    syntax = float(syn_m / syn_t) if syn_t else 0.0
    dataflow = float(df_m / df_t) if df_t else None

    a, b, c, d = w
    if dataflow is not None:
        score: float | None = a * bleu + b * weighted + c * syntax + d * dataflow
        used = w
    elif a + b + c > 0:
        scale = (a + b + c + d) / (a + b + c)
        used = (a * scale, b * scale, c * scale, 0.0)
        score = used[0] * bleu + used[1] * weighted + used[2] * syntax
    else:
        used, score = (0.0, 0.0, 0.0, 0.0), None
    return CodeBLEUResult(
        codebleu=score,
        ngram_match=bleu,
        weighted_ngram_match=weighted,
        syntax_match=syntax,
        dataflow_match=dataflow,
        weights=used,
        dataflow_reference_edges=int(df_t),
    )


def corpus_codebleu(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    language: str,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    keywords: Iterable[str] | None = None,
) -> CodeBLEUResult:
    """Corpus-level CodeBLEU: counts are pooled over all samples before each component is formed.

    Args:
        hypotheses: generated code, one string per sample.
        references: per sample, a reference string or a list of references.
        language: one of ``SUPPORTED_LANGUAGES``.
        weights: (BLEU, weighted n-gram, syntax, dataflow) weights.
        keywords: override of the keyword list for the weighted n-gram match.

    Returns:
        A :class:`CodeBLEUResult`.

    Raises:
        ConfigError: unsupported language, bad weights, or mismatched lengths.
    """
    _check_weights(weights)
    return codebleu_from_stats(codebleu_item_stats(hypotheses, references, language, keywords), weights)


def sentence_codebleu(
    hypothesis: str,
    reference: str | Sequence[str],
    language: str,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    keywords: Iterable[str] | None = None,
) -> CodeBLEUResult:
    """CodeBLEU of one sample (a corpus of one)."""
    return corpus_codebleu([hypothesis], [reference], language, weights=weights, keywords=keywords)


def per_sample_codebleu(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    language: str,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    keywords: Iterable[str] | None = None,
) -> list[CodeBLEUResult]:
    """Sentence-level CodeBLEU of each sample (for paired tests; the corpus score is not their mean)."""
    refs = _normalise_references(references, len(hypotheses))
    return [
        sentence_codebleu(h, r, language, weights=weights, keywords=keywords) for h, r in zip(hypotheses, refs)
    ]
