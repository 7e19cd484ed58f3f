"""Default corpus per language, found or fetched without the user naming one, and extraction by language.

python: the running interpreter's standard library. java: the JDK's `lib/src.zip`. javascript: a few
pure-JavaScript npm packages at pinned versions, fetched once with `npm pack` into the cache.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

from codetune import languages
from codetune.data.records import CodeSample
from codetune.errors import ConfigError, DataError

# Debian's openjdk-17-source installs here (scripts/setup-system.sh installs it); other JDKs are a fallback.
PREFERRED_JDK_SRC = Path("/usr/lib/jvm/openjdk-17/lib/src.zip")
JDK_SRC_GLOB = "/usr/lib/jvm/*/lib/src.zip"
# Pinned so that the default JavaScript corpus is the same on every machine.
NPM_PACKAGES = ("lodash@4.17.21", "async@3.2.6", "validator@13.12.0")

# language -> "module:function" (from the language records); imported on use, so a language's extractor
# loads only when needed.
EXTRACTORS = {n: languages.get(n).corpus.extractor for n in languages.names(corpus=True)}


def _tarball_name(spec: str) -> str:
    """`npm pack` output name: `lodash@4.17.21` -> `lodash-4.17.21.tgz`, `@scope/x@1` -> `scope-x-1.tgz`."""
    name, version = spec.rsplit("@", 1)
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def python_source() -> Path:
    """The running interpreter's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def java_source() -> Path:
    """The JDK's `src.zip`: Debian's openjdk-17 one when present, else the first other JDK's (sorted)."""
    if PREFERRED_JDK_SRC.is_file():
        return PREFERRED_JDK_SRC
    # Several JDK directories may link to one file; resolve so the choice does not depend on link names.
    # Links can dangle (a JDK without its -source package), hence the is_file() filter.
    found = sorted({Path(p).resolve() for p in glob.glob(JDK_SRC_GLOB) if Path(p).is_file()})
    if not found:
        raise DataError(
            f"no JDK source archive found ({PREFERRED_JDK_SRC} or {JDK_SRC_GLOB})",
            "apt-get install -y openjdk-17-source, or pass data.source=PATH",
        )
    return found[0]


def npm_corpus_dir(packages: tuple[str, ...] = NPM_PACKAGES) -> Path:
    """A directory holding the `npm pack` tarballs of `packages`, fetched on first use.

    Raises:
        DataError: npm is missing, or fetching failed (offline, registry unreachable).
    """
    from codetune.paths import cache_dir

    dest = cache_dir() / "corpora" / "npm"
    missing = [p for p in packages if not (dest / _tarball_name(p)).is_file()]
    if not missing:
        return dest
    hint = "check access to the npm registry, or pass data.source=PATH to .js files or npm .tgz tarballs"
    npm = shutil.which("npm")
    if npm is None:
        raise DataError(
            "the default JavaScript corpus needs npm, which was not found", f"install node/npm; or {hint}"
        )
    dest.mkdir(parents=True, exist_ok=True)
    # Pack into a scratch directory and move complete files in, so an interrupted fetch leaves no half tarball.
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        try:
            proc = subprocess.run(
                [npm, "pack", "--silent", "--pack-destination", tmp, *missing],
                check=False,
                capture_output=True,
                text=True,
                timeout=300,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            raise DataError(f"npm pack {' '.join(missing)} timed out after 300 s", hint) from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(f"npm pack {' '.join(missing)} failed: {last}", hint)
        for spec in missing:
            name = _tarball_name(spec)
            if not (Path(tmp) / name).is_file():
                raise DataError(f"npm pack did not produce {name}", hint)
            os.replace(Path(tmp) / name, dest / name)
    return dest


def default_source(language: str) -> Path:
    """The corpus used when `data.source` is not set.

    Raises:
        DataError: the language's default corpus is not on this machine and cannot be fetched.
        ConfigError: the language has no default corpus.
    """
    record = languages.lookup(language)
    if record is not None and record.corpus is not None:
        return Path(languages.load(record.corpus.default_source)())
    raise ConfigError(
        f"no default corpus for language '{language}'",
        f"use one of: {', '.join(sorted(EXTRACTORS))}, or pass data.source=PATH",
    )


def extract(language: str, source: Path) -> Iterator[CodeSample]:
    """Samples of `language` from `source` (a file, directory or archive), by that language's extractor.

    Raises:
        ConfigError: no extractor for `language`.
        DataError: the source cannot be read.
    """
    record = languages.lookup(language)
    if record is None or record.corpus is None:
        raise ConfigError(
            f"no corpus extractor for language '{language}'", f"use one of: {', '.join(sorted(EXTRACTORS))}"
        )
    return languages.load(record.corpus.extractor)(Path(source))
