"""The language records: names and aliases resolve, capabilities filter, every import path a record names
exists, and importing the module stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from codetune import languages
from codetune.errors import ConfigError


@pytest.mark.parametrize(
    "name, canonical",
    [("python", "python"), ("py", "python"), ("JS", "javascript"), ("node", "javascript"), ("c++", "cpp")],
)
def test_aliases_resolve_to_one_record(name, canonical):
    assert languages.get(name).name == canonical
    assert languages.get(name) is languages.get(canonical)


def test_unknown_language_is_a_config_error_with_a_suggestion():
    with pytest.raises(ConfigError, match="unknown language 'javscript'") as err:
        languages.get("javscript")
    assert "did you mean 'javascript'?" in err.value.hint
    assert languages.lookup("cobol") is None


def test_names_filter_by_capability():
    assert languages.names() == ("python", "java", "javascript", "c", "cpp")
    assert languages.names(corpus=True) == ("python", "java", "javascript")
    assert languages.names(execution=True) == ("python", "java", "javascript", "cpp")
    assert languages.names(codebleu=True, triviality=True) == languages.names()
    assert "c" not in languages.names(humaneval_x=True)


def test_humaneval_x_file_of_javascript_is_js():
    assert languages.get("javascript").humaneval_x.file == "js"
    assert "javascript" in languages.get("javascript").humaneval_x.prefixes


def test_every_import_path_names_an_existing_object():
    for lang in languages.LANGUAGES:
        targets = [lang.checker]
        if lang.codebleu:
            targets.append(lang.codebleu.walker)
        if lang.execution:
            targets.append(lang.execution.builder)
        if lang.corpus:
            targets += [lang.corpus.extractor, lang.corpus.default_source]
        for target in targets:
            assert callable(languages.load(target)), (lang.name, target)


def test_stop_rule_flags_are_set_where_the_lexer_needs_them():
    assert languages.get("python").stop.kind == "indent"
    assert languages.get("javascript").stop.regex_literals and languages.get("javascript").stop.template_literals
    assert languages.get("java").stop.text_blocks and not languages.get("java").stop.raw_strings
    assert languages.get("cpp").stop.raw_strings and languages.get("cpp").stop.digit_separators
    assert not languages.get("c").stop.digit_separators


def test_import_is_light():
    code = (
        "import sys, codetune.languages\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'tree_sitter', 'transformers', 'numpy')]\n"
        "ours = [m for m in sys.modules if m.startswith('codetune.') and m not in "
        "('codetune.languages', 'codetune.errors')]\n"
        "print(heavy, ours)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] []"
