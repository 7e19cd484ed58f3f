"""The per-process pieces of the sandbox that every layer shares (see `sandbox` for the whole): the probed
plan, rlimits and the function a child runs before it executes, the per-run uid pool, the uid sweep, and
today's isolation for machines without bubblewrap (each candidate is tried by running `true` under it)."""

from __future__ import annotations

import functools
import os
import resource
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codetune.errors import ToolchainError
from codetune.evaluation import _cgroups
from codetune.evaluation._volumes import Volume, check, libc

if TYPE_CHECKING:
    from codetune.evaluation.sandbox import Limits

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_PR_SET_NO_NEW_PRIVS = 38
_WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
# A block of uids far above any real account: one per concurrently running program (two per fork server).
# The offset by pid keeps two harness processes on one machine apart.
_UID_BASE = 1_500_000_000
_UID_SLOTS = 256
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_BWRAP_PROCESSES = 2  # bubblewrap's monitor and the namespace's init, on top of the program's own


class SandboxError(ToolchainError):
    """The harness could not start a program (a missing runtime, a broken machine or a bug; never the
    program's fault: nothing it does raises this)."""


@dataclass(frozen=True)
class _Plan:
    per_run_uid: bool  # root: setuid to a fresh high uid
    nobody: bool  # root, but uids other than 65534 cannot be used (e.g. a narrow uid_map)
    userns: bool  # not root: unprivileged user namespace (needed for the other namespaces)
    netns: bool
    mntns: bool
    bwrap: str = ""  # bubblewrap's version when programs run under it
    cgroups: _cgroups.Controller | None = None
    volumes: bool = False  # run directories are capped tmpfs volumes in the private mount namespace
    missing: tuple[str, ...] = ()  # "layer: why", for the layers this machine lacks


