"""Fork server for Python programs: kept in a pool (one request at a time each), forks a child per program.

Runs as its own script under the sandbox's Python (stdlib only, no codetune imports). It preloads the
modules benchmark programs import (so no program pays for importing them), then for each request forks a
child that sets up its program's isolation *before* it touches the untrusted source, closes every descriptor
but 0-2 (so it cannot talk to the harness or the server), and executes the program as `__main__`.

Protocol: a SOCK_SEQPACKET socket on fd `argv[1]`; one JSON request per message with the run's descriptors
attached (stdin, stdout, stderr, then the `cgroup.procs` of each of the run's cgroups, opened by the trusted
parent); one JSON reply per message.

Two modes (`req["mode"]`):

- "bwrap": the server runs under bubblewrap as uid 0 of its own user namespace (whose map the parent wrote:
  0 -> the server's host uid, and its programs' host uid to itself), with its own PID, network, IPC, UTS and cgroup
  namespaces and the read-only system view (see `_bwrap`); the volumes' root is at /runs. Each child joins
  its run's cgroups, enters a new mount and IPC namespace, binds its volume `/runs/<name>` over /tmp, detaches
  /runs (no other run is reachable), applies the rlimits and drops to the programs' uid (no capabilities
  left).
- "legacy": the server runs on the host as root (no bubblewrap here); each child gets what
  `sandbox._make_preexec` gives an executed program: namespaces by unshare(), its directory bound over /tmp
  and the other world-writable places, rlimits and its own uid.
"""

# The child must survive anything the program raises and still exit with a status: the blind excepts
# here are deliberate, and exec() of the program is the point.
# ruff: noqa: BLE001, S102, S110

# What HumanEval-style programs import; importing them here makes each child start warm.
import collections  # noqa: F401
import ctypes
import ctypes.util
import functools  # noqa: F401
import hashlib  # noqa: F401
import heapq  # noqa: F401
import itertools  # noqa: F401
import json
import math  # noqa: F401
import os
import re  # noqa: F401
import resource
import select
import signal
import socket
import string  # noqa: F401
import sys
import time
import traceback
import typing  # noqa: F401

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.unshare.argtypes = [ctypes.c_int]
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
_CLONE_NEWNS, _CLONE_NEWIPC, _MNT_DETACH = 0x00020000, 0x08000000, 2
_PR_SET_NO_NEW_PRIVS = 38


def _check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _child(req, fds, ready_fd):
    """Set up the sandbox, then run the program as `__main__` and exit as `python script` would. Never returns.

    Writes b"1" to `ready_fd` once set up (or the error text if set-up failed), before any untrusted code.
    The program is exec()'d here, not in a helper, so its stack starts as shallow as it always has.
    """
    try:
        _enter_sandbox(req, fds, ready_fd)
    except BaseException as exc:
        try:
            os.write(ready_fd, f"{type(exc).__name__}: {exc}".encode()[:500])
        finally:
            os._exit(125)
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    code = 1  # the program could not be loaded
    try:
        path, src, main = _load_main(req["script"])
        # 0 from here on: if reporting the program's own exit fails (a broken stderr or sys.excepthook),
        # the status stays 0 and that failure's traceback is printed below.
        code = 0
        try:
            exec(compile(src, path, "exec", dont_inherit=True), main.__dict__)
        except SystemExit as e:
            code = _exit_status(e)
        except BaseException:
            sys.excepthook(*sys.exc_info())
            code = 1
        code = _shut_down(code)
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    os._exit(code)


def _enter_sandbox(req, fds, ready_fd):
    """Give this process its run's isolation (see the module docstring), a descriptor table of 0-2 and
    `ready_fd` only, the request's environment and default signal handling; raises if any step fails."""
    os.setsid()
    stdio, groups = fds[:3], fds[3:]
    for fd in groups:  # first: everything this process allocates from here on counts against the run
        os.write(fd, b"0")
        os.close(fd)
    if req["mode"] == "bwrap":
        _enter_volume(req["volume"])
    else:
        _unshare_and_enter_workdir(req)
    for i, fd in enumerate(stdio):
        os.dup2(fd, i)
        os.close(fd)
    os.set_inheritable(ready_fd, False)
    keep = ready_fd
    os.closerange(3, keep)  # the protocol socket above all
    os.closerange(keep + 1, 1 << 16)
    for res, soft, hard in req["rlimits"]:
        resource.setrlimit(res, (soft, hard))
    # No exec from here on gains privileges (setuid binaries, file capabilities).
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    if req["uid"] is not None:
        os.setgroups([])
        os.setresgid(req["uid"], req["uid"], req["uid"])
        os.setresuid(req["uid"], req["uid"], req["uid"])
    if req["mode"] == "bwrap":
        os.chdir("/tmp")  # as the program: only its uid may enter the volume
    os.environ.clear()
    os.environ.update(req["env"])
    for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _enter_volume(volume):
    """bwrap mode: a mount and IPC namespace of this program's own, its volume over /tmp (and /var/tmp,
    /dev/shm), /runs gone (the
    working directory is entered once the process has the program's uid)."""
    _check(_libc.unshare(_CLONE_NEWNS | _CLONE_NEWIPC), "unshare")
    _check(_libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "make-rprivate")
    for place in (b"/tmp", b"/var/tmp", b"/dev/shm"):
        _check(_libc.mount(volume.encode(), place, None, _MS_BIND, None), "bind the volume")
    _check(_libc.umount2(b"/runs", _MNT_DETACH), "detach /runs")


