"""Default corpora and dispatch by language; npm and the JDK are faked, nothing touches the network."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from codetune.data import sources
from codetune.errors import ConfigError, DataError


def test_python_default_is_the_running_stdlib():
    path = sources.default_source("python")
    assert path == Path(sysconfig.get_paths()["stdlib"])
    assert (path / "os.py").is_file()


def test_java_prefers_debian_jdk_then_sorted_glob(tmp_path, monkeypatch):
    jvm = tmp_path / "jvm"
    for jdk in ("zulu-21", "temurin-25"):
        (jvm / jdk / "lib").mkdir(parents=True)
        (jvm / jdk / "lib" / "src.zip").write_bytes(b"")
    # A dangling link (a JDK whose -source package is not installed) is not a candidate.
    (jvm / "a-broken" / "lib").mkdir(parents=True)
    (jvm / "a-broken" / "lib" / "src.zip").symlink_to(tmp_path / "missing.zip")
    monkeypatch.setattr(sources, "JDK_SRC_GLOB", str(jvm / "*" / "lib" / "src.zip"))
    monkeypatch.setattr(sources, "PREFERRED_JDK_SRC", tmp_path / "absent" / "src.zip")
    assert sources.default_source("java") == (jvm / "temurin-25" / "lib" / "src.zip").resolve()
    monkeypatch.setattr(sources, "PREFERRED_JDK_SRC", jvm / "zulu-21" / "lib" / "src.zip")
    assert sources.default_source("java") == jvm / "zulu-21" / "lib" / "src.zip"


def test_java_missing_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "JDK_SRC_GLOB", str(tmp_path / "*" / "lib" / "src.zip"))
    monkeypatch.setattr(sources, "PREFERRED_JDK_SRC", tmp_path / "absent" / "src.zip")
    with pytest.raises(DataError) as exc:
        sources.default_source("java")
    assert exc.value.hint == "apt-get install -y openjdk-17-source, or pass data.source=PATH"


def _fake_npm(tmp_path: Path, script: str) -> Path:
    """An `npm` executable on PATH that runs `script` (a Python program) with npm's arguments."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    npm = bindir / "npm"
    npm.write_text(f"#!{sys.executable}\n{script}")
    npm.chmod(0o755)
    return bindir


PACK = """\
import sys, pathlib
args = sys.argv[1:]
dest = pathlib.Path(args[args.index("--pack-destination") + 1])
log = pathlib.Path(__file__).with_name("calls.log")
log.write_text(log.read_text() + " ".join(args) + "\\n" if log.exists() else " ".join(args) + "\\n")
for spec in args[args.index("--pack-destination") + 2:]:
    name, version = spec.rsplit("@", 1)
    (dest / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz").write_bytes(b"tgz")
"""


def test_javascript_packs_pinned_packages_once_into_the_cache(tmp_path, monkeypatch):
    bindir = _fake_npm(tmp_path, PACK)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setenv("CODETUNE_CACHE", str(tmp_path / "cache"))
    path = sources.default_source("javascript")
    assert path == tmp_path / "cache" / "corpora" / "npm"
    expected = sorted(sources._tarball_name(p) for p in sources.NPM_PACKAGES)
    assert sorted(p.name for p in path.iterdir()) == expected
    assert all("@" in p and p.rsplit("@", 1)[1][0].isdigit() for p in sources.NPM_PACKAGES)  # pinned
    assert sources.default_source("javascript") == path
    assert len((bindir / "calls.log").read_text().splitlines()) == 1  # cached: npm ran once


def test_javascript_offline_or_without_npm_raises_with_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("CODETUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="needs npm") as exc:
        sources.default_source("javascript")
    assert "data.source=PATH" in exc.value.hint
    bindir = _fake_npm(tmp_path, "import sys\nprint('npm error code ENOTFOUND', file=sys.stderr)\nsys.exit(1)\n")
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    with pytest.raises(DataError, match="npm pack .* failed: npm error code ENOTFOUND"):
        sources.default_source("javascript")
    # No half-written tarballs or scratch directories are left behind.
    assert list((tmp_path / "cache" / "corpora" / "npm").iterdir()) == []


def test_tarball_names_match_npm_pack():
    assert sources._tarball_name("lodash@4.17.21") == "lodash-4.17.21.tgz"
    assert sources._tarball_name("@babel/core@7.0.0") == "babel-core-7.0.0.tgz"


def test_extract_dispatches_by_language(tmp_path):
    src = tmp_path / "src.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("A.java", "class A {\n  /** a */\n  int a() {\n    return 1;\n  }\n}\n")
    (tmp_path / "a.js").write_text("/** b */\nfunction b() {\n  return 2;\n}\n")
    assert [s.source for s in sources.extract("java", src)] == ["src.zip!A.java"]
    assert [s.name for s in sources.extract("javascript", tmp_path / "a.js")] == ["b"]


def test_unknown_language_raises():
    with pytest.raises(ConfigError, match="no corpus extractor for language 'cobol'"):
        sources.extract("cobol", Path("."))
    with pytest.raises(ConfigError, match="no default corpus for language 'cobol'"):
        sources.default_source("cobol")


def test_sources_module_imports_no_extractor_eagerly():
    # The Python extractor is imported by name on use, so this module works before (or without) it.
    code = "import sys, codetune.data.sources; print(any(m in sys.modules for m in "
    code += "('codetune.data.python', 'codetune.data.java', 'tree_sitter')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
