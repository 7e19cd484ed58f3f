"""JavaScript extraction from files, directory trees and npm tarballs (tree-sitter)."""

from __future__ import annotations

import io
import tarfile

import pytest

from codetune.data.javascript import extract_javascript, is_minified
from codetune.data.records import sample_id
from codetune.errors import DataError

JS = """\
'use strict';

/**
 * Splits `array` into chunks of `size`.
 * @param {Array} array
 */
function chunk(array, size) {
  const out = [];
  for (let i = 0; i < array.length; i += size) {
    out.push(array.slice(i, i + size));
  }
  return out;
}

/** Arrow with a block body. */
const double = (x) => {
  return `${x} {` + x * 2;
};

/** Expression-bodied arrow: nothing to complete in braces. */
const triple = (x) => x * 3;

/** Exported through CommonJS. */
exports.isEmpty = function (value) {
  return value == null || value.length === 0;
};

/** On a prototype. */
Stack.prototype.push = function push(item) {
  this.items.push(item);
};

/** A class. */
class Stack {
  /**
   * Makes a stack.
   */
  constructor() {
    this.items = [];
  }

  /** Static async generator. */
  static async *drain(stack) {
    while (stack.items.length) {
      yield stack.items.pop();
    }
  }

  /** Class field arrow. */
  peek = () => {
    return this.items[this.items.length - 1];
  };

  size() {
    return this.items.length;
  }
}

const api = {
  /** Object method. */
  get(key) {
    return key;
  },
  /** Object property function. */
  'set': function (key, value) {
    return [key, value];
  },
};

/** ES module export. */
export function exported(a) {
  return a;
}

[1, 2].forEach(/** anonymous callback */ function (v) {
  return v;
});

/** Broken */
function broken( {
  return 1;
}
"""


@pytest.fixture
def js_file(tmp_path):
    path = tmp_path / "lib.js"
    path.write_text(JS)
    return path


def test_named_documented_functions_with_braced_bodies(js_file):
    names = [s.name for s in extract_javascript(js_file)]
    assert names == [
        "chunk",
        "double",
        "isEmpty",
        "push",
        "constructor",
        "drain",
        "peek",
        "get",
        "set",
        "exported",
    ]


def test_prompt_target_split(js_file):
    by_name = {s.name: s for s in extract_javascript(js_file)}
    c = by_name["chunk"]
    assert (
        c.prompt
        == "/**\n * Splits `array` into chunks of `size`.\n * @param {Array} array\n */\nfunction chunk(array, size) {\n"
    )
    assert c.target.startswith("  const out = [];\n") and c.target.endswith("  return out;\n}")
    assert (c.line, c.source, c.language) == (3, "lib.js", "javascript")
    assert c.id == sample_id("javascript", c.target)
    d = by_name["double"]
    assert d.prompt == "/** Arrow with a block body. */\nconst double = (x) => {\n"
    assert d.target == "  return `${x} {` + x * 2;\n}"  # the assignment's `;` is not part of the function
    assert by_name["isEmpty"].prompt.endswith("exports.isEmpty = function (value) {\n")
    # Class members are dedented to column 0 with their body indent kept relative.
    drain = by_name["drain"]
    assert drain.prompt == "/** Static async generator. */\nstatic async *drain(stack) {\n"
    assert drain.target == "  while (stack.items.length) {\n    yield stack.items.pop();\n  }\n}"
    assert by_name["set"].prompt == "/** Object property function. */\n'set': function (key, value) {\n"
    assert by_name["exported"].prompt.splitlines()[-1] == "export function exported(a) {"


def test_complexity_fields(js_file):
    by_name = {s.name: s for s in extract_javascript(js_file)}
    assert by_name["chunk"].complexity["cyclomatic"] == 2
    assert by_name["isEmpty"].complexity["cyclomatic"] == 2  # the `||`
    assert by_name["constructor"].complexity == {
        "cyclomatic": 1,
        "nloc": 3,
        "token_count": 12,
    }  # constructor ( ) { this . items = [ ] ; }


def _tgz(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_npm_tarball_and_directory(tmp_path):
    def doc_fn(name: str) -> bytes:
        return f"/** {name} */\nfunction {name}() {{\n  return 1;\n}}\n".encode()

    minified = b"/** m */ function m(){return 1}" + b";var a=1" * 1000
    tree = tmp_path / "tree"
    (tree / "node_modules" / "dep").mkdir(parents=True)
    (tree / "src").mkdir()
    (tree / "src" / "a.mjs").write_bytes(doc_fn("f"))
    (tree / "src" / "b.cjs").write_bytes(doc_fn("g"))
    (tree / "src" / "c.min.js").write_bytes(doc_fn("h"))
    (tree / "src" / "d.ts").write_bytes(doc_fn("f"))
    (tree / "node_modules" / "dep" / "index.js").write_bytes(doc_fn("f"))
    _tgz(
        tree / "pkg-1.0.0.tgz",
        {
            "package/index.js": doc_fn("f"),
            "package/dist/pkg.js": minified,
            "package/package.json": b"{}",
        },
    )
    sources = sorted(s.source for s in extract_javascript(tree))
    assert sources == ["pkg-1.0.0.tgz!package/index.js", "src/a.mjs", "src/b.cjs"]
    # A tarball given directly; node_modules given as the root itself is read.
    assert [s.source for s in extract_javascript(tree / "pkg-1.0.0.tgz")] == ["pkg-1.0.0.tgz!package/index.js"]
    assert [s.source for s in extract_javascript(tree / "node_modules")] == ["dep/index.js"]


def test_minified_detection():
    assert is_minified("dist/x.min.js", b"function f() {}\n")
    assert is_minified("x.js", b"var a=1;" * 1000)
    assert not is_minified("x.js", b"function f() {\n  return 1;\n}\n")


def test_corrupt_tarball_raises(tmp_path):
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match="cannot read archive"):
        list(extract_javascript(bad))
