"""What produced a result: package versions and the toolchain versions used to check the code."""

from __future__ import annotations

import functools
import platform
import shutil
import subprocess
import sys
from importlib import metadata

from codetune import languages

PACKAGES = ("codetune", "torch", "transformers", "peft", "sacrebleu", "tree-sitter")


def package_versions() -> dict[str, str]:
    out = dict(python=platform.python_version())  # the interpreter running codetune
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


@functools.cache
def toolchain_version(language: str) -> str:
    """E.g. 'python 3.11.7', 'javac 17.0.15', 'node v20.20.2'; 'missing: ...' when not installed."""
    record = languages.lookup(language)
    if record is None:
        return "unknown"
    if record.version_probe is None:  # checked and run by this interpreter
        return f"python {platform.python_version()} ({sys.implementation.name})"
    cmd = list(record.version_probe)
    if not shutil.which(cmd[0]):
        return f"missing: {cmd[0]}"
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"error: {exc}"
    line = (p.stdout or p.stderr).strip().splitlines()
    text = line[0] if line else "?"
    return text if text.startswith(cmd[0]) else f"{cmd[0]} {text}"
