"""Java corpus: methods and constructors with a Javadoc comment, from .java files, trees, or source zips."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from codetune.data.complexity import measure_complexity
from codetune.data.records import CodeSample, sample_id
from codetune.data.snippets import doc_comment_before, split_function
from codetune.data.sourcefiles import ZIP_SUFFIXES, iter_source_files

# Abstract and interface methods have no body; the query only matches declarations that have one.
_QUERY = """
(method_declaration body: (block) @body) @fn
(constructor_declaration body: (constructor_body) @body) @fn
(compact_constructor_declaration body: (block) @body) @fn
"""


@lru_cache(maxsize=1)
def _parser_and_query():
    import tree_sitter_java
    from tree_sitter import Language, Parser, Query

    lang = Language(tree_sitter_java.language())
    return Parser(lang), Query(lang, _QUERY)


def extract_java_source(src: bytes, source: str) -> Iterator[CodeSample]:
    """Yield one sample per Javadoc'd method or constructor with a body in one file's bytes."""
    from tree_sitter import QueryCursor

    parser, query = _parser_and_query()
    tree = parser.parse(src)
    for _, caps in QueryCursor(query).matches(tree.root_node):
        fn, body = caps["fn"][0], caps["body"][0]
        if fn.has_error:
            continue  # half-parsed code would teach broken syntax
        doc = doc_comment_before(fn, src, "block_comment")
        if doc is None:
            continue
        prompt, target = split_function(src, doc.start_byte, body.start_byte, body.end_byte)
        name_node = fn.child_by_field_name("name")
        yield CodeSample(
            id=sample_id("java", target),
            language="java",
            prompt=prompt,
            target=target,
            source=source,
            line=doc.start_point.row + 1,
            name=name_node.text.decode("utf-8", errors="replace") if name_node else "",
            complexity=measure_complexity(prompt + target, "java"),
        )


def extract_java(source: Path) -> Iterator[CodeSample]:
    """Yield Javadoc'd methods and constructors (those with a body) from Java sources.

    Args:
        source: a `.java` file, a directory (recursive; `.zip`/`.jar` inside it are read too), or a
            source archive such as the JDK's `lib/src.zip` or a `-sources.jar`.

    Each sample's prompt is the Javadoc, annotations, modifiers and signature through the body's `{`
    and its newline; the target is the rest of the body through the closing `}`. Methods of nested,
    local and anonymous classes count; trivial and `@deprecated` methods are kept (filtering is a
    config decision: see `complexity`).

    Raises:
        DataError: `source` is missing, of an unknown kind, or an unreadable archive.
    """
    for label, src in iter_source_files(Path(source), (".java",), ZIP_SUFFIXES):
        # Matches come in document order, so samples from one file are ordered by line.
        yield from extract_java_source(src, label)
