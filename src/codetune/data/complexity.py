"""Size and complexity of one function, measured with lizard on the function's text."""

from __future__ import annotations

from codetune import languages
from codetune.errors import ConfigError

_ANALYZER = None


def _analyzer():
    # One analyzer for the process: building lizard's reader/extension chain on every call costs time.
    global _ANALYZER
    if _ANALYZER is None:
        import lizard

        _ANALYZER = lizard.FileAnalyzer(lizard.get_extensions([]))
    return _ANALYZER


def measure_complexity(code: str, language: str) -> dict[str, float]:
    """Measure a whole function (doc comment, signature and body).

    Returns:
        `cyclomatic`: 1 + every decision point in the code, nested functions, lambdas and local classes
        included (lizard counts those as functions of their own; we add their decision points back, so
        the figure describes all the code a model has to write). A function with no branch scores 1.
        `nloc`: lines of code, comments and blank lines excluded. `token_count`: lizard's token count.

    Raises:
        ConfigError: lizard has no reader for `language`.
    """
    record = languages.lookup(language)
    if record is None:
        hint = f"use one of: {', '.join(sorted(languages.names()))}"
        raise ConfigError(f"no complexity measure for language '{language}'", hint)
    filename = record.lizard_filename  # lizard picks its language reader from a file name's extension
    info = _analyzer().analyze_source_code(filename, code)
    decisions = sum(f.cyclomatic_complexity - 1 for f in info.function_list)
    return {"cyclomatic": 1 + decisions, "nloc": info.nloc, "token_count": info.token_count}
