"""The bubblewrap command line a sandboxed program runs under: what it sees of the system and which
namespaces it gets (see `sandbox` for how the pieces fit).

The program's filesystem is a fresh tmpfs root holding, read-only, only what runtimes need: /usr (with
/usr/local hidden unless a runtime lives there), the /bin, /lib* entries as the host has them (links into /usr
on a merged-/usr system), a few /etc pieces (the dynamic loader's cache, `alternatives` links that /usr/bin/java
and friends go through, the JDK's /etc/java-* configuration, the time zone, OpenSSL's configuration for node),
a fresh /proc of its own PID namespace, a minimal /dev, and its writable run directory at /tmp (also at
/var/tmp and /dev/shm; nothing else is writable). Home
directories, /work, /root, project checkouts, the harness's virtualenv and every other process are absent.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess

# unshare-all is these; spelled out so the record says exactly what each run had.
NAMESPACES = ("user", "pid", "mount", "network", "ipc", "uts", "cgroup")
_UNSHARE = ["--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
_UNSHARE += ["--unshare-cgroup-try", "--hostname", "sandbox", "--die-with-parent", "--new-session"]
_ETC = ["/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"]
_ETC += ["/etc/ssl/openssl.cnf"]
_TOP = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")  # where a run's volume is bound; nothing else is writable
_READ_ONLY = ["--remount-ro", "/dev", "--remount-ro", "/"]  # last: the root and /dev tmpfs of bwrap's own


@functools.lru_cache(maxsize=1)
def executable() -> str | None:
    return shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin")


@functools.lru_cache(maxsize=1)
def version() -> str:
    """e.g. "bubblewrap 0.8.0" (empty when bwrap is missing)."""
    exe = executable()
    if exe is None:
        return ""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _hides_usr_local(extra_dirs: tuple[str, ...]) -> bool:
    return not any(d == "/usr/local" or d.startswith("/usr/local/") for d in extra_dirs)


@functools.lru_cache(maxsize=64)
def runtime_dir(exe: str) -> str | None:
    """The directory to bind for a runtime outside /usr (e.g. /opt/jdk for /opt/jdk/bin/java), or under
    /usr/local; None when /usr already holds it."""
    real = os.path.realpath(exe)
    if not os.path.isabs(real) or not os.path.exists(real):
        return None
    if real.startswith("/usr/") and not real.startswith("/usr/local/"):
        return None
    bindir = os.path.dirname(real)
    return os.path.dirname(bindir) if os.path.basename(bindir) == "bin" else bindir


@functools.lru_cache(maxsize=64)
def filesystem(extra_dirs: tuple[str, ...] = ()) -> tuple[str, ...]:
    """bwrap arguments for the read-only system view (see the module docstring); `extra_dirs` are bound
    read-only at the same paths (runtimes installed outside /usr)."""
    args = ["--ro-bind", "/usr", "/usr"]
    if _hides_usr_local(extra_dirs) and os.path.isdir("/usr/local"):
        args += ["--tmpfs", "/usr/local", "--remount-ro", "/usr/local"]
    for top in _TOP:
        p = "/" + top
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            args += ["--ro-bind", p, p]
    for p in [*_ETC, *sorted(glob.glob("/etc/java-*"))]:
        if os.path.exists(p):
            args += ["--ro-bind", p, p]
    for d in extra_dirs:
        args += ["--ro-bind", d, d]
    args += ["--proc", "/proc", "--dev", "/dev"]
    return tuple(args)


def program_argv(
    argv: list[str],
    *,
    volume: str,
    status_fd: int | None,
    ro: dict[str, str] | None = None,
    info_fd: int | None = None,
) -> list[str]:
    """bwrap + arguments + `argv` for one program.

    Args:
        volume: the run's directory: bound read-write at /tmp (the working directory) and at the other
            places programs write temporary files (/var/tmp, /dev/shm), so those writes land in it too;
            everything else is read-only.
        status_fd: where bwrap reports the program's exit status (only once set-up succeeded); None: nowhere.
        ro: host path -> sandbox path, bound read-only (helper files shipped with codetune).
        info_fd: the program runs as pid 1 of its namespace (no init of bwrap's in between) and bwrap
            writes its host pid there (long-lived helpers, whose pid the caller signals).
    """
    exe = executable()
    assert exe is not None
    extra = tuple(d for d in {runtime_dir(argv[0])} if d is not None)
    cmd = [exe, *_UNSHARE, "--disable-userns", *filesystem(extra)]
    for dest in WRITABLE:
        cmd += ["--bind", volume, dest]
    for src, dest in (ro or {}).items():
        cmd += ["--ro-bind", src, dest]
    cmd += [*_READ_ONLY, "--chdir", "/tmp"]
    cmd += ["--json-status-fd", str(status_fd)] if status_fd is not None else []
    cmd += ["--as-pid-1", "--info-fd", str(info_fd)] if info_fd is not None else []
    return [*cmd, "--", *argv]


def server_argv(
    argv: list[str], *, runs: str | None, info_fd: int, block_fd: int, ro: dict[str, str] | None = None
) -> list[str]:
    """bwrap + arguments + `argv` for a fork server (see `_forkserver`): uid 0 of a user namespace whose
    map the trusted parent writes (0 -> the server's uid; its programs' uid to itself), with the
    capabilities it needs to set up each child (mounts and a private IPC namespace, then the drop to the
    programs' uid) and to kill it on timeout; the volumes' root at /runs."""
    exe = executable()
    assert exe is not None
    extra = tuple(d for d in {runtime_dir(argv[0])} if d is not None)
    caps = []
    for cap in ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SYS_RESOURCE", "CAP_KILL"):
        caps += ["--cap-add", cap]
    cmd = [exe, *_UNSHARE, "--userns-block-fd", str(block_fd), "--info-fd", str(info_fd)]
    cmd += ["--uid", "0", "--gid", "0", *caps, *filesystem(extra), "--tmpfs", "/tmp", "--dir", "/var/tmp"]
    if runs is not None:
        cmd += ["--bind", runs, "/runs"]
    for src, dest in (ro or {}).items():
        cmd += ["--ro-bind-data" if src.isdigit() else "--ro-bind", src, dest]
    cmd += [*_READ_ONLY, "--chdir", "/", "--", *argv]
    return cmd
