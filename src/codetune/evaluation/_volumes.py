"""The run's writable directory as a size-capped tmpfs that nobody outside the sandbox machinery can see,
and a long-lived thread that starts long-lived sandboxed processes.

One daemon thread ("codetune-sandbox") enters a private mount namespace of its own (unshare(CLONE_NEWNS) of
one thread: the other threads keep the host's) and mounts there:

    /tmp/codetune-vol-<pid>-XXXX          a small tmpfs, a shared mount (new mounts under it propagate to the
                                          fork servers' sandboxes, which bind it at /runs)
        s-<n>/                            one tmpfs per volume, `size=` the run's disk cap, mode 0700, owned
                                          by the uid that runs in it

    /tmp/codetune-priv-<pid>-XXXX         a tmpfs for each run's stdin/stdout/stderr files, root only

On the host these are empty directories: the tmpfs mounts exist only in that namespace, so when this
process dies (even by kill -9) the namespace and everything in it is freed by the kernel; nothing is left
mounted. Trusted code reads and writes a volume through `/proc/<pid>/task/<tid>/root/...` (the thread's
view).

The same thread starts every sandboxed process (`Keeper.call(subprocess.Popen, ...)`): its children start in
its mount namespace (a setns() in the child instead fails where a library's fork handler has started a
thread in the child, as happens once torch's stack is loaded), and bubblewrap's `--die-with-parent` ties a
sandbox to the *thread* that started it, which must live as long as the process (a worker thread may end
first, taking a fork server with it).
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import functools
import itertools
import os
import queue
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass

_CLONE_NEWNS = 0x00020000
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_MS_SLAVE = 1 << 19
_MS_SHARED = 1 << 20
_MNT_DETACH = 2
_STALE = re.compile(r"^codetune-(?:vol|priv)-(\d+)-")


@functools.lru_cache(maxsize=1)
def libc():
    lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    lib.unshare.argtypes = [ctypes.c_int]
    lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return lib


def check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


@dataclass(frozen=True)
class Volume:
    """A run's writable directory."""

    name: str  # "s-<n>": its name under the volumes' root (a fork server sees it as /runs/<name>)
    path: str  # where trusted code reads and writes it
    ns_path: str  # its path where programs are started (what bubblewrap binds)
    size_mb: int | None  # the tmpfs size; None: a plain directory (no private namespace here)


