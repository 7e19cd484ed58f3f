"""A sampled agreement check: the batch checkers give the same status as the real toolchain run one process
per file, on real code and mutated copies (the full set: benchmarks/syntax_agreement.py)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest


def _load_agreement_lib():
    # A harness of benchmarks/, not part of the package: loaded from its file, as the scripts there do.
    path = Path(__file__).resolve().parents[3] / "benchmarks" / "syntax_agreement_lib.py"
    spec = importlib.util.spec_from_file_location("syntax_agreement_lib", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


_lib = _load_agreement_lib()
build_corpus, compare, java_src_zip, levels_for, mutate = (
    _lib.build_corpus,
    _lib.compare,
    _lib.java_src_zip,
    _lib.levels_for,
    _lib.mutate,
)

SAMPLE = {"python": 40, "java": 12, "javascript": 30, "c": 16}


def _skip_without_corpus(lang):
    if lang == "java" and java_src_zip() is None:
        pytest.skip("no JDK src.zip (apt-get install openjdk-17-source)")
    if lang == "javascript" and shutil.which("npm") is None:
        pytest.skip("npm's installed sources are the offline JavaScript corpus")


def test_mutations_change_the_code():
    import random

    code = "int twice(int value) {\n    int factor = 2;\n    return value * factor;\n}\n"
    rng = random.Random(0)
    for kind in ("delete_token", "rename_ident", "number_to_string", "dup_line"):
        out = mutate(code, kind, rng)
        assert out is not None and out != code
    assert "undefinedName_q" in mutate(code, "rename_ident", rng)


@pytest.mark.slow
@pytest.mark.parametrize("lang", list(SAMPLE))
def test_batch_checker_agrees_with_one_compiler_process_per_file(lang):
    _skip_without_corpus(lang)
    items = build_corpus(lang, SAMPLE[lang], seed=1, offline=True)  # no network in tests
    assert len(items) >= SAMPLE[lang] * 3 // 4
    assert any(it.mutation != "none" for it in items) and any(it.mutation == "none" for it in items)
    for level in levels_for(lang):
        report = compare(lang, level, items)
        assert report.disagreements == [], report.disagreements
        assert report.agree == report.n == len(items)
        # Error lines agree too, except an error on a wrapper's closing line, reported on the snippet's last.
        for m in report.line_mismatches:
            assert m["ours"]["line"] == m["snippet_lines"] < m["reference"]["line"], m
