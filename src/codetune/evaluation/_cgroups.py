"""A cgroup per sandboxed program: one memory cap and one process cap for all of its processes together, and
a kill that reaches every one of them, however they left their process group or session.

Uses cgroup v1 (the `memory` and `pids` controllers, each on its own hierarchy) where both are mounted, else
v2 (one hierarchy; both controllers must be enabled for our subtree). Groups go under this process's own cgroup
in each hierarchy, as /proc/self/cgroup names it: `<own>/codetune-<pid>/run-<n>`. Groups left behind by a
harness that was killed (kill -9) are swept, their processes killed first, by the next one that probes.

A program joins its groups by writing "0" to `cgroup.procs` files the trusted parent opened: the kernel checks
the opener's credentials (root), not the writer's, so a process that already dropped its privileges (or sits
in a user namespace) can still be placed, and a descriptor is all it needs.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import time
from dataclasses import dataclass

_STALE = re.compile(r"^codetune-(\d+)$")


@dataclass(frozen=True)
class Controller:
    """Where this process's program groups go."""

    version: str  # "v1" or "v2"
    memory_base: str  # codetune-<pid> directory in the memory hierarchy (v2: the one hierarchy)
    pids_base: str  # ... in the pids hierarchy (v2: the same directory)

    def describe(self) -> str:
        return f"cgroup {self.version} (memory + pids)"


class Group:
    """One program's cgroup(s): created with its caps, joined through `join_fds()`, killed, removed."""

    _ids = itertools.count(1)

    def __init__(self, ctl: Controller, memory_mb: int, pids: int) -> None:
        self.ctl = ctl
        name = f"run-{next(self._ids)}"
        self.memory_dir = os.path.join(ctl.memory_base, name)
        self.pids_dir = os.path.join(ctl.pids_base, name)
        self.dirs = [self.memory_dir] if ctl.version == "v2" else [self.memory_dir, self.pids_dir]
        made = []
        try:
            for d in self.dirs:
                os.mkdir(d)
                made.append(d)
            cap = str(memory_mb * 1024 * 1024)
            if ctl.version == "v1":
                _write(self.memory_dir, "memory.limit_in_bytes", cap)
                # With swap accounting, memory + swap gets the same cap (else the cap would spill into swap).
                _write_if_present(self.memory_dir, "memory.memsw.limit_in_bytes", cap)
            else:
                _write(self.memory_dir, "memory.max", cap)
                _write_if_present(self.memory_dir, "memory.swap.max", "0")
            _write(self.pids_dir, "pids.max", str(pids))
        except OSError:
            for d in reversed(made):
                _rmdir(d)
            raise

    def join_fds(self) -> list[int]:
        """Descriptors of each group's `cgroup.procs`, opened here (as root): a process that writes b"0" to
        each joins the group(s). The caller closes them."""
        fds = []
        try:
            for d in self.dirs:
                fds.append(os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def pids(self) -> set[int]:
        """Processes in the group(s) now (host pids)."""
        out: set[int] = set()
        for d in self.dirs:
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    out.update(int(x) for x in f.read().split())
            except OSError:
                pass
        return out

    def oom_kills(self) -> int:
        """How many of the group's processes the kernel killed for the memory cap."""
        name = "memory.oom_control" if self.ctl.version == "v1" else "memory.events"
        try:
            with open(os.path.join(self.memory_dir, name)) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def kill(self, timeout_s: float = 10.0, spare: int | None = None) -> bool:
        """SIGKILL every process in the group (but `spare`) and wait until none is left; False if some
        outlived `timeout_s` (a process stuck in the kernel). New processes are refused first, so a fork bomb
        cannot outrun it."""
        _write_if_present(self.pids_dir, "pids.max", "0")
        if self.ctl.version == "v2" and spare is None:
            _write_if_present(self.memory_dir, "cgroup.kill", "1")
        deadline = time.monotonic() + timeout_s
        while True:
            pids = self.pids() - {spare}
            if not pids:
                return True
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)

    def remove(self) -> None:
        """Remove the group(s); one that still has processes is left for the next sweep."""
        for d in self.dirs:
            _rmdir(d)


def _write(d: str, name: str, value: str) -> None:
    with open(os.path.join(d, name), "w") as f:
        f.write(value)


def _write_if_present(d: str, name: str, value: str) -> None:
    try:
        _write(d, name, value)
    except OSError:
        pass


def _rmdir(d: str) -> None:
    try:
        os.rmdir(d)
    except OSError:
        pass


def _mounts() -> tuple[dict[str, tuple[str, str]], tuple[str, str] | None]:
    """v1 controller -> (mount point, mount root), and the v2 (mount point, root), from /proc/self/mountinfo."""
    v1: dict[str, tuple[str, str]] = {}
    v2 = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(fields) < 5 or len(rest) < 3:
                continue
            root, point, fstype, opts = fields[3], fields[4], rest[0], rest[2]
            if fstype == "cgroup":
                for c in opts.split(","):
                    if c in ("memory", "pids"):
                        v1.setdefault(c, (point, root))
            elif fstype == "cgroup2" and v2 is None:
                v2 = (point, root)
    return v1, v2


