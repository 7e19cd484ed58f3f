"""Java: checked by javac's own front end (`javax.tools`) inside one long-lived JVM.

Levels:
    parse    `JavacTask.parse()` — the grammar only.
    compile  `JavacTask.analyze()` — parse, enter, attribute and flow: undefined symbols, type errors,
             missing returns, unreachable code, uninitialised variables; every error `javac` reports
             for the file, without writing class files. Options: `-proc:none -Xlint:none -nowarn`.
             The file is named after the unit's public top-level type, as javac requires.

Units (`unit=`):
    whole   the snippet is a compilation unit (imports, classes).
    member  the snippet is a class member (a method with its Javadoc, a field): it is checked as
            `class Main { <snippet>\\n}` (named after the constructor when the member is one), with the
            prefix on the snippet's first line so line numbers are the snippet's own.
    auto    whole if the snippet parses as a compilation unit, else member if it parses as a member;
            if neither parses, the reading whose first error comes later in the snippet (ties: whole).
            The compile level then compiles the reading chosen by parsing.

Speed: the helper reuses javac's compiler contexts through `com.sun.tools.javac.api.JavacTaskPool` (the
pool JShell uses; needs `--add-exports`), so the JDK's symbol tables are not rebuilt per snippet; the
classes a snippet declares are cleared after it. `-Dcodetune.pool=false` in JVM_FLAGS turns it off.

The helper (SyntaxHelper.java, shipped with the package) is compiled on first use into
`$CODETUNE_CACHE/syntax/java/<hash>` (default `~/.cache/codetune`), keyed by its source and the JDK (javac on
our own source: not sandboxed). The helper JVM runs in a sandbox of its own (see `helper_process`), with a
copy of those classes in its working directory.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import ClassVar

from codetune.evaluation.sandbox import Limits
from codetune.evaluation.syntax.base import Checker, SyntaxResult, clamp_line
from codetune.evaluation.syntax.helper_process import HelperFailure, HelperProcess

INSTALL_HINT = "install a JDK 17+ (javac and java on PATH), e.g.: apt-get install openjdk-17-jdk-headless"
# The helper uses javac's JavacTaskPool (reused compiler contexts, as JShell does), an internal API.
EXPORTS = ["--add-exports", "jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED"]
JVM_FLAGS = [*EXPORTS, "-Xss16m", "-XX:+UseSerialGC", "-Xshare:auto", "-Dfile.encoding=UTF-8"]
# The helper JVM's sandbox: the whole JVM within 2 GiB (its heap within 1 GiB: the JVM cannot see the cgroup's
# cap from inside, so it would size its heap from the host's memory); a CPU limit it never reaches in a run.
HELPER_FLAGS = ["-Xmx1g"]
HELPER_LIMITS = Limits(
    wall_s=86400,
    cpu_s=86400,
    memory_mb=4096,
    address_space_mb=None,
    processes=512,
    open_files=1024,
    total_memory_mb=2048,
    disk_mb=64,
)
_CLASSES = ".codetune/java"  # where the helper's classes are put in its sandbox (its working directory)


def cache_root() -> Path:
    return Path(os.environ.get("CODETUNE_CACHE") or Path.home() / ".cache" / "codetune")


def _jdk_version(javac: str) -> str:
    home = Path(javac).resolve().parent.parent
    release = home / "release"
    if release.is_file():
        return str(home) + "\n" + release.read_text(errors="replace")
    out = subprocess.run([javac, "-version"], check=False, capture_output=True, text=True, timeout=60)
    return str(home) + "\n" + out.stdout + out.stderr


def build_helper(javac: str) -> Path:
    """Compile SyntaxHelper.java once per (source, JDK) into the cache; return the class directory."""
    source = resources.files("codetune.evaluation.syntax").joinpath("SyntaxHelper.java").read_text()
    key = hashlib.sha256((source + "\0" + _jdk_version(javac)).encode()).hexdigest()[:16]
    target = cache_root() / "syntax" / "java" / key
    if (target / "SyntaxHelper.class").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: several processes may race to build the same helper.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "SyntaxHelper.java"
        src.write_text(source)
        out = subprocess.run(
            [javac, *EXPORTS, "-nowarn", "-d", str(Path(tmp) / "classes"), str(src)],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"javac could not build the helper: {(out.stderr or out.stdout).strip()[:300]}")
        try:
            os.replace(Path(tmp) / "classes", target)
        except OSError:
            if not (target / "SyntaxHelper.class").is_file():
                raise
    return target


class JavaChecker(Checker):
    language = "java"
    units = ("auto", "whole", "member")
    timeout_s = 30.0  # per snippet; generous because javac's first checks in a cold JVM are slow
    canary: ClassVar[dict[str, tuple[str, str]]] = {
        "parse": ("class Main { int f() { return 1; } }", "class Main { int f() { return 1 } }"),
        # A type error passes parse and fails analysis: proves the compile level really attributes.
        "compile": ("class Main { int f() { return 1; } }", 'class Main { int f() { return "s"; } }'),
    }

    def __init__(self, level: str = "parse", unit: str = "auto") -> None:
        super().__init__(level, unit)
        self.helper: HelperProcess | None = None

    def _start(self) -> str | None:
        javac = shutil.which("javac")
        if javac is None:
            return f"java: `javac` not found on PATH; {INSTALL_HINT}"
        java = str(Path(javac).resolve().parent / "java")
        if not os.access(java, os.X_OK):
            java = shutil.which("java")
            if java is None:
                return f"java: `java` not found on PATH; {INSTALL_HINT}"
        try:
            classes = build_helper(javac)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            return f"java: {exc}; {INSTALL_HINT}"
        files = {f"{_CLASSES}/{p.relative_to(classes)}": p.read_bytes() for p in classes.rglob("*.class")}
        self.helper = HelperProcess(
            [java, *JVM_FLAGS, *HELPER_FLAGS, "-cp", _CLASSES, "SyntaxHelper"],
            timeout_s=self.timeout_s,
            limits=HELPER_LIMITS,
            files=files,
        )
        try:
            banner = self.helper.start()
        except (HelperFailure, OSError) as exc:
            return f"java: the helper JVM did not start ({exc}); {INSTALL_HINT}"
        if not banner.startswith("ready"):
            return "java: " + _decode(banner.split("\t")[-1])
        return None

    def _stop(self) -> None:
        if self.helper is not None:
            self.helper.stop()

    def _check(self, code: str) -> SyntaxResult:
        request = f"{self.level}\t{self.unit}\t{base64.b64encode(code.encode('utf-8', 'replace')).decode()}"
        try:
            reply = self.helper.request(request)
        except (HelperFailure, OSError) as exc:
            return SyntaxResult("unavailable", self.level, f"java: {exc}", None)
        status, line, _form, message = reply.split("\t", 3)
        message = _decode(message)
        if status == "valid":
            return SyntaxResult("valid", self.level, "", None)
        if status == "invalid":
            return SyntaxResult("invalid", self.level, message, clamp_line(int(line), code))
        return SyntaxResult("unavailable", self.level, f"java: {message}", None)


def _decode(b64: str) -> str:
    try:
        return base64.b64decode(b64).decode("utf-8", "replace")
    except ValueError:
        return b64
