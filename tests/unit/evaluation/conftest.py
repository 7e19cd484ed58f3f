"""The syntax-checker test modules share one codetune cache per session: the Java helper compiles once."""

import pytest


@pytest.fixture(scope="session")
def _syntax_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("syntax-cache")


@pytest.fixture(autouse=True)
def _syntax_tests_share_cache(request, _isolated_cache, _syntax_cache_dir, monkeypatch):
    if request.path.name.startswith("test_syntax_"):
        monkeypatch.setenv("CODETUNE_CACHE", str(_syntax_cache_dir))
