"""Toolchain versions come from each language record's probe."""

from __future__ import annotations

import shutil

import pytest

from codetune import languages
from codetune.provenance import toolchain_version


def test_in_process_language_reports_this_interpreter():
    assert toolchain_version("python").startswith("python 3.")


@pytest.mark.parametrize("name", [n for n in languages.names() if languages.get(n).version_probe])
def test_probed_languages_name_their_tool(name):
    tool = languages.get(name).version_probe[0]
    got = toolchain_version(name)
    assert got.startswith(tool if shutil.which(tool) else f"missing: {tool}")


def test_unknown_language_is_unknown():
    assert toolchain_version("cobol") == "unknown"
