"""How many samples each default corpus yields, and how fast extraction runs. Prints figures; asserts nothing.

    python benchmarks/corpus_extraction.py [language ...]     (default: every language with a corpus)

The JavaScript default corpus is fetched with `npm pack` on first use (needs the npm registry). The table
also goes to the `corpus_extraction` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from codetune import languages as language_records
from codetune.data import complexity, java, javascript, sources
from codetune.errors import CodetuneError


def _timed_complexity():
    """Wrap measure_complexity to learn what share of extraction time lizard takes."""
    spent = [0.0]
    original = complexity.measure_complexity

    def wrapped(code: str, language: str):
        t = time.perf_counter()
        try:
            return original(code, language)
        finally:
            spent[0] += time.perf_counter() - t

    for module in (java, javascript):
        module.measure_complexity = wrapped
    return spent


def main(languages: list[str]) -> int:
    spent = _timed_complexity()
    lines: list[str] = []
    lines.append(
        f"{'language':<11} {'samples':>8} {'unique':>8} {'files':>7} {'time_s':>7} {'samples/s':>9} "
        f"{'lizard_%':>8} {'cc_median':>9} {'nloc_median':>11}  source"
    )
    print(lines[-1])
    for language in languages:
        try:
            source = sources.default_source(language)
        except CodetuneError as e:
            lines.append(f"{language:<11} unavailable: {e}")
            print(lines[-1])
            continue
        spent[0] = 0.0
        t = time.perf_counter()
        samples = list(sources.extract(language, source))
        elapsed = time.perf_counter() - t
        files = len({s.source for s in samples})
        cc = [s.complexity.get("cyclomatic", 0) for s in samples] or [0]
        nloc = [s.complexity.get("nloc", 0) for s in samples] or [0]
        # Only the Java and JavaScript extractors' calls are timed (see _timed_complexity).
        timed = sources.EXTRACTORS.get(language, "").split(":")[0] in (java.__name__, javascript.__name__)
        lizard_share = 100 * spent[0] / elapsed if timed else float("nan")
        lines.append(
            f"{language:<11} {len(samples):>8} {len({s.id for s in samples}):>8} {files:>7} {elapsed:>7.1f} "
            f"{len(samples) / elapsed:>9.0f} {lizard_share:>8.0f} {statistics.median(cc):>9} "
            f"{statistics.median(nloc):>11}  {source}"
        )
        print(lines[-1])
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from results_md import record

    table = "```\n" + "\n".join(lines) + "\n```"
    print(f"wrote {record('corpus_extraction', table, argv=sys.argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(language_records.names(corpus=True))))
