"""The client side of the Python fork servers (`_forkserver.py`): a pool of warm servers, one program at a
time each, started from the keeper thread (`_volumes`) so that they live as long as this process and see the
volumes. Under bubblewrap each server is one sandbox (see `_bwrap.server_argv`); without it, a root process
on the host that gives each child today's isolation."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import subprocess
import threading

from codetune.evaluation import _bwrap, _volumes
from codetune.evaluation._process import (
    _CLONE_NEWNET,
    _CLONE_NEWNS,
    _CLONE_NEWUSER,
    _SAFE_PATH,
    _WORLD_WRITABLE,
    SandboxError,
    _end_run,
    _Job,
    _new_group,
    _Plan,
    _read_all,
    _rlimits,
    _uid_pool,
)


class _ForkServer:
    """Client of `_forkserver.py` (one program at a time): see that module. Under bubblewrap it runs as
    uid 0 of a user namespace mapping 0 -> `self.uids[0]` and `self.uids[1]` (its programs' uid) to itself."""

    def __init__(self, python: str, plan: _Plan) -> None:
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
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
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
            try:  # it sees the socket's end and exits; bubblewrap then takes its namespace down by itself
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()  # a server busy with a program, or stuck: --die-with-parent does the rest
                proc.wait()
        if self.uids:
            for u in self.uids:
                _uid_pool().give(u)
            self.uids = None


_servers_idle: dict[tuple[str, str], list[_ForkServer]] = {}  # (python, mode) -> idle servers
_servers_all: list[_ForkServer] = []
_servers_lock = threading.Lock()


@contextlib.contextmanager
def _fork_server(python: str, plan: _Plan):
    """Borrow an idle fork server for `python` (one request at a time each), starting one if none is."""
    with _servers_lock:
        key = (python, "bwrap" if plan.bwrap else "legacy")
        idle = _servers_idle.setdefault(key, [])
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
                _servers_idle.setdefault(key, []).append(srv)


def _forget_fork_servers() -> None:
    """After a fork, in the child: the servers are the parent's; drop our copies of their sockets (and the
    lock, which a thread of the parent may have held)."""
    global _servers_lock
    _servers_lock = threading.Lock()
    for srv in _servers_all:
        with contextlib.suppress(OSError):
            srv.sock.close()
    _servers_all.clear()
    _servers_idle.clear()


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