def _own_paths() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                for c in parts[1].split(",") if parts[1] else [""]:
                    out[c] = parts[2]
    return out


def _dir_of(mount: tuple[str, str], path: str) -> str | None:
    point, root = mount
    if root == "/":
        return os.path.join(point, path.lstrip("/"))
    if path == root or path.startswith(root.rstrip("/") + "/"):
        return os.path.join(point, path[len(root) :].lstrip("/"))
    return None  # our cgroup is outside what this mount shows


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def sweep_stale(parent: str, version: str) -> int:
    """Kill the processes of, and remove, the groups of codetune processes that no longer exist under
    `parent`; returns how many processes were killed."""
    killed = 0
    try:
        names = os.listdir(parent)
    except OSError:
        return 0
    for name in names:
        m = _STALE.match(name)
        if not m or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        base = os.path.join(parent, name)
        ctl = Controller(version, base, base)
        for run in os.listdir(base) if os.path.isdir(base) else []:
            d = os.path.join(base, run)
            if os.path.isdir(d):
                g = Group.__new__(Group)
                g.ctl, g.memory_dir, g.pids_dir, g.dirs = ctl, d, d, [d]
                killed += len(g.pids())
                g.kill()
                g.remove()
        _rmdir(base)
    return killed


def kill_all(ctl: Controller) -> int:
    """SIGKILL every process in this process's program groups (the runs in flight: what Ctrl-C of the harness
    ends at once); returns how many there were. The groups stay for their runs to remove."""
    killed = 0
    try:
        names = os.listdir(ctl.memory_base)
    except OSError:
        return 0
    for name in names:
        d = os.path.join(ctl.memory_base, name)
        if name.startswith("run-") and os.path.isdir(d):
            g = Group.__new__(Group)
            g.ctl, g.memory_dir, g.pids_dir = ctl, d, os.path.join(ctl.pids_base, name)
            g.dirs = [d] if ctl.version == "v2" else [d, g.pids_dir]
            killed += len(g.pids())
            g.kill(timeout_s=1.0)
    return killed


def probe() -> Controller | str:
    """The controller to use, or why none can be (a sentence)."""
    if os.environ.get("CODETUNE_SANDBOX_CGROUPS", "1") == "0":
        return "disabled by CODETUNE_SANDBOX_CGROUPS=0"
    if os.geteuid() != 0:
        return "needs root to create cgroups"
    try:
        v1, v2 = _mounts()
        own = _own_paths()
    except OSError as exc:
        return f"cannot read /proc/self/cgroup or mountinfo ({exc})"
    if "memory" in v1 and "pids" in v1:
        dirs = {c: _dir_of(v1[c], own.get(c, "/")) for c in ("memory", "pids")}
        if None in dirs.values():
            return "our cgroup is outside the mounted v1 hierarchies"
        return _make(
            Controller("v1", *(os.path.join(dirs[c], f"codetune-{os.getpid()}") for c in ("memory", "pids")))
        )
    if v2 is not None:
        own_dir = _dir_of(v2, own.get("", "/"))
        if own_dir is None:
            return "our cgroup is outside the mounted v2 hierarchy"
        return _make_v2(own_dir)
    return "no cgroup hierarchy with the memory and pids controllers is mounted"


def _make(ctl: Controller) -> Controller | str:
    for base in {ctl.memory_base, ctl.pids_base}:
        sweep_stale(os.path.dirname(base), ctl.version)
        try:
            os.makedirs(base, exist_ok=True)
        except OSError as exc:
            return f"cannot create {base} ({exc.strerror})"
    try:  # a trial group: its limits must be writable
        g = Group(ctl, 64, 8)
        g.remove()
    except OSError as exc:
        return f"cannot set limits under {ctl.memory_base} ({exc.strerror})"
    return ctl


def _make_v2(own_dir: str) -> Controller | str:
    try:
        with open(os.path.join(own_dir, "cgroup.controllers")) as f:
            have = set(f.read().split())
    except OSError as exc:
        return f"cannot read {own_dir}/cgroup.controllers ({exc.strerror})"
    if not {"memory", "pids"} <= have:
        return f"cgroup v2 at {own_dir} does not offer the memory and pids controllers"
    base = os.path.join(own_dir, f"codetune-{os.getpid()}")
    try:
        # Our own group must hand both controllers down (fails with EBUSY where it holds processes itself:
        # the v2 rule that only leaves hold processes).
        _write(own_dir, "cgroup.subtree_control", "+memory +pids")
        sweep_stale(own_dir, "v2")
        os.makedirs(base, exist_ok=True)
        _write(base, "cgroup.subtree_control", "+memory +pids")
    except OSError as exc:
        return f"cannot enable memory and pids for groups under {own_dir} ({exc.strerror})"
    return _make(Controller("v2", base, base))


def remove_base(ctl: Controller) -> None:
    """Remove this process's codetune-<pid> directories (at exit; groups still in use stay)."""
    for base in {ctl.memory_base, ctl.pids_base}:
        _rmdir(base)
