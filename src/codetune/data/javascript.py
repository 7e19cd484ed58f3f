"""JavaScript corpus: JSDoc'd functions with a braced body, from .js/.mjs/.cjs files, trees, or npm tarballs.

A function counts when a `/** ... */` comment stands right before it and it has a name: a function
declaration, a class or object method, or a function/arrow expression assigned to a name
(`const f = (a) => {...}`, `exports.f = function () {...}`, `Foo.prototype.f = ...`, `{f: function () {}}`,
a class field `f = () => {...}`). Expression-bodied arrows (`x => x + 1`) have no braces to complete and
are skipped, as are anonymous callbacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from codetune.data.complexity import measure_complexity
from codetune.data.records import CodeSample, sample_id
from codetune.data.snippets import doc_comment_before, split_function
from codetune.data.sourcefiles import TAR_SUFFIXES, ZIP_SUFFIXES, iter_source_files

SUFFIXES = (".js", ".mjs", ".cjs")
# node_modules below the root holds third-party (often bundled or transpiled) copies that would swamp
# and duplicate the corpus. To use it anyway, pass the node_modules directory itself as the source.
SKIP_DIRS = frozenset({"node_modules"})
# Minified or generated files: by name, or by line shape (the longest legitimate data lines in
# lodash/async/validator are ~2.6k characters and their mean line length stays under ~260).
MAX_LINE_BYTES = 5_000
MAX_MEAN_LINE_BYTES = 300

_QUERY = """
(function_declaration body: (statement_block) @body) @fn
(generator_function_declaration body: (statement_block) @body) @fn
(function_expression body: (statement_block) @body) @fn
(generator_function body: (statement_block) @body) @fn
(arrow_function body: (statement_block) @body) @fn
(method_definition body: (statement_block) @body) @fn
"""
_DECLARATIONS = ("function_declaration", "generator_function_declaration", "method_definition")


@lru_cache(maxsize=1)
def _parser_and_query():
    import tree_sitter_javascript
    from tree_sitter import Language, Parser, Query

    lang = Language(tree_sitter_javascript.language())
    return Parser(lang), Query(lang, _QUERY)


def is_minified(name: str, src: bytes) -> bool:
    """True for `*.min.js` and for files whose line shape says generated/minified."""
    if ".min." in name.rsplit("/", 1)[-1]:
        return True
    lines = src.split(b"\n")
    return len(src) / len(lines) > MAX_MEAN_LINE_BYTES or max(map(len, lines)) > MAX_LINE_BYTES


def _text(node) -> str:
    return node.text.decode("utf-8", errors="replace")


def _key_name(node) -> str:
    """Name of a property key: `f`, `'f'` and `"f"` all give f; computed keys keep their text."""
    if node.type == "string":
        return _text(node)[1:-1]
    return _text(node)


def _anchor_and_name(fn):
    """The node a doc comment must precede, and the function's name; None for unnamed functions."""
    parent = fn.parent
    own_name = fn.child_by_field_name("name")
    if fn.type in _DECLARATIONS or parent.type == "export_statement":
        anchor = parent if parent.type == "export_statement" else fn
        return anchor, _key_name(own_name) if own_name else "default"
    if parent.type == "variable_declarator" and parent.child_by_field_name("value") == fn:
        name = parent.child_by_field_name("name")
        decl = parent.parent
        declarators = [c for c in decl.named_children if c.type == "variable_declarator"]
        # With several declarators (`const a = 1, f = () => {}`) the doc comment belongs to the first.
        if name.type != "identifier" or len(declarators) != 1:
            return None
        anchor = decl.parent if decl.parent.type == "export_statement" else decl
        return anchor, _text(name)
    if parent.type == "assignment_expression" and parent.parent.type == "expression_statement":
        left = parent.child_by_field_name("left")
        if left.type == "identifier":
            return parent.parent, _text(left)
        if left.type == "member_expression":
            prop = _text(left.child_by_field_name("property"))
            # `module.exports = function chunk() {}`: the function's own name says more than "exports".
            if _text(left) == "module.exports" and own_name:
                prop = _text(own_name)
            return parent.parent, prop
        return None
    if parent.type == "pair" and parent.child_by_field_name("value") == fn:
        return parent, _key_name(parent.child_by_field_name("key"))
    if parent.type == "field_definition":
        return parent, _key_name(parent.child_by_field_name("property"))
    return None


def extract_javascript_source(src: bytes, source: str) -> Iterator[CodeSample]:
    """Yield one sample per JSDoc'd, named, brace-bodied function in one file's bytes."""
    from tree_sitter import QueryCursor

    parser, query = _parser_and_query()
    tree = parser.parse(src)
    for _, caps in QueryCursor(query).matches(tree.root_node):
        fn, body = caps["fn"][0], caps["body"][0]
        found = _anchor_and_name(fn)
        if found is None:
            continue
        anchor, name = found
        if anchor.has_error:
            continue  # half-parsed code would teach broken syntax
        doc = doc_comment_before(anchor, src, "comment")
        if doc is None:
            continue
        prompt, target = split_function(src, doc.start_byte, body.start_byte, body.end_byte)
        yield CodeSample(
            id=sample_id("javascript", target),
            language="javascript",
            prompt=prompt,
            target=target,
            source=source,
            line=doc.start_point.row + 1,
            name=name,
            complexity=measure_complexity(prompt + target, "javascript"),
        )


def extract_javascript(source: Path) -> Iterator[CodeSample]:
    """Yield JSDoc'd functions with a braced body from JavaScript sources.

    Args:
        source: a `.js`/`.mjs`/`.cjs` file, a directory (recursive, `node_modules` below it skipped,
            tarballs and zips inside it read too), or an npm package tarball (`npm pack` output).

    The prompt is the JSDoc and everything up to the body's `{` and its newline (`export`, `const f =`,
    `static async` included); the target is the rest of the body through its closing `}` (a trailing `;`
    of an assignment is not part of it). Minified files are skipped (see `is_minified`).

    Raises:
        DataError: `source` is missing, of an unknown kind, or an unreadable archive.
    """
    for label, src in iter_source_files(Path(source), SUFFIXES, TAR_SUFFIXES + ZIP_SUFFIXES, SKIP_DIRS):
        if not src.strip() or is_minified(label, src):
            continue
        yield from extract_javascript_source(src, label)
