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
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import TypeVar

from codetune.evaluation import _bwrap, _cgroups, _volumes
from codetune.evaluation._forkclient import _forget_fork_servers, _fork_server, _run_forked, close_fork_servers
from codetune.evaluation._process import (
    _SAFE_PATH,
    SandboxError,
    _chown_tree,
    _end_run,
    _Job,
    _legacy_plan,
    _make_preexec,
    _new_group,
    _Plan,
    _uid_pool,
    _wait_exit,
)
from codetune.evaluation._volumes import Volume

__all__ = [
    "Isolation",
    "Limits",
    "SandboxError",
    "SandboxResult",
    "close_fork_servers",
    "flush_removals",
    "isolation",
    "map_tasks",
    "run_sandboxed",
    "shared_workdir",
]
T = TypeVar("T")
R = TypeVar("R")

_STDOUT_TAIL_BYTES = 4096  # `SandboxResult.stdout_tail`
_KEPT_FILE_BYTES = 16 * 1024 * 1024  # per file in `run_sandboxed(keep_files=...)`


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


_PLAN_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _plan() -> _Plan:
    """What this machine allows, probed once per process; says once on stderr what is missing."""
    with _PLAN_LOCK:  # the first calls may come from several threads at once: probe once
        return _probe_plan()


def _probe_plan() -> _Plan:
    base = _legacy_plan(Limits())
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


_AS_PROBED = -1


def _describe(
    plan: _Plan, uid: int | None, limits: Limits | None = None, disk_mb: int | None = _AS_PROBED
) -> Isolation:
    """What a run had; `disk_mb`: its directory's size (None: not capped); by default what runs get."""
    limits = limits or Limits()
    if disk_mb == _AS_PROBED:
        disk_mb = limits.disk_mb if plan.volumes else None
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
        disk_mb=disk_mb,
    )


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
    oom = _end_run(job, group, proc.pid, proc if status is not None else None)  # leftovers either way
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
    """Popen `argv` with the run's preexec (cgroup, namespaces, rlimits, uid) and files, from the keeper thread:
    its children start in the volumes' mount namespace (a setns() in the child instead fails where a library's
    fork handler has started a thread there, as torch's stack does) and are tied to a thread that lives as
    long as this process (bubblewrap's --die-with-parent)."""
    plan = job.plan
    join = group.join_fds() if group is not None else []
    try:
        preexec = _make_preexec(
            plan,
            job.limits,
            src=job.vol.ns_path,
            uid=job.uid,
            join_fds=join,
            bwrap=status_w is not None,
        )
        stdin_path = job.stdin if job.stdin is not None else os.devnull
        with open(job.stdout, "wb") as out, open(job.stderr, "wb") as err, open(stdin_path, "rb") as inp:
            t0 = time.monotonic()
            proc = _volumes.keeper().call(
                subprocess.Popen,
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
_SHARED_LOCK = threading.Lock()


def _volume_of(workdir: str) -> Volume:
    with _SHARED_LOCK:
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
    private = _volumes.keeper().private_dir()  # root-only: outputs and stdin live here
    with contextlib.ExitStack() as stack:
        stack.callback(_remove_later, private)
        if workdir is not None:
            vol = _volume_of(workdir)
        else:
            vol = _volumes.keeper().create(limits.disk_mb, None, tmpfs=plan.volumes)
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


def _forget_after_fork() -> None:
    """In a child forked from a process that used the sandbox: its threads (the keeper, the remover) did not
    come along, and the fork servers and uids are the parent's: start afresh (the probed plan stays)."""
    _volumes.keeper.cache_clear()
    _remover.cache_clear()
    _uid_pool.cache_clear()
    _forget_fork_servers()
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()  # a thread of the parent may have held it
    _shared.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


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
    with _SHARED_LOCK:
        _shared[vol.path] = vol
    try:
        yield vol.path
    finally:
        with _SHARED_LOCK:
            _shared.pop(vol.path, None)
        _volumes.keeper().destroy(vol)


def abort_running() -> int:
    """Kill every program this process's sandbox runs now (their runs then end as killed); returns how many
    processes there were. Without cgroups nothing is killed here: runs end at their limits."""
    cg = _plan().cgroups
    return _cgroups.kill_all(cg) if isinstance(cg, _cgroups.Controller) else 0


def map_tasks(
    fn: Callable[[T], R], items: Sequence[T], *, desc: str, workers: int | None, progress: bool
) -> list[R]:
    """`fn` over `items` on `workers` threads (None: one per CPU), each call typically one sandboxed program
    per task, in order, with a progress bar named `desc`. The sandbox is probed once before the threads start."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc=desc, unit="task", file=sys.stderr)

    def one(item: T) -> R:
        out = fn(item)
        if bar is not None:
            bar.update(1)
        return out

    isolation()
    try:
        with ThreadPoolExecutor(max_workers=workers or max(1, os.cpu_count() or 1)) as pool:
            return list(pool.map(one, items))
    finally:
        if bar is not None:
            bar.close()
