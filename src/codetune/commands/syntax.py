"""`codetune syntax`: check snippets from a JSONL file with the language's real toolchain."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from codetune.errors import CodetuneError

NAME = "syntax"
HELP = (
    "Check code snippets for syntax validity with the language's real toolchain: reads JSONL lines "
    '{"id", "code"}, writes one JSON result per line to stdout in input order, a summary to stderr; '
    "exits 1 if the toolchain is unavailable."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", metavar="FILE.jsonl", help='input, one {"id": ..., "code": "..."} per line ("-" = stdin)'
    )
    from codetune import languages  # light: the records name their checkers, importing none

    parser.add_argument("--lang", required=True, help=f"one of: {', '.join(languages.names())} (or an alias)")
    parser.add_argument("--level", default="parse", help="parse (grammar only) or compile (names and types too)")
    parser.add_argument(
        "--unit",
        default="auto",
        help="how snippets that are not whole units are wrapped: auto (default), whole, member, body",
    )


FORMAT_HINT = 'each line must be {"id": ..., "code": "..."}'


def _read(path: str) -> list[tuple[object, str]]:
    from codetune.errors import DataError
    from codetune.io import decode_text

    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path!r}: {exc.strerror}", "pass an existing JSONL file") from exc
    try:
        text = decode_text(data, "standard input" if path == "-" else path, FORMAT_HINT)
    except CodetuneError as exc:
        raise DataError(exc.message, exc.hint) from None
    items = []
    for n, raw in enumerate(text.split("\n"), 1):  # not splitlines(): a JSON string may hold U+2028
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n}: not JSON ({exc.msg})", FORMAT_HINT) from None
        if not isinstance(rec, dict) or not isinstance(rec.get("code"), str):
            raise DataError(f"{path}:{n}: no string field `code`", FORMAT_HINT)
        items.append((rec.get("id", n), rec["code"]))
    if not items:
        raise DataError(f"{path} holds no snippets, so there is nothing to check", FORMAT_HINT)
    return items


def run(args: argparse.Namespace) -> int:
    from codetune.evaluation.syntax import open_checker

    items = _read(args.file)
    checker = open_checker(args.lang, args.level, unit=args.unit)  # ConfigError for a bad lang/level/unit
    counts = {"valid": 0, "invalid": 0, "unavailable": 0}
    with checker:
        results = checker.check_many([code for _, code in items])
    for (ident, _), result in zip(items, results):
        counts[result.status] += 1
        print(json.dumps({"id": ident, **result.to_dict()}, ensure_ascii=False))
    sys.stdout.flush()
    total = len(items)
    checked = total - counts["unavailable"]
    rate = f"{100 * counts['valid'] / total:.1f}% valid" if checked else "pass rate unknown"
    note = f"; unavailable: {checker.unavailable_reason}" if checker.unavailable_reason else ""
    print(
        f"syntax {checker.language} {args.level}: {total} snippets, {counts['valid']} valid, "
        f"{counts['invalid']} invalid, {counts['unavailable']} unavailable ({rate}){note}",
        file=sys.stderr,
    )
    # The results are written either way; a toolchain that is missing is still a failed run.
    return 1 if checker.unavailable_reason else 0