def _unshare_and_enter_workdir(req):
    """legacy mode: enter the new namespaces, then the workdir; with a mount namespace the workdir is bound
    over /tmp and the other world-writable places, and /tmp becomes the working directory."""
    if req["unshare"]:
        _check(_libc.unshare(req["unshare"]), "unshare")
    os.chdir(req["workdir"])
    if req["mntns"]:
        _check(_libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "make-rprivate")
        _check(_libc.mount(req["workdir"].encode(), b"/tmp", None, _MS_BIND, None), "bind /tmp")
        for t in req["targets"]:
            _check(_libc.mount(b"/tmp", t.encode(), None, _MS_BIND, None), "bind")
        os.chdir("/tmp")


def _load_main(path):
    """Read the program and install a fresh `__main__` module and `sys.argv` for it."""
    import types

    with open(path, "rb") as f:
        src = f.read()
    main = types.ModuleType("__main__")
    main.__file__ = path
    sys.modules["__main__"] = main
    sys.argv = [path]
    return path, src, main


def _exit_status(e):
    """The exit status `python` gives for SystemExit `e` (a non-integer code is printed, then 1)."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code & 0xFF
    print(e.code, file=sys.stderr)
    return 1


def _shut_down(code):
    """What the interpreter does at exit (join threads, atexit handlers, flush stdio); returns the status,
    120 if flushing failed after a clean exit."""
    try:
        import threading

        threading._shutdown()
    except BaseException:
        pass
    try:
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        pass
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except BaseException:
            code = code or 120
    return code


def _wait(pid, timeout):
    fd = os.pidfd_open(pid)
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if p.poll(max(1, int(left * 1000))):
                return True
    finally:
        os.close(fd)


def _serve_one(sock, req, fds):
    """Fork the program's child, wait for it (up to the wall-clock limit), reply."""
    sys.stdout.flush()
    sys.stderr.flush()
    t0 = time.monotonic()
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rd)
        _child(req, fds, wr)
    os.close(wr)
    for fd in fds:
        os.close(fd)
    setup = b""
    while True:  # the child writes at most 500 bytes, then closes (or dies)
        chunk = os.read(rd, 1024)
        if not chunk:
            break
        setup += chunk
    os.close(rd)
    timed_out = not _wait(pid, req["wall_s"])
    if timed_out:
        _kill_group(pid)
    _, status = os.waitpid(pid, 0)
    _kill_group(pid)  # what is left of its process group (the harness kills the rest: cgroup or uid)
    rc = os.waitstatus_to_exitcode(status)
    reply = {
        "pid": pid,
        "returncode": rc,
        "timed_out": timed_out,
        "setup_error": None if setup == b"1" else setup.decode("utf-8", "replace"),
        "wall_s": time.monotonic() - t0,
    }
    sock.send(json.dumps(reply).encode())


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _disable_userns():
    """bwrap mode, once at start: no user namespace can be created below the server's (what bwrap's
    --disable-userns does for a program it executes); written through a proc of our own, since the /proc
    bwrap mounted has /proc/sys read-only."""
    d = "/tmp/.codetune-proc"
    os.mkdir(d, 0o700)
    _check(_libc.mount(b"proc", d.encode(), b"proc", 0, None), "mount proc")
    try:
        with open(d + "/sys/user/max_user_namespaces", "w") as f:
            f.write("0")
    finally:
        _libc.umount2(d.encode(), _MNT_DETACH)
        os.rmdir(d)


def main():
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        if sys.argv[2] == "bwrap":
            _disable_userns()
    except BaseException as exc:
        sock.send(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}).encode())
        return
    sock.send(json.dumps({"ready": True}).encode())
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 16)
        except OSError:
            return
        if not msg:
            return  # the harness closed its end
        _serve_one(sock, json.loads(msg), fds)


if __name__ == "__main__":
    main()