def _rlimits(
    plan: _Plan, limits: Limits, uid: int | None, extra_procs: int = 0
) -> list[tuple[int, tuple[int, int]]]:
    cpu = max(1, int(-(-limits.cpu_s // 1)))
    mb = 1024 * 1024
    rl = [
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_DATA, (limits.memory_mb * mb,) * 2),
        (resource.RLIMIT_FSIZE, (limits.file_size_mb * mb,) * 2),
        (resource.RLIMIT_NOFILE, (limits.open_files,) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
    ]
    if limits.address_space_mb is not None:
        rl.append((resource.RLIMIT_AS, (limits.address_space_mb * mb,) * 2))
    if uid is not None or plan.userns:
        # RLIMIT_NPROC counts per real uid; as the caller it would count the caller's other processes.
        rl.append((resource.RLIMIT_NPROC, (limits.processes + extra_procs,) * 2))
    return rl


def _make_preexec(
    plan: _Plan,
    limits: Limits,
    *,
    src: str,
    uid: int | None,
    join_fds: Sequence[int] = (),
    bwrap: bool = False,
):
    """Build the function the child runs between fork and exec (of the program, or of bubblewrap).
    Everything is computed here, in the parent, so the child only makes system calls (no imports, no
    allocation-heavy work). `src`: the run's directory, as the child sees it (started from the keeper thread,
    it is in the volumes' mount namespace)."""
    lib = libc()
    legacy = not bwrap
    flags = (_CLONE_NEWUSER if plan.userns else 0) | (_CLONE_NEWNET if plan.netns else 0)
    flags |= _CLONE_NEWNS if plan.mntns else 0
    flags = flags if legacy else 0
    srcb = src.encode()
    targets = [t.encode() for t in _WORLD_WRITABLE[1:] if os.path.isdir(t)]
    rl = _rlimits(plan, limits, uid, _BWRAP_PROCESSES if bwrap else 0)
    tmp = b"/tmp"
    mount_tmp = legacy and plan.mntns

    def preexec() -> None:  # runs in the child: keep it to system calls
        for fd in join_fds:  # before anything else the run allocates
            os.write(fd, b"0")
        if flags:
            check(lib.unshare(flags), "unshare")
        if mount_tmp:
            check(lib.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
            # /tmp first: once it is covered, the workdir's own path (under /tmp) may no longer resolve,
            # so the other places are bound from /tmp.
            check(lib.mount(srcb, tmp, None, _MS_BIND, None), "bind mount /tmp")
            for t in targets:
                check(lib.mount(tmp, t, None, _MS_BIND, None), "bind mount")
            os.chdir(tmp)
        elif legacy:
            os.chdir(srcb)
        for res, val in rl:
            resource.setrlimit(res, val)
        # No exec from here on gains privileges (setuid binaries such as mount or su, file capabilities).
        check(lib.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)

    return preexec


class _UidPool:
    """Hands out one uid per concurrent run, so runs never share a uid."""

    def __init__(self, base: int, size: int) -> None:
        self._free = list(range(base + size - 1, base - 1, -1))
        self._cond = threading.Condition()

    def take(self) -> int:
        with self._cond:
            while not self._free:
                self._cond.wait()
            return self._free.pop(0)  # FIFO: a slot left with zombies rests longest

    def give(self, uid: int) -> None:
        with self._cond:
            self._free.append(uid)
            self._cond.notify()


@functools.lru_cache(maxsize=1)
def _uid_pool() -> _UidPool:
    return _UidPool(_UID_BASE + (os.getpid() % 100_000) * _UID_SLOTS, _UID_SLOTS)


def _try_plan(plan: _Plan, limits) -> bool:
    workdir = tempfile.mkdtemp(prefix="codetune-probe-")
    try:
        uid = _UID_BASE - 1 if plan.per_run_uid else (65534 if plan.nobody else None)
        if uid is not None:
            os.chown(workdir, uid, uid)
        pre = _make_preexec(plan, limits, src=workdir, uid=uid)
        true = shutil.which("true", path=_SAFE_PATH) or "/bin/true"
        r = subprocess.run([true], check=False, preexec_fn=pre, cwd="/", env={}, timeout=10, capture_output=True)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _legacy_plan(limits) -> _Plan:
    """The strongest isolation without bubblewrap (each candidate plan runs `true`; the first that works)."""
    if os.geteuid() == 0:
        for per_run, nobody in ((True, False), (False, True)):
            for netns, mntns in ((True, True), (True, False), (False, False)):
                p = _Plan(per_run, nobody, False, netns, mntns)
                if _try_plan(p, limits):
                    return p
        return _Plan(False, False, False, False, False)
    for p in (_Plan(False, False, True, True, True), _Plan(False, False, True, True, False)):
        if _try_plan(p, limits):
            return p
    return _Plan(False, False, False, False, False)


def _live_pids_of(uid: int) -> list[int]:
    """Pids of processes whose real uid is `uid` and that are not zombies (reads every /proc/<pid>/status)."""
    key = f"Uid:\t{uid}\t".encode()
    out = []
    for e in os.scandir("/proc"):
        if e.name.isdigit():
            try:
                with open(f"/proc/{e.name}/status", "rb") as f:
                    st = f.read(2048)
            except OSError:
                continue
            if key in st and b"State:\tZ" not in st:
                out.append(int(e.name))
    return out


def _sweep_uid(uid: int) -> int:
    """Kill every process of `uid`, including those that left the process group with setsid() (used where
    there is no cgroup to kill). Returns how many were found. A pidfd is opened and the uid re-checked
    before signalling, so a pid reused by an unrelated process in between is never hit."""
    found = set()
    for _ in range(100):  # a fork bomb can fork between scans; RLIMIT_NPROC bounds how long this lasts
        pids = _live_pids_of(uid)
        if not pids:
            break
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue
            try:
                if pid in _live_pids_of_check(pid, uid):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                    found.add(pid)
            except OSError:
                pass
            finally:
                os.close(fd)
        time.sleep(0.002)
    return len(found)


def _live_pids_of_check(pid: int, uid: int) -> tuple[int, ...]:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            return (pid,) if f"Uid:\t{uid}\t".encode() in f.read(2048) else ()
    except OSError:
        return ()


def _wait_exit(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait for `proc` to exit, up to `timeout` seconds; False on timeout. A pidfd wakes us the moment
    it exits (Popen.wait(timeout) polls with growing sleeps, so every run would also wait out part of a sleep
    after its program had exited)."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return proc.poll() is not None
            if poller.poll(max(1, int(left * 1000))):
                return True
    finally:
        os.close(fd)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _chown_tree(path: str, uid: int) -> None:
    os.chown(path, uid, uid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


@dataclass(frozen=True)
class _Job:
    """One prepared run, handed to `_spawn` or `_run_forked`: the files are written, the volume chowned."""

    argv: Sequence[str]
    plan: _Plan
    limits: Limits
    vol: Volume  # the run's directory
    uid: int | None  # the host uid it runs as; None: the caller's
    env: dict[str, str]
    stdin: str | None  # the file given on standard input; None: /dev/null
    stdout: str  # files in the run's private directory, which the program cannot list
    stderr: str


def _new_group(plan: _Plan, limits: Limits) -> _cgroups.Group | None:
    if plan.cgroups is None:
        return None
    try:
        return _cgroups.Group(plan.cgroups, limits.total_memory_mb, limits.processes + _BWRAP_PROCESSES)
    except OSError as exc:
        raise SandboxError(f"cannot create the run's cgroup under {plan.cgroups.memory_base}: {exc}") from exc


def _end_run(
    job: _Job, group: _cgroups.Group | None, pgid: int | None, monitor: subprocess.Popen | None = None
) -> int:
    """Kill whatever is left of the run; returns the oom kills its cgroup counted.

    `monitor`: bubblewrap's outer process (our child). It is spared at first, so that it reaps what it
    started (killing its init kills and reaps the whole PID namespace) and exits by itself; then nothing is
    left as a zombie for the host's init to collect."""
    if group is not None:
        if monitor is not None and monitor.poll() is None:
            group.kill(spare=monitor.pid)
            try:
                monitor.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        group.kill()
        oom = group.oom_kills()
        group.remove()
        return oom
    if pgid is not None:
        _kill_group(pgid)
    if job.plan.per_run_uid and job.uid is not None:
        _sweep_uid(job.uid)
    return 0


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return out
        out += chunk
