"""Java extraction from files, directory trees and source zips (tree-sitter)."""

from __future__ import annotations

import zipfile

import pytest

from codetune.data.java import extract_java
from codetune.data.records import sample_id
from codetune.errors import DataError

JAVA = """\
package demo;

import java.util.List;

/** A box. */
public class Box<T extends Comparable<T>> {
    private T value;

    /**
     * Makes a box holding {@code value}.
     *
     * @param value the content
     */
    public Box(T value) {
        this.value = value;
    }

    /** Larger of two; braces in a string: "}". */
    @SuppressWarnings("unchecked")
    public static <U extends Comparable<U>> U max(U a, U b) {
        if (a.compareTo(b) > 0) {
            return a;
        }
        return b;
    }

    /** One line. */
    int one() { return 1; }

    /** Abstract-like: no body, so skipped. */
    native int nat();

    int undocumented() {
        return 2;
    }

    /** Separated by a line comment: not attached. */
    // a comment in between
    int separated() {
        return 3;
    }

    /**/
    int emptyComment() {
        return 4;
    }

    /**
     * @deprecated kept anyway
     */
    @Deprecated
    void empty() {
    }

    static class Inner {
        /** Nested method. */
        List<String> names() {
            Runnable r = new Runnable() {
                /** Anonymous-class method. */
                public void run() {
                    System.out.println("{");
                }
            };
            return List.of();
        }
    }
}

interface Shape {
    /** Area. */
    double area();

    /** Default method with a body. */
    default String describe() {
        return "shape";
    }
}
"""


@pytest.fixture
def java_file(tmp_path):
    path = tmp_path / "Box.java"
    path.write_text(JAVA)
    return path


def test_documented_methods_and_constructors_with_bodies(java_file):
    samples = list(extract_java(java_file))
    assert [s.name for s in samples] == ["Box", "max", "one", "empty", "names", "run", "describe"]
    assert all(s.language == "java" and s.source == "Box.java" for s in samples)
    lines = JAVA.splitlines()
    for s in samples:
        assert lines[s.line - 1].strip().startswith("/**")


def test_prompt_target_split_is_dedented(java_file):
    by_name = {s.name: s for s in extract_java(java_file)}
    mx = by_name["max"]
    assert mx.prompt == (
        '/** Larger of two; braces in a string: "}". */\n'
        '@SuppressWarnings("unchecked")\n'
        "public static <U extends Comparable<U>> U max(U a, U b) {\n"
    )
    assert mx.target == "    if (a.compareTo(b) > 0) {\n        return a;\n    }\n    return b;\n}"
    assert mx.id == sample_id("java", mx.target)
    assert mx.line == 18
    ctor = by_name["Box"]
    assert ctor.prompt.startswith("/**\n * Makes a box") and ctor.prompt.endswith("public Box(T value) {\n")
    assert ctor.target == "    this.value = value;\n}"
    # Code after `{` on the same line stays in the target.
    assert (by_name["one"].prompt.splitlines()[-1], by_name["one"].target) == ("int one() {", " return 1; }")
    assert by_name["empty"].target == "}"


def test_nested_and_anonymous_class_methods_keep_relative_indent(java_file):
    by_name = {s.name: s for s in extract_java(java_file)}
    run = by_name["run"]
    assert run.prompt == "/** Anonymous-class method. */\npublic void run() {\n"
    assert run.target == '    System.out.println("{");\n}'
    assert "    Runnable r = new Runnable() {\n        /** Anonymous" in by_name["names"].target


def test_complexity_is_measured_on_the_whole_method(java_file):
    by_name = {s.name: s for s in extract_java(java_file)}
    assert set(by_name["max"].complexity) == {"cyclomatic", "nloc", "token_count"}
    assert by_name["max"].complexity["cyclomatic"] == 2
    assert by_name["one"].complexity["cyclomatic"] == 1
    assert by_name["max"].complexity["nloc"] == 7  # annotation + signature + 5 body lines, no comment


def test_directory_zip_and_jar_labels(tmp_path, java_file):
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "Box.java").write_text(JAVA)
    (tree / "notes.txt").write_text("/** not java */ void f() {}")
    (tree / "Dangling.java").symlink_to(tmp_path / "missing.java")
    with zipfile.ZipFile(tree / "lib-sources.jar", "w") as zf:
        zf.writestr("p/Q.java", "class Q {\n  /** q. */\n  int q() {\n    return 1;\n  }\n}\n")
        zf.writestr("p/Q.class", b"\xca\xfe\xba\xbe")
    sources = {s.source for s in extract_java(tree)}
    assert sources == {"a/b/Box.java", "lib-sources.jar!p/Q.java"}

    src_zip = tmp_path / "src.zip"
    with zipfile.ZipFile(src_zip, "w") as zf:
        zf.writestr("java.base/demo/Box.java", JAVA)
    from_zip = list(extract_java(src_zip))
    assert {s.source for s in from_zip} == {"src.zip!java.base/demo/Box.java"}
    assert [s.target for s in from_zip] == [s.target for s in extract_java(java_file)]


def test_broken_method_is_skipped_but_file_still_yields(tmp_path):
    path = tmp_path / "Broken.java"
    path.write_text(
        "class B {\n  /** ok */\n  int ok() {\n    return 1;\n  }\n"
        "  /** broken */\n  int bad() {\n    return 1 +;\n  }\n}\n"
    )
    assert [s.name for s in extract_java(path)] == ["ok"]


def test_crlf_and_tabs(tmp_path):
    path = tmp_path / "T.java"
    path.write_bytes(b"class T {\r\n\t/** t */\r\n\tint t() {\r\n\t\treturn 1;\r\n\t}\r\n}\r\n")
    (s,) = extract_java(path)
    assert (s.prompt, s.target) == ("/** t */\nint t() {\n", "\treturn 1;\n}")


def test_missing_and_unknown_sources_raise(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        list(extract_java(tmp_path / "nope"))
    other = tmp_path / "x.py"
    other.write_text("pass")
    with pytest.raises(DataError, match="not a file of a known kind"):
        list(extract_java(other))
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read archive"):
        list(extract_java(bad))
