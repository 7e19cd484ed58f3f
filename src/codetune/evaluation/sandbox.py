"""Run one untrusted program and report what happened; never raise for what the program did.

Every run gets, as far as this machine permits (each layer is probed once and then enforced: a step that
fails at run time is a harness error, never a silent downgrade, so the recorded isolation is the real one):

- bubblewrap (`_bwrap`): new user, PID, mount, network, IPC, UTS and cgroup namespaces; a filesystem of its
  own in which only runtimes' system directories are visible, read-only (no home directories, /work, /root,
  project checkouts, the harness's virtualenv, nor any other process); `--die-with-parent`, `--new-session`;
  no further user namespaces. Run as root, bubblewrap itself starts as a fresh high uid per concurrent run
  (so runs cannot signal each other, the harness or anyone else, and `RLIMIT_NPROC` counts this run only) and
  maps only that uid into the program's user namespace: the program has no capabilities anywhere;
- a cgroup of its own (`_cgroups`): one memory cap and one process cap for all of its processes together;
  the whole group is killed on timeout and when the program ends, then removed;
- its writable directory (`/tmp`, also `HOME` and `TMPDIR` and the working directory) on a tmpfs capped at
  `Limits.disk_mb`, in a mount namespace that only the sandbox machinery sees (`_volumes`): nothing is left
  mounted on the host even after kill -9;
- rlimits per process: CPU seconds, data + address-space bytes, processes, file size, open files, no core
  dumps; its own session; a scrubbed environment; stdout/stderr written to files it cannot open by path,
  read back capped.

Python programs are forked from warm fork servers (`_forkserver`), each one bubblewrap sandbox whose children
get the same guarantees per program (their own cgroup, mount and IPC namespaces, volume and uid).

Where a layer is missing, one line on stderr says so (once per process) and `Isolation.as_dict()` records
what runs had. Without bubblewrap, programs get the isolation this module gave before it (each run its own
high uid as root, a network namespace, a private mount namespace binding its directory over /tmp and the other
world-writable places, rlimits, a uid sweep afterwards); without root, they run as the calling user.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

from codetune.errors import ToolchainError
from codetune.evaluation import _bwrap, _cgroups, _volumes
from codetune.evaluation._volumes import Volume, check, libc

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
# A block of uids far above any real account: one per concurrently running program (two per fork server).
# The offset by pid keeps two harness processes on one machine apart.
_UID_BASE = 1_500_000_000
_UID_SLOTS = 256
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_STDOUT_TAIL_BYTES = 4096  # `SandboxResult.stdout_tail`
_KEPT_FILE_BYTES = 16 * 1024 * 1024  # per file in `run_sandboxed(keep_files=...)`
_BWRAP_PROCESSES = 2  # bubblewrap's monitor and the namespace's init, on top of the program's own


class SandboxError(ToolchainError):
    """The harness could not start a program (a missing runtime, a broken machine or a bug; never the
    program's fault: nothing it does raises this)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run.

    Attributes:
        wall_s: wall-clock seconds before the whole run (every process of it) is killed.
        cpu_s: CPU seconds per process (RLIMIT_CPU; SIGXCPU then SIGKILL one second later).
        memory_mb: writable private memory per process (RLIMIT_DATA; what malloc/mmap/JVM heaps use).
        address_space_mb: virtual address space per process (RLIMIT_AS); None leaves it unlimited, which
            runtimes that reserve large ranges (the JVM) need; shared mappings count only here.
        processes: processes + threads of the run (RLIMIT_NPROC of its own uid, and its cgroup's pids cap).
        file_size_mb: largest file the program may write (RLIMIT_FSIZE; also caps stdout/stderr files).
        open_files: open file descriptors (RLIMIT_NOFILE).
        output_bytes: how much of stdout and of stderr is kept in the result.
        total_memory_mb: memory of all the run's processes together, page cache and its files in /tmp
            included (its cgroup's cap; the kernel kills a process of the run when it is reached).
        disk_mb: size of the run's writable directory (a tmpfs; writes past it fail with ENOSPC). With a
            `shared_workdir`, that directory's own size applies to all its steps together.
    """

    wall_s: float = 10.0
    cpu_s: float = 10.0
    memory_mb: int = 1024
    address_space_mb: int | None = 2048
    processes: int = 64
    file_size_mb: int = 16
    open_files: int = 128
    output_bytes: int = 16 * 1024
    total_memory_mb: int = 2048
    disk_mb: int = 256


@dataclass(frozen=True)
class Isolation:
    """What a run actually had (see the module docstring)."""

    user: str  # "uid <n> (per run)", "nobody", or "caller (uid <n>)"
    network: str  # "netns" or "host"
    filesystem: str  # "system read-only, own /tmp (bubblewrap)", "private /tmp (mount ns)" or "temp dir only"
    process_group: bool = True
    rlimits: tuple[str, ...] = ("cpu", "data", "as", "nproc", "fsize", "nofile", "core")
    env: str = "scrubbed"
    sandbox: str = "none"  # "bubblewrap 0.8.0", or "none (<why>)"
    namespaces: tuple[str, ...] = ()
    cgroup: str = "none"  # "cgroup v1 (memory + pids)", or "none (<why>)"
    memory_cap_mb: int | None = None  # all processes together (cgroup)
    pids_cap: int | None = None
    disk_mb: int | None = None  # the writable directory's size; None: not capped (per-file limit only)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["rlimits"] = list(self.rlimits)
        d["namespaces"] = list(self.namespaces)
        return d


@dataclass
class SandboxResult:
    """What one program did.

    Attributes:
        returncode: exit status; negative -N when killed by signal N (as subprocess reports it). Under
            bubblewrap a program killed by signal N is reported to us as status 128+N and read back as -N;
            a program that itself exits with 129..192 therefore reads as killed by that signal.
        timed_out: the wall-clock limit was hit and the run was killed.
        wall_s: seconds from start to exit.
        stdout, stderr: the first `Limits.output_bytes` of each, decoded with replacement.
        stdout_tail: the last 4 KiB of stdout (where end-of-run markers are looked for).
        stdout_bytes, stderr_bytes: how much the program wrote in total.
        isolation: what the run had.
        files: the `keep_files` the run left.
        oom_kills: processes of the run the kernel killed at its memory cap (0 without a cgroup).
    """

    returncode: int
    timed_out: bool
    wall_s: float
    stdout: str
    stderr: str
    stdout_tail: str
    stdout_bytes: int
    stderr_bytes: int
    isolation: Isolation
    files: dict[str, bytes] = field(default_factory=dict)
    oom_kills: int = 0

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode < 0 else None


# --------------------------------------------------------------------------------------------- plan


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
    ns_fd: int | None = None,
    bwrap: bool = False,
):
    """Build the function the child runs between fork and exec (of the program, or of bubblewrap).
    Everything is computed here, in the parent, so the child only makes system calls (no imports, no
    allocation-heavy work). `src`: the run's directory where the child stands after `ns_fd` (the private
    mount namespace of the volumes) is entered."""
    lib = libc() if (plan.netns or plan.mntns or plan.userns or ns_fd is not None) else None
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
        if ns_fd is not None:
            check(lib.setns(ns_fd, _CLONE_NEWNS), "setns")
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


def _try_plan(plan: _Plan) -> bool:
    workdir = tempfile.mkdtemp(prefix="codetune-probe-")
    try:
        uid = _UID_BASE - 1 if plan.per_run_uid else (65534 if plan.nobody else None)
        if uid is not None:
            os.chown(workdir, uid, uid)
        pre = _make_preexec(plan, Limits(), src=workdir, uid=uid)
        true = shutil.which("true", path=_SAFE_PATH) or "/bin/true"
        r = subprocess.run([true], check=False, preexec_fn=pre, cwd="/", env={}, timeout=10, capture_output=True)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _legacy_plan() -> _Plan:
    """The strongest isolation without bubblewrap (each candidate plan runs `true`; the first that works)."""
    if os.geteuid() == 0:
        for per_run, nobody in ((True, False), (False, True)):
            for netns, mntns in ((True, True), (True, False), (False, False)):
                p = _Plan(per_run, nobody, False, netns, mntns)
                if _try_plan(p):
                    return p
        return _Plan(False, False, False, False, False)
    for p in (_Plan(False, False, True, True, True), _Plan(False, False, True, True, False)):
        if _try_plan(p):
            return p
    return _Plan(False, False, False, False, False)


def _probe_bwrap(base: _Plan, keeper: _volumes.Keeper) -> str:
    """ "" when programs can run under bubblewrap here (a trial run of `true` under the exact set-up), else
    why not."""
    if os.environ.get("CODETUNE_SANDBOX_BWRAP", "1") == "0":
        return "disabled by CODETUNE_SANDBOX_BWRAP=0"
    if _bwrap.executable() is None:
        return "bwrap not found (install bubblewrap: apt-get install bubblewrap, or scripts/setup-system.sh)"
    if not base.per_run_uid:
        return "needs root here (each run starts bubblewrap as a uid of its own)"
    plan = replace(base, bwrap=_bwrap.version() or "bubblewrap", volumes=keeper.volumes)
    try:
        r = _run(
            ["true"], plan, Limits(wall_s=30, cpu_s=10), files={}, stdin=None, env={}, keep_files=(), workdir=None
        )
    except SandboxError as exc:
        return f"bwrap does not work here ({exc})"
    return (
        "" if r.returncode == 0 else f"bwrap does not work here (`true` exited {r.returncode}: {r.stderr[:200]})"
    )


@functools.lru_cache(maxsize=1)
def _plan() -> _Plan:
    """What this machine allows, probed once per process; says once on stderr what is missing."""
    base = _legacy_plan()
    keeper = _volumes.keeper()
    ctl = _cgroups.probe() if base.per_run_uid else "needs root"
    missing = []
    if not keeper.volumes:
        missing.append(f"disk cap: {keeper.why_not}")
    if isinstance(ctl, str):
        missing.append(f"cgroups: {ctl}")
        ctl = None
    else:
        atexit.register(_cgroups.remove_base, ctl)
    base = replace(base, cgroups=ctl, volumes=keeper.volumes)
    why = _probe_bwrap(base, keeper)
    if why:
        missing.insert(0, f"bubblewrap: {why}")
    plan = replace(base, bwrap="" if why else (_bwrap.version() or "bubblewrap"), missing=tuple(missing))
    if missing:
        print(f"note: sandbox: {_summary(plan)}; missing {'; '.join(missing)}", file=sys.stderr)
    return plan


def _summary(plan: _Plan) -> str:
    iso = _describe(plan, None)
    return f"{iso.sandbox}, {iso.filesystem}, user {iso.user}, network {iso.network}, cgroup {iso.cgroup}"


def isolation() -> Isolation:
    """The isolation every run in this process gets (probes the machine on first call)."""
    return _describe(_plan(), None)


def _describe(plan: _Plan, uid: int | None, limits: Limits | None = None, disk_mb: int | None = None) -> Isolation:
    limits = limits or Limits()
    if plan.per_run_uid:
        user = f"uid {uid} (per run)" if uid is not None else "own uid per run"
    elif plan.nobody:
        user = "nobody (shared)"
    else:
        user = f"caller (uid {os.getuid()})" + (" in a user namespace" if plan.userns else "")
    rl = ("cpu", "data", "as", "nproc", "fsize", "nofile", "core")
    if not (plan.per_run_uid or plan.nobody or plan.userns):
        rl = tuple(x for x in rl if x != "nproc")
    if limits.address_space_mb is None:  # JVM, node: heap flags bound them instead
        rl = tuple(x for x in rl if x != "as")
    why = dict(m.split(": ", 1) for m in plan.missing)
    if plan.bwrap:
        sandbox, namespaces = plan.bwrap, _bwrap.NAMESPACES
        network, filesystem = "netns", "system read-only, own /tmp (bubblewrap)"
    else:
        sandbox = f"none ({why.get('bubblewrap', 'not used')})"
        namespaces = tuple(
            n for n, on in (("user", plan.userns), ("network", plan.netns), ("mount", plan.mntns)) if on
        )
        network = "netns" if plan.netns else "host"
        filesystem = "private /tmp (mount ns)" if plan.mntns else "temp dir only"
    cg = plan.cgroups
    return Isolation(
        user=user,
        network=network,
        filesystem=filesystem,
        rlimits=rl,
        sandbox=sandbox,
        namespaces=namespaces,
        cgroup=cg.describe() if cg else f"none ({why.get('cgroups', 'not used')})",
        memory_cap_mb=limits.total_memory_mb if cg else None,
        pids_cap=limits.processes if cg else None,
        disk_mb=(disk_mb or limits.disk_mb) if plan.volumes else None,
    )


# ---------------------------------------------------------------------------------------------- run


def _read_capped(path: str, cap: int, tail: int = 0) -> tuple[bytes, bytes, int]:
    try:
        with open(path, "rb") as f:
            head = f.read(cap)
            size = os.fstat(f.fileno()).st_size
            end = b""
            if tail:
                f.seek(max(0, size - tail))
                end = f.read(tail)
            return head, end, size
    except OSError:
        return b"", b"", 0


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


def _prepare(
    argv: Sequence[str],
    plan: _Plan,
    limits: Limits,
    private: str,
    vol: Volume,
    uid: int | None,
    files: Mapping[str, str | bytes],
    stdin: bytes | None,
    env: Mapping[str, str],
) -> _Job:
    """Lay out the run's files (see `run_sandboxed`) and describe the run to start."""
    for rel, content in files.items():
        p = os.path.join(vol.path, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
    if uid is not None:
        _chown_tree(vol.path, uid)
    home = "/tmp" if (plan.bwrap or plan.mntns) else vol.ns_path
    full_env = {"PATH": _SAFE_PATH, "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    full_env.update(env)
    out_path, err_path, in_path = (os.path.join(private, n) for n in ("stdout", "stderr", "stdin"))
    with open(in_path, "wb") as f:
        f.write(stdin or b"")
    return _Job(argv, plan, limits, vol, uid, full_env, in_path if stdin is not None else None, out_path, err_path)


def _new_group(plan: _Plan, limits: Limits) -> _cgroups.Group | None:
    if plan.cgroups is None:
        return None
    try:
        return _cgroups.Group(plan.cgroups, limits.total_memory_mb, limits.processes + _BWRAP_PROCESSES)
    except OSError as exc:
        raise SandboxError(f"cannot create the run's cgroup under {plan.cgroups.memory_base}: {exc}") from exc


def _end_run(job: _Job, group: _cgroups.Group | None, pgid: int | None) -> int:
    """Kill whatever is left of the run; returns the oom kills its cgroup counted."""
    if group is not None:
        group.kill()
        oom = group.oom_kills()
        group.remove()
        return oom
    if pgid is not None:
        _kill_group(pgid)
    if job.plan.per_run_uid and job.uid is not None:
        _sweep_uid(job.uid)
    return 0


def _bwrap_status(fd: int) -> int | None:
    """The program's exit status as bubblewrap reported it (None: it never ran: set-up or exec failed)."""
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    for line in data.decode("utf-8", "replace").splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            if "exit-code" in rec:
                code = int(rec["exit-code"])
                # bwrap reports a death by signal N as 128 + N (see SandboxResult.returncode).
                return -(code - 128) if 128 < code <= 128 + 64 else code
    return None


def _spawn(job: _Job) -> tuple[int, bool, float, int]:
    """Start the program (under bubblewrap where the plan has it) and wait for it; returns (returncode,
    timed_out, wall_s, oom_kills)."""
    plan, vol = job.plan, job.vol
    group = _new_group(plan, job.limits)
    status = os.pipe() if plan.bwrap else None
    try:
        argv = list(job.argv)
        if status is not None:
            argv = _bwrap.program_argv(argv, volume=vol.ns_path, status_fd=status[1])
        proc, t0 = _start(job, argv, group, status[1] if status else None)
    except BaseException:
        if group is not None:
            group.remove()
        if status is not None:
            os.close(status[0])
        raise
    finally:
        if status is not None:
            os.close(status[1])  # ours: bubblewrap holds its own copy while it runs
    timed_out = not _wait_exit(proc, job.limits.wall_s)
    if timed_out and group is not None:
        group.kill()
    oom = _end_run(job, group, proc.pid)  # leftovers either way
    proc.wait()
    wall = time.monotonic() - t0
    returncode = proc.returncode
    if status is not None:
        try:
            reported = _bwrap_status(status[0])
        finally:
            os.close(status[0])
        if reported is not None:
            returncode = reported
        elif not timed_out and returncode >= 0 and oom == 0:
            raise SandboxError(f"cannot start {job.argv[0]!r} in the sandbox: {_bwrap_error(job.stderr)}")
    return returncode, timed_out, wall, oom


def _start(job: _Job, argv: list[str], group, status_w: int | None) -> tuple[subprocess.Popen, float]:
    """Popen `argv` with the run's preexec (cgroup, mount namespace, rlimits, uid) and files."""
    plan = job.plan
    ns_fd = _volumes.keeper().ns_fd if plan.volumes else None
    join = group.join_fds() if group is not None else []
    try:
        preexec = _make_preexec(
            plan,
            job.limits,
            src=job.vol.ns_path,
            uid=job.uid,
            join_fds=join,
            ns_fd=ns_fd,
            bwrap=status_w is not None,
        )
        stdin_path = job.stdin if job.stdin is not None else os.devnull
        with open(job.stdout, "wb") as out, open(job.stderr, "wb") as err, open(stdin_path, "rb") as inp:
            t0 = time.monotonic()
            proc = subprocess.Popen(
                argv,
                stdin=inp if job.stdin is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd="/",
                env=job.env,
                preexec_fn=preexec,  # noqa: PLW1509 (it only makes system calls)
                start_new_session=True,
                close_fds=True,
                pass_fds=(status_w,) if status_w is not None else (),
            )
        return proc, t0
    except FileNotFoundError as exc:
        raise SandboxError(f"cannot start {argv[0]!r}: {exc}") from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxError(f"sandbox set-up failed for {job.argv[0]!r}: {exc}") from exc
    finally:
        for fd in join:
            os.close(fd)


def _bwrap_error(stderr_path: str) -> str:
    head, _, _ = _read_capped(stderr_path, 2000)
    lines = [x for x in head.decode("utf-8", "replace").splitlines() if x.strip()]
    return (lines or ["bubblewrap exited without running it"])[-1][:300]


# -------------------------------------------------------------------------------------- fork servers


class _ForkServer:
    """Client of `_forkserver.py` (one program at a time): see that module. Under bubblewrap it runs as
    uid 0 of a user namespace mapping 0 -> `self.uids[0]` and `self.uids[1]` (its programs' uid) to itself."""

    def __init__(self, python: str, plan: _Plan) -> None:
        import socket

        self.mode = "bwrap" if plan.bwrap else "legacy"
        self.uids = (_uid_pool().take(), _uid_pool().take()) if plan.bwrap else None
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            keeper = _volumes.keeper()
            try:
                self.proc = keeper.call(self._start, python, plan, theirs.fileno(), keeper)
            finally:
                theirs.close()  # the server holds its own copy: if it dies, recv() below sees the end
            self.sock.settimeout(60)
            banner = json.loads(self.sock.recv(65536) or b'{"ready": false, "error": "it exited"}')
        except (OSError, ValueError) as exc:
            self.close()
            raise SandboxError(f"the python fork server did not start: {exc}") from exc
        if not banner.get("ready"):
            self.close()
            raise SandboxError(f"the python fork server did not start: {banner.get('error')}")

    @property
    def program_uid(self) -> int | None:
        return self.uids[1] if self.uids else None

    def _start(self, python: str, plan: _Plan, sock_fd: int, keeper: _volumes.Keeper) -> subprocess.Popen:
        """Runs in the keeper thread (its mount namespace; it outlives any worker thread)."""
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_forkserver.py")
        env = {"PATH": _SAFE_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        common = dict(
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd="/"
        )
        if self.mode == "legacy":
            return subprocess.Popen(
                [python, "-I", "-S", "-B", script, str(sock_fd), "legacy"], pass_fds=(sock_fd,), **common
            )
        server_uid, program_uid = self.uids
        with open(script, "rb") as f:
            code = f.read()
        data = os.memfd_create("codetune-forkserver")
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        try:
            os.write(data, code)
            os.lseek(data, 0, os.SEEK_SET)
            argv = [python, "-I", "-S", "-B", "/codetune/forkserver.py", str(sock_fd), "bwrap"]
            runs = keeper.root if plan.volumes else None
            ro = {str(data): "/codetune/forkserver.py"}
            cmd = _bwrap.server_argv(argv, runs=runs, info_fd=info_w, block_fd=block_r, ro=ro)

            def preexec() -> None:
                os.setgroups([])
                os.setresgid(server_uid, server_uid, server_uid)
                os.setresuid(server_uid, server_uid, server_uid)

            proc = subprocess.Popen(cmd, pass_fds=(sock_fd, data, info_w, block_r), preexec_fn=preexec, **common)
            os.close(info_w)
            info_w = -1
            info = _read_all(info_r)
            child = json.loads(info.decode() or "{}").get("child-pid")
            if child is None:
                proc.kill()
                proc.wait()
                raise OSError("bubblewrap did not report its child")
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{child}/{name}", "w") as f:
                    f.write(f"0 {server_uid} 1\n{program_uid} {program_uid} 1\n")
            os.write(block_w, b"1")
            return proc
        finally:
            for fd in (data, info_r, info_w, block_r, block_w):
                if fd >= 0:
                    os.close(fd)

    def run(self, req: dict, fds: list[int], timeout_s: float) -> dict:
        import socket

        try:
            socket.send_fds(self.sock, [json.dumps(req).encode()], fds)
            self.sock.settimeout(timeout_s)
            reply = self.sock.recv(65536)
        except OSError as exc:
            raise SandboxError(f"python fork server failed: {exc}") from exc
        if not reply:
            raise SandboxError("python fork server exited")
        return json.loads(reply)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        proc = getattr(self, "proc", None)
        if proc is not None:
            proc.kill()
            proc.wait()
        if self.uids:
            for u in self.uids:
                _uid_pool().give(u)
            self.uids = None


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return out
        out += chunk


_servers_idle: dict[str, list[_ForkServer]] = {}
_servers_all: list[_ForkServer] = []
_servers_lock = threading.Lock()


@contextlib.contextmanager
def _fork_server(python: str, plan: _Plan):
    """Borrow an idle fork server for `python` (one request at a time each), starting one if none is."""
    with _servers_lock:
        idle = _servers_idle.setdefault(python, [])
        srv = None
        while idle and srv is None:
            srv = idle.pop()
            if srv.proc.poll() is not None:
                srv = None
    if srv is None:
        srv = _ForkServer(python, plan)
        with _servers_lock:
            if not _servers_all:
                atexit.register(close_fork_servers)
            _servers_all.append(srv)
    try:
        yield srv
    except SandboxError:  # a server that failed a request is not trusted with another
        with _servers_lock:
            if srv in _servers_all:
                _servers_all.remove(srv)
        srv.close()
        raise
    else:
        with _servers_lock:
            if srv in _servers_all:  # not closed meanwhile
                _servers_idle.setdefault(python, []).append(srv)


def close_fork_servers() -> None:
    """Stop every Python fork server this process started (also done at exit)."""
    with _servers_lock:
        for srv in _servers_all:
            srv.close()
        _servers_all.clear()
        _servers_idle.clear()


def _run_forked(job: _Job, srv: _ForkServer) -> tuple[int, bool, float, int]:
    """Fork the program from the warm fork server `srv`; returns (returncode, timed_out, wall_s, oom_kills)."""
    plan = job.plan
    group = _new_group(plan, job.limits)
    req = {
        "mode": srv.mode,
        "script": job.argv[-1],
        "rlimits": [(r, a, b) for r, (a, b) in _rlimits(plan, job.limits, job.uid)],
        "env": job.env,
        "wall_s": job.limits.wall_s,
    }
    if srv.mode == "bwrap":
        req.update(volume=f"/runs/{job.vol.name}", uid=job.uid)
    else:
        flags = (_CLONE_NEWNET if plan.netns else 0) | (_CLONE_NEWNS if plan.mntns else 0)
        flags |= _CLONE_NEWUSER if plan.userns else 0
        req.update(
            workdir=job.vol.ns_path,
            unshare=flags,
            mntns=plan.mntns,
            targets=[t for t in _WORLD_WRITABLE[1:] if os.path.isdir(t)],
            uid=job.uid,
        )
    fds = []
    try:
        fds.append(os.open(job.stdin if job.stdin is not None else os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        for p in (job.stdout, job.stderr):
            fds.append(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o600))
        fds += group.join_fds() if group is not None else []
        rep = srv.run(req, fds, job.limits.wall_s + 60)
    except BaseException:
        if group is not None:
            group.kill()
            group.remove()
        raise
    finally:
        for fd in fds:
            os.close(fd)
    oom = _end_run(job, group, rep["pid"] if srv.mode == "legacy" else None)
    if rep.get("setup_error") is not None:  # the program never ran
        raise SandboxError(f"sandbox set-up failed in the python fork server: {rep['setup_error'] or 'died'}")
    return rep["returncode"], rep["timed_out"], rep["wall_s"], oom


# ------------------------------------------------------------------------------------------- the API


def _read_kept(vol: Volume, keep_files: Sequence[str]) -> dict[str, bytes]:
    """The regular files among `keep_files` (relative to the run's directory; symlinks skipped), each capped."""
    kept = {}
    for rel in keep_files:
        p = os.path.join(vol.path, rel)
        if os.path.isfile(p) and not os.path.islink(p):
            with open(p, "rb") as f:
                kept[rel] = f.read(_KEPT_FILE_BYTES)
    return kept


def _result(job: _Job, run: tuple[int, bool, float, int], keep_files: Sequence[str]) -> SandboxResult:
    """Read back what the finished run left (capped output, kept files) into its result."""
    returncode, timed_out, wall, oom = run
    cap = job.limits.output_bytes
    out_head, out_tail, out_n = _read_capped(job.stdout, cap, tail=_STDOUT_TAIL_BYTES)
    err_head, _, err_n = _read_capped(job.stderr, cap)
    return SandboxResult(
        returncode=returncode,
        timed_out=timed_out,
        wall_s=wall,
        stdout=out_head.decode("utf-8", "replace"),
        stderr=err_head.decode("utf-8", "replace"),
        stdout_tail=out_tail.decode("utf-8", "replace"),
        stdout_bytes=out_n,
        stderr_bytes=err_n,
        isolation=_describe(job.plan, job.uid, job.limits, job.vol.size_mb),
        files=_read_kept(job.vol, keep_files),
        oom_kills=oom,
    )


_shared: dict[str, Volume] = {}  # shared_workdir() paths -> their volumes
_shared_lock = threading.Lock()


def _volume_of(workdir: str) -> Volume:
    with _shared_lock:
        vol = _shared.get(workdir)
    return vol if vol is not None else Volume("", workdir, workdir, None)  # a caller's own directory


def run_sandboxed(
    argv: Sequence[str],
    *,
    files: Mapping[str, str | bytes] | None = None,
    limits: Limits = Limits(),
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    keep_files: Sequence[str] = (),
    workdir: str | None = None,
    fork_server: bool = False,
) -> SandboxResult:
    """Run `argv` in a fresh sandbox and return what it did.

    Args:
        argv: the command; relative paths resolve in the run's directory (its working directory, /tmp).
        files: relative path -> content, written into the run's directory before the run.
        limits: resource limits (see `Limits`).
        stdin: bytes given on standard input (read from a file the program cannot open by path);
            None gives /dev/null.
        env: extra environment variables on top of the scrubbed base (PATH, HOME, TMPDIR, LANG).
        keep_files: relative paths to read back from the run's directory after the run (e.g. outputs
            a program writes for trusted code to read); each is capped at 16 MiB.
        workdir: a directory from `shared_workdir()` to run in (shared by a compile and a run); the caller
            owns its removal. By default a fresh one of `limits.disk_mb` is created and removed.
        fork_server: `argv` is `[python, flags..., script.py]`: fork the program from a warm server
            running that interpreter (with -I -S -B) instead of starting a fresh one: same isolation,
            without an interpreter start-up and the common imports per program (what that saves is
            measured by benchmarks/exec_bench.py; see benchmarks/RESULTS.md).

    Returns:
        A `SandboxResult`; a program that crashes, hangs or misbehaves is a result, not an exception.

    Raises:
        SandboxError: the program could not be started (missing executable, broken isolation).
    """
    return _run(
        argv,
        _plan(),
        limits,
        files=files or {},
        stdin=stdin,
        env=env or {},
        keep_files=keep_files,
        workdir=workdir,
        fork_server=fork_server,
    )


def _run(argv, plan: _Plan, limits: Limits, *, files, stdin, env, keep_files, workdir, fork_server=False):
    private = tempfile.mkdtemp(prefix="codetune-run-")  # root-only: outputs and stdin live here
    with contextlib.ExitStack() as stack:
        stack.callback(_remove_later, private)
        if workdir is not None:
            vol = _volume_of(workdir)
        else:
            vol = _volumes.keeper().create(limits.disk_mb, None)
            stack.callback(_volumes.keeper().destroy, vol)
        # Under bubblewrap a fork server reaches only volumes (bound at /runs); anything else is executed.
        forked = fork_server and (not plan.bwrap or vol.size_mb is not None)
        if forked:
            srv = stack.enter_context(_fork_server(argv[0], plan))
            uid = srv.program_uid if srv.mode == "bwrap" else _take_uid(plan, stack)
        else:
            uid = _take_uid(plan, stack)
        job = _prepare(argv, plan, limits, private, vol, uid, files, stdin, env)
        run = _run_forked(job, srv) if forked else _spawn(job)
        return _result(job, run, keep_files)


def _take_uid(plan: _Plan, stack: contextlib.ExitStack) -> int | None:
    if plan.per_run_uid:
        uid = _uid_pool().take()
        stack.callback(_uid_pool().give, uid)
        return uid
    return 65534 if plan.nobody else None


def _remove_later(path: str) -> None:
    # Off the hot path: removing a directory waits on the file system (and, without volumes, on the
    # kernel releasing a dead namespace's bind mounts of it).
    _remover().submit(shutil.rmtree, path, True)


@functools.lru_cache(maxsize=1)
def _remover():
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codetune-rm")
    atexit.register(pool.shutdown, wait=True)
    return pool


def flush_removals() -> None:
    """Wait until every finished run's temporary directory is gone."""
    _remover().submit(lambda: None).result()


@contextlib.contextmanager
def shared_workdir(disk_mb: int = Limits.disk_mb):
    """A directory several `run_sandboxed(..., workdir=...)` calls can share (compile, then run): a volume
    of `disk_mb` for all of them together; removed on exit. The path is only meaningful to run_sandboxed
    (and to trusted code reading files from it)."""
    _plan()
    vol = _volumes.keeper().create(disk_mb, None)
    with _shared_lock:
        _shared[vol.path] = vol
    try:
        yield vol.path
    finally:
        with _shared_lock:
            _shared.pop(vol.path, None)
        _volumes.keeper().destroy(vol)
