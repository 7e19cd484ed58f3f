"""Source files for the corpus extractors, read from a file, a directory tree, or an archive.

An archive is read in memory (never unpacked to disk) and its members are labelled
`archive-name!member/path`, so a sample's `source` says where it came from on any machine.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from codetune.errors import DataError

ZIP_SUFFIXES = (".zip", ".jar")
TAR_SUFFIXES = (".tgz", ".tar.gz", ".tar")


def _is_archive(name: str, archives: tuple[str, ...]) -> bool:
    return name.lower().endswith(archives)


def _read_zip(path: Path, label: str, suffixes: tuple[str, ...], skip_dirs: frozenset[str]):
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename
                if info.is_dir() or not name.endswith(suffixes) or skip_dirs & set(name.split("/")[:-1]):
                    continue
                yield f"{label}!{name}", zf.read(info)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"cannot read archive '{path}': {e}", "pass a valid .zip/.jar or a directory") from e


def _read_tar(path: Path, label: str, suffixes: tuple[str, ...], skip_dirs: frozenset[str]):
    try:
        with tarfile.open(path, mode="r:*") as tf:
            for member in tf:
                name = member.name
                # Symlinks and devices are skipped: only regular files carry source.
                if not member.isfile() or not name.endswith(suffixes) or skip_dirs & set(name.split("/")[:-1]):
                    continue
                f = tf.extractfile(member)
                if f is not None:
                    yield f"{label}!{name}", f.read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"cannot read archive '{path}': {e}", "pass a valid .tgz/.tar or a directory") from e


def _read_one(path: Path, label: str, suffixes, archives, skip_dirs) -> Iterator[tuple[str, bytes]]:
    name = path.name.lower()
    if _is_archive(name, archives):
        reader = _read_zip if name.endswith(ZIP_SUFFIXES) else _read_tar
        yield from reader(path, label, suffixes, skip_dirs)
    elif path.name.endswith(suffixes):
        yield label, path.read_bytes()


def iter_source_files(
    source: Path,
    suffixes: tuple[str, ...],
    archives: tuple[str, ...],
    skip_dirs: frozenset[str] = frozenset(),
) -> Iterator[tuple[str, bytes]]:
    """Yield `(label, content)` for every source file under `source`, in a stable (sorted) order.

    Args:
        source: a source file, an archive, or a directory (walked recursively; archives inside it
            are read too, so a directory of `npm pack` tarballs works).
        suffixes: file name endings to read, e.g. `(".java",)`.
        archives: archive name endings to open, a subset of `ZIP_SUFFIXES + TAR_SUFFIXES`.
        skip_dirs: directory names pruned below the root, in directories and inside archives.

    Labels: for a directory, the path relative to it; for a file or archive given directly, its name;
    an archive member is `archive!member`.

    Raises:
        DataError: `source` does not exist, is a file of another kind, or is an unreadable archive.
    """
    source = Path(source)
    if source.is_dir():
        for root, dirs, files in os.walk(source):
            dirs[:] = sorted(d for d in dirs if d not in skip_dirs)
            for fname in sorted(files):
                path = Path(root) / fname
                if not path.is_file():
                    continue  # a dangling link or a socket
                label = path.relative_to(source).as_posix()
                yield from _read_one(path, label, suffixes, archives, skip_dirs)
    elif source.is_file():
        if not (_is_archive(source.name, archives) or source.name.endswith(suffixes)):
            kinds = ", ".join(suffixes + archives)
            raise DataError(
                f"data source '{source}' is not a file of a known kind ({kinds})",
                "pass data.source=PATH to a source file, a directory, or an archive",
            )
        yield from _read_one(source, source.name, suffixes, archives, skip_dirs)
    else:
        raise DataError(
            f"data source '{source}' does not exist",
            "pass data.source=PATH to a source file, a directory, or an archive",
        )
