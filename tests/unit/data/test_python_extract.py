import ast
import textwrap

from codetune.data.python import extract_python

CODE = textwrap.dedent(
    '''
    import functools


    def add(a, b):
        """Return the sum."""
        return a + b


    def only_doc():
        """Nothing else here."""


    def no_doc(x):
        return x


    class Box:
        """A box."""

        @functools.cache
        def area(self, w,
                 h):
            """Area of a w x h box.

            Multi-line docstring.
            """
            s = """
    keep this string's column
    """
            return w * h


    async def fetch(url):
        """Fetch it."""
        return await get(url)
    '''
)


def test_extracts_documented_functions_only(tmp_path):
    (tmp_path / "m.py").write_text(CODE)
    got = {s.name: s for s in extract_python(tmp_path)}
    assert set(got) == {"add", "area", "fetch"}
    add = got["add"]
    assert add.prompt == 'def add(a, b):\n    """Return the sum."""\n'
    assert add.target == "    return a + b\n"
    assert add.source == "m.py" and add.line == 5
    assert add.language == "python" and len(add.id) == 16
    assert add.complexity["cyclomatic"] >= 1


def test_method_is_shifted_left_with_decorator_and_strings_intact(tmp_path):
    (tmp_path / "m.py").write_text(CODE)
    area = next(s for s in extract_python(tmp_path) if s.name == "area")
    assert area.prompt.startswith("@functools.cache\ndef area(self, w,\n         h):\n")
    assert area.prompt.rstrip().endswith('"""')
    assert "\nkeep this string's column\n" in area.target  # string contents not dedented
    ast.parse(area.prompt + area.target)  # the whole function is valid at column 0


def test_skips_tests_and_unparsable_files(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.py").write_text(CODE)
    (tmp_path / "test_x.py").write_text(CODE)
    (tmp_path / "bad.py").write_text("def f(:\n")
    (tmp_path / "site-packages").mkdir()
    (tmp_path / "site-packages" / "m.py").write_text(CODE)
    assert list(extract_python(tmp_path)) == []