class Keeper:
    """The daemon thread described in the module docstring. `volumes` is False where the private mount
    namespace could not be made (not root): volumes are then plain directories without a size cap."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._ids = itertools.count(1)
        started: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, args=(started,), name="codetune-sandbox", daemon=True)
        self._thread.start()
        self.volumes, self.why_not, self.root, self.view, self.private_root = started.get()

    # -- the thread ------------------------------------------------------------------------------------
    def _serve(self, started: queue.SimpleQueue) -> None:
        try:
            started.put(self._enter())
        except BaseException as exc:  # never leave the constructor waiting
            started.put((False, f"{type(exc).__name__}: {exc}", "", "", ""))
        while True:
            fn, args, reply = self._jobs.get()
            try:
                reply.put((True, fn(*args)))
            except BaseException as exc:
                reply.put((False, exc))

    def _enter(self):
        _sweep_stale_dirs()
        if os.environ.get("CODETUNE_SANDBOX_VOLUMES", "1") == "0":
            return False, "disabled by CODETUNE_SANDBOX_VOLUMES=0", "", "", ""
        if os.geteuid() != 0:
            return False, "needs root for a private mount namespace", "", "", ""
        root = tempfile.mkdtemp(prefix=f"codetune-vol-{os.getpid()}-")
        lib = libc()
        try:
            check(lib.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        except OSError as exc:
            os.rmdir(root)
            return False, str(exc), "", "", ""
        # Host mounts still arrive here; nothing made here goes back to the host.
        check(lib.mount(None, b"/", None, _MS_REC | _MS_SLAVE, None), "make / rslave")
        check(lib.mount(b"tmpfs", root.encode(), b"tmpfs", 0, b"size=1m,mode=0711"), "mount the volumes' root")
        check(lib.mount(None, root.encode(), None, _MS_SHARED, None), "make the volumes' root shared")
        # Each run's stdin/stdout/stderr files: root only, and gone with this process too.
        private = tempfile.mkdtemp(prefix=f"codetune-priv-{os.getpid()}-")
        check(lib.mount(b"tmpfs", private.encode(), b"tmpfs", 0, b"mode=0700"), "mount the runs' private root")
        # At exit, the (on the host, empty) mount points go too; the kernel detaches what is mounted on them.
        atexit.register(_remove_dirs, root, private)
        view = f"/proc/{os.getpid()}/task/{threading.get_native_id()}/root"
        return True, "", root, view, private

    def call(self, fn: Callable, *args, **kwargs):
        """Run `fn(*args, **kwargs)` in the thread (its mount namespace; its lifetime for children); return
        or raise."""
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        if kwargs:
            return self.call(functools.partial(fn, *args, **kwargs))
        reply: queue.SimpleQueue = queue.SimpleQueue()
        self._jobs.put((fn, args, reply))
        ok, value = reply.get()
        if not ok:
            raise value
        return value

    # -- volumes ---------------------------------------------------------------------------------------
    def create(self, size_mb: int, uid: int | None, *, tmpfs: bool = True) -> Volume:
        """A new empty volume owned by `uid` (root when None), capped at `size_mb` where volumes are tmpfs
        (`tmpfs=False`: a plain directory even so)."""
        name = f"s-{next(self._ids)}"
        if not (self.volumes and tmpfs):
            parent = tempfile.mkdtemp(prefix="codetune-work-")
            os.chmod(parent, 0o711)  # traversable, not listable
            path = os.path.join(parent, "work")
            os.mkdir(path, 0o700)
            if uid is not None:
                os.chown(path, uid, uid)
            return Volume(name, path, path, None)
        ns_path = os.path.join(self.root, name)
        self.call(_mount_volume, ns_path, size_mb, uid)
        return Volume(name, self.view + ns_path, ns_path, size_mb)

    def private_dir(self) -> str:
        """A new root-only directory for a run's stdin/stdout/stderr files (the program gets descriptors, never
        the path); trusted code removes it with shutil.rmtree."""
        if not self.volumes:
            return tempfile.mkdtemp(prefix="codetune-run-")
        return tempfile.mkdtemp(prefix="run-", dir=self.view + self.private_root)

    def destroy(self, vol: Volume) -> None:
        if vol.size_mb is None:
            shutil.rmtree(os.path.dirname(vol.path), ignore_errors=True)
        else:
            self.call(_unmount_volume, vol.ns_path)


def _mount_volume(path: str, size_mb: int, uid: int | None) -> None:
    os.mkdir(path, 0o700)
    owner = 0 if uid is None else uid
    # nr_inodes bounds the files too (each costs kernel memory the disk cap would not count).
    opts = f"size={size_mb}m,nr_inodes=65536,mode=0700,uid={owner},gid={owner}".encode()
    try:
        check(libc().mount(b"tmpfs", path.encode(), b"tmpfs", 0, opts), "mount a volume")
    except OSError:
        os.rmdir(path)
        raise


def _unmount_volume(path: str) -> None:
    libc().umount2(path.encode(), _MNT_DETACH)
    try:
        os.rmdir(path)
    except OSError:
        pass


def _remove_dirs(*paths: str) -> None:
    for p in paths:
        try:
            os.rmdir(p)
        except OSError:
            pass


def _sweep_stale_dirs() -> None:
    """Remove the (empty, on the host) volume roots of codetune processes that are gone."""
    tmp = tempfile.gettempdir()
    try:
        names = os.listdir(tmp)
    except OSError:
        return
    for name in names:
        m = _STALE.match(name)
        if m and int(m.group(1)) != os.getpid() and not os.path.exists(f"/proc/{m.group(1)}"):
            try:
                os.rmdir(os.path.join(tmp, name))
            except OSError:
                pass


@functools.lru_cache(maxsize=1)
def keeper() -> Keeper:
    return Keeper()
