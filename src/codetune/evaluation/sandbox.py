"""Run one untrusted program and report what happened; never raise for what the program did.

Every run gets, as far as this machine permits (the plan is probed once and then enforced: a step that
fails at run time is a harness error, never a silent downgrade, so the recorded isolation is the real one):

- its own session and process group, killed as a whole on timeout and after the program exits;
- rlimits: CPU seconds, data + address-space bytes, processes, file size, open files, no core dumps;
- a fresh temporary directory as its working directory and as `HOME`/`TMPDIR`, and a scrubbed environment;
- as root: its own user id (a high, unused uid per concurrent run, so runs cannot signal each other, the
  harness or anyone else, and `RLIMIT_NPROC` counts this run's processes only), no supplementary groups,
  and a sweep that kills every process of that uid afterwards (this catches children that called
  `setsid()` to leave the process group);
- a new network namespace (no interfaces but a downed loopback: connect() fails) where permitted;
- a private mount namespace in which the temp dir is bind-mounted over `/tmp`, `/var/tmp`, `/dev/shm` and
  `/run/lock` (the world-writable places), so writes "outside" land in the run's own directory;
- stdout/stderr written to files the program cannot open by path, read back capped.

Without root the program runs as the calling user: it can then signal the harness and write wherever the
user can; user + network namespaces are used where the kernel allows unprivileged ones.
`Isolation.as_dict()` says which of these a run had.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import functools
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from codetune.errors import ToolchainError

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
# A block of uids far above any real account: one per concurrently running program. The offset by pid
# keeps two harness processes on one machine apart.
_UID_BASE = 1_500_000_000
_UID_SLOTS = 256
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_STDOUT_TAIL_BYTES = 4096  # `SandboxResult.stdout_tail`
_KEPT_FILE_BYTES = 16 * 1024 * 1024  # per file in `run_sandboxed(keep_files=...)`


class SandboxError(ToolchainError):
    """The harness could not start a program (a missing runtime, a broken machine or a bug; never the
    program's fault: nothing it does raises this)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run.

    Attributes:
        wall_s: wall-clock seconds before the whole process group is killed.
        cpu_s: CPU seconds per process (RLIMIT_CPU; SIGXCPU then SIGKILL one second later).
        memory_mb: writable private memory per process (RLIMIT_DATA; what malloc/mmap/JVM heaps use).
        address_space_mb: virtual address space per process (RLIMIT_AS); None leaves it unlimited, which
            runtimes that reserve large ranges (the JVM) need; shared mappings count only here.
        processes: processes + threads of this run's uid (RLIMIT_NPROC; exact when the run has its own uid).
        file_size_mb: largest file the program may write (RLIMIT_FSIZE; also caps stdout/stderr files).
        open_files: open file descriptors (RLIMIT_NOFILE).
        output_bytes: how much of stdout and of stderr is kept in the result.
    """

    wall_s: float = 10.0
    cpu_s: float = 10.0
    memory_mb: int = 1024
    address_space_mb: int | None = 2048
    processes: int = 64
    file_size_mb: int = 16
    open_files: int = 128
    output_bytes: int = 16 * 1024


@dataclass(frozen=True)
class Isolation:
    """What a run actually had (see the module docstring)."""

    user: str  # "uid <n> (per run)", "nobody", or "caller (uid <n>)"
    network: str  # "netns" or "host"
    filesystem: str  # "private /tmp (mount ns)" or "temp dir only"
    process_group: bool = True
    rlimits: tuple[str, ...] = ("cpu", "data", "as", "nproc", "fsize", "nofile", "core")
    env: str = "scrubbed"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["rlimits"] = list(self.rlimits)
        return d


@dataclass
class SandboxResult:
    """What one program did.

    Attributes:
        returncode: exit status; negative -N when killed by signal N (as subprocess reports it).
        timed_out: the wall-clock limit was hit and the group was killed.
        wall_s: seconds from start to exit.
        stdout, stderr: the first `Limits.output_bytes` of each, decoded with replacement.
        stdout_tail: the last 4 KiB of stdout (where end-of-run markers are looked for).
        stdout_bytes, stderr_bytes: how much the program wrote in total.
        isolation: what the run had.
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


@functools.lru_cache(maxsize=1)
def _libc():
    lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    lib.unshare.argtypes = [ctypes.c_int]
    lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    return lib


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _rlimits(plan: _Plan, limits: Limits, uid: int | None) -> list[tuple[int, tuple[int, int]]]:
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
        rl.append((resource.RLIMIT_NPROC, (limits.processes,) * 2))
    return rl


def _make_preexec(plan: _Plan, limits: Limits, workdir: str, uid: int | None, gid: int | None):
    """Build the function the child runs between fork and exec. Everything is computed here, in the
    parent, so the child only makes system calls (no imports, no allocation-heavy work)."""
    libc = _libc() if (plan.netns or plan.mntns or plan.userns) else None
    flags = (_CLONE_NEWUSER if plan.userns else 0) | (_CLONE_NEWNET if plan.netns else 0)
    flags |= _CLONE_NEWNS if plan.mntns else 0
    src = workdir.encode()
    targets = [t.encode() for t in _WORLD_WRITABLE[1:] if os.path.isdir(t)]
    rl = _rlimits(plan, limits, uid)
    tmp = b"/tmp"

    def preexec() -> None:  # runs in the child: keep it to system calls
        if flags:
            _check(libc.unshare(flags), "unshare")
        if plan.mntns:
            _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
            # /tmp first: once it is covered, the workdir's own path (under /tmp) no longer resolves,
            # so the other places are bound from /tmp.
            _check(libc.mount(src, tmp, None, _MS_BIND, None), "bind mount /tmp")
            for t in targets:
                _check(libc.mount(tmp, t, None, _MS_BIND, None), "bind mount")
            os.chdir(tmp)
        for res, val in rl:
            resource.setrlimit(res, val)
        if uid is not None:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
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
        pre = _make_preexec(plan, Limits(), workdir, uid, uid)
        true = shutil.which("true", path=_SAFE_PATH) or "/bin/true"
        r = subprocess.run(
            [true], check=False, preexec_fn=pre, cwd=workdir, env={}, timeout=10, capture_output=True
        )
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@functools.lru_cache(maxsize=1)
def _plan() -> _Plan:
    """The strongest isolation this machine allows, probed once per process (each candidate plan runs `true`
    under it; the first that works is kept)."""
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


def isolation() -> Isolation:
    """The isolation every run in this process gets (probes the machine on first call)."""
    return _describe(_plan(), None)


def _describe(plan: _Plan, uid: int | None, limits: Limits | None = None) -> Isolation:
    if plan.per_run_uid:
        user = f"uid {uid} (per run)" if uid is not None else "own uid per run"
    elif plan.nobody:
        user = "nobody (shared)"
    else:
        user = f"caller (uid {os.getuid()})" + (" in a user namespace" if plan.userns else "")
    rl = ("cpu", "data", "as", "nproc", "fsize", "nofile", "core")
    if not (plan.per_run_uid or plan.nobody or plan.userns):
        rl = tuple(x for x in rl if x != "nproc")
    if limits is not None and limits.address_space_mb is None:  # JVM, node: heap flags bound them instead
        rl = tuple(x for x in rl if x != "as")
    return Isolation(
        user=user,
        network="netns" if plan.netns else "host",
        filesystem="private /tmp (mount ns)" if plan.mntns else "temp dir only",
        rlimits=rl,
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
    """Kill every process of `uid`, including those that left the process group with setsid().

    Returns how many were found. A pidfd is opened and the uid re-checked before signalling, so a pid
    reused by an unrelated process in between is never hit.
    """
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


class _ForkServer:
    """Client of `_forkserver.py` (one per worker thread and interpreter): see that module."""

    def __init__(self, python: str) -> None:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_forkserver.py")
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [python, "-I", "-S", "-B", script, str(r1), str(w2)],
                pass_fds=(r1, w2),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={"PATH": _SAFE_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"},
                cwd="/",
            )
        finally:
            os.close(r1)
            os.close(w2)
        self._w = os.fdopen(w1, "w", encoding="utf-8")
        self._r = os.fdopen(r2, "r", encoding="utf-8")

    def run(self, req: dict) -> dict:
        try:
            self._w.write(json.dumps(req) + "\n")
            self._w.flush()
            line = self._r.readline()
        except OSError as exc:
            raise SandboxError(f"python fork server failed: {exc}") from exc
        if not line:
            raise SandboxError("python fork server exited")
        return json.loads(line)

    def close(self) -> None:
        for f in (self._w, self._r):
            try:
                f.close()
            except OSError:
                pass
        self.proc.kill()
        self.proc.wait()


_servers_idle: dict[str, list[_ForkServer]] = {}
_servers_all: list[_ForkServer] = []
_servers_lock = threading.Lock()


@contextlib.contextmanager
def _fork_server(python: str):
    """Borrow an idle fork server for `python` (one request at a time each), starting one if none is."""
    with _servers_lock:
        idle = _servers_idle.setdefault(python, [])
        srv = None
        while idle and srv is None:
            srv = idle.pop()
            if srv.proc.poll() is not None:
                srv = None
    if srv is None:
        srv = _ForkServer(python)
        with _servers_lock:
            if not _servers_all:
                atexit.register(close_fork_servers)
            _servers_all.append(srv)
    try:
        yield srv
    finally:
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


@dataclass(frozen=True)
class _Job:
    """One prepared run, handed to `_spawn` or `_run_forked`: the files are written, the workdir chowned."""

    argv: Sequence[str]
    plan: _Plan
    limits: Limits
    work: str  # the program's working directory
    uid: int | None  # the uid it runs as; None: the caller's
    env: dict[str, str]
    stdin: str | None  # the file given on standard input; None: /dev/null
    stdout: str  # files in the run's private directory, which the program cannot list
    stderr: str


def _prepare(
    argv: Sequence[str],
    plan: _Plan,
    limits: Limits,
    private: str,
    work: str,
    own_workdir: bool,
    uid: int | None,
    files: Mapping[str, str | bytes],
    stdin: bytes | None,
    env: Mapping[str, str],
) -> _Job:
    """Lay out the run's directories and files (see `run_sandboxed`) and describe the run to start."""
    os.chmod(private, 0o711)  # traversable, not listable: the program needs to reach work/
    if own_workdir:
        os.mkdir(work, 0o700)
    for rel, content in files.items():
        p = os.path.join(work, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
    if uid is not None:
        _chown_tree(work, uid)
    home = "/tmp" if plan.mntns else work
    full_env = {"PATH": _SAFE_PATH, "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    full_env.update(env)
    out_path, err_path, in_path = (os.path.join(private, n) for n in ("stdout", "stderr", "stdin"))
    with open(in_path, "wb") as f:
        f.write(stdin or b"")
    return _Job(
        argv=argv,
        plan=plan,
        limits=limits,
        work=work,
        uid=uid,
        env=full_env,
        stdin=in_path if stdin is not None else None,
        stdout=out_path,
        stderr=err_path,
    )


def _spawn(job: _Job) -> tuple[int, bool, float]:
    """Start the program with `subprocess.Popen` and wait for it; returns (returncode, timed_out, wall_s)."""
    preexec = _make_preexec(job.plan, job.limits, job.work, job.uid, job.uid)
    stdin_path = job.stdin if job.stdin is not None else os.devnull
    with open(job.stdout, "wb") as out, open(job.stderr, "wb") as err, open(stdin_path, "rb") as inp:
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(
                list(job.argv),
                stdin=inp if job.stdin is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=job.work,
                env=job.env,
                preexec_fn=preexec,  # noqa: PLW1509 (it only makes system calls)
                start_new_session=True,
                close_fds=True,
            )
        except FileNotFoundError as exc:
            raise SandboxError(f"cannot start {job.argv[0]!r}: {exc}") from exc
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxError(f"sandbox set-up failed for {job.argv[0]!r}: {exc}") from exc
        timed_out = not _wait_exit(proc, job.limits.wall_s)
        _kill_group(proc.pid)  # the group outlives its leader: kill leftovers either way
        if job.plan.per_run_uid:
            _sweep_uid(job.uid)
        proc.wait()
        return proc.returncode, timed_out, time.monotonic() - t0


def _run_forked(job: _Job) -> tuple[int, bool, float]:
    """Fork the program from a warm fork server for `argv[0]`; returns (returncode, timed_out, wall_s)."""
    open(job.stdout, "wb").close()
    open(job.stderr, "wb").close()
    plan = job.plan
    flags = (_CLONE_NEWNET if plan.netns else 0) | (_CLONE_NEWNS if plan.mntns else 0)
    flags |= _CLONE_NEWUSER if plan.userns else 0
    req = {
        "script": job.argv[-1],
        "workdir": job.work,
        "unshare": flags,
        "mntns": plan.mntns,
        "targets": [t for t in _WORLD_WRITABLE[1:] if os.path.isdir(t)],
        "stdin": job.stdin if job.stdin is not None else os.devnull,
        "stdout": job.stdout,
        "stderr": job.stderr,
        "rlimits": [(r, a, b) for r, (a, b) in _rlimits(plan, job.limits, job.uid)],
        "uid": job.uid,
        "env": job.env,
        "wall_s": job.limits.wall_s,
    }
    with _fork_server(job.argv[0]) as srv:
        rep = srv.run(req)
    _kill_group(rep["pid"])
    if rep.get("setup_error") is not None:  # the program never ran
        raise SandboxError(f"sandbox set-up failed in the python fork server: {rep['setup_error'] or 'died'}")
    if plan.per_run_uid:
        _sweep_uid(job.uid)
    return rep["returncode"], rep["timed_out"], rep["wall_s"]


def _read_kept(work: str, keep_files: Sequence[str]) -> dict[str, bytes]:
    """The regular files among `keep_files` (relative to `work`; symlinks skipped), each capped."""
    kept = {}
    for rel in keep_files:
        p = os.path.join(work, rel)
        if os.path.isfile(p) and not os.path.islink(p):
            with open(p, "rb") as f:
                kept[rel] = f.read(_KEPT_FILE_BYTES)
    return kept


def _result(job: _Job, returncode: int, timed_out: bool, wall: float, keep_files: Sequence[str]) -> SandboxResult:
    """Read back what the finished run left (capped output, kept files) into its result."""
    cap = job.limits.output_bytes
    out_head, out_tail, out_n = _read_capped(job.stdout, cap, tail=_STDOUT_TAIL_BYTES)
    err_head, _, err_n = _read_capped(job.stderr, cap)
    kept = _read_kept(job.work, keep_files)
    return SandboxResult(
        returncode=returncode,
        timed_out=timed_out,
        wall_s=wall,
        stdout=out_head.decode("utf-8", "replace"),
        stderr=err_head.decode("utf-8", "replace"),
        stdout_tail=out_tail.decode("utf-8", "replace"),
        stdout_bytes=out_n,
        stderr_bytes=err_n,
        isolation=_describe(job.plan, job.uid, job.limits),
        files=kept,
    )


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
        argv: the command; relative paths resolve in the run's temp directory (its working directory).
        files: relative path -> content, written into the temp directory before the run.
        limits: resource limits (see `Limits`).
        stdin: bytes given on standard input (read from a file the program cannot open by path);
            None gives /dev/null.
        env: extra environment variables on top of the scrubbed base (PATH, HOME, TMPDIR, LANG).
        keep_files: relative paths to read back from the temp directory after the run (e.g. compiled
            classes handed to a second run); each is capped at 16 MiB.
        workdir: an existing directory to run in (reused between a compile and a run); the caller then
            owns its removal. By default a fresh one is created and removed.
        fork_server: `argv` is `[python, flags..., script.py]`: fork the program from a warm server
            running that interpreter (with -I -S -B) instead of starting a fresh one: same isolation,
            without an interpreter start-up and the common imports per program (what that saves is
            measured by benchmarks/exec_bench.py; see benchmarks/RESULTS.md).

    Returns:
        A `SandboxResult`; a program that crashes, hangs or misbehaves is a result, not an exception.

    Raises:
        SandboxError: the program could not be started (missing executable, broken isolation).
    """
    plan = _plan()
    private = tempfile.mkdtemp(prefix="codetune-run-")  # root-only: outputs and stdin live here
    own_workdir = workdir is None
    work = workdir or os.path.join(private, "work")
    uid = _uid_pool().take() if plan.per_run_uid else (65534 if plan.nobody else None)
    try:
        job = _prepare(argv, plan, limits, private, work, own_workdir, uid, files or {}, stdin, env or {})
        returncode, timed_out, wall = _run_forked(job) if fork_server else _spawn(job)
        return _result(job, returncode, timed_out, wall, keep_files)
    finally:
        if uid is not None and plan.per_run_uid:
            _uid_pool().give(uid)
        _remove_later(private)


def _remove_later(path: str) -> None:
    # Removing a directory that was a bind-mount source waits for the kernel to release the dead
    # namespace's mounts (an RCU grace period, idle wall time for the caller): do it off the hot path.
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
def shared_workdir():
    """A directory several `run_sandboxed(..., workdir=...)` calls can share (compile, then run);
    removed on exit."""
    parent = tempfile.mkdtemp(prefix="codetune-work-")
    try:
        os.chmod(parent, 0o711)
        work = os.path.join(parent, "work")
        os.mkdir(work, 0o700)
        yield work
    finally:
        _remove_later(parent)
