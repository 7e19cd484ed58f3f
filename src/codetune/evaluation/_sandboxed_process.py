"""A long-lived program in a sandbox of its own (see `SandboxedProcess`): the syntax checkers' helpers."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Mapping, Sequence

from codetune.evaluation import _bwrap, _volumes
from codetune.evaluation._process import SandboxError, _end_run, _make_preexec, _new_group, _read_all
from codetune.evaluation.sandbox import Limits, _plan, _prepare, _remove_later, _take_uid


class SandboxedProcess:
    """A long-lived program in a sandbox of its own (the syntax checkers' helpers: a JVM, a node process),
    with the isolation of `run_sandboxed` (its own uid, cgroup, volume, namespaces), spoken to through pipes.

    `stdin`/`stdout` are text pipes as from `subprocess.Popen(text=True, bufsize=1)`; stderr is discarded;
    `pid` is the host pid of the program itself (under bubblewrap it is pid 1 of its namespace).
    It is started from the keeper thread, so it lives until `close()` or this process's end, whichever
    thread started it. `close()` kills every process of it and frees its uid, cgroup and volume.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        limits: Limits,
        files: Mapping[str, str | bytes] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        plan = _plan()
        self._stack = contextlib.ExitStack()
        try:
            keeper = _volumes.keeper()
            vol = keeper.create(limits.disk_mb, None)
            self._stack.callback(keeper.destroy, vol)
            uid = _take_uid(plan, self._stack)
            private = keeper.private_dir()
            self._stack.callback(_remove_later, private)
            self._job = _prepare(argv, plan, limits, private, vol, uid, files or {}, None, env or {})
            self._group = _new_group(plan, limits)
            if self._group is not None:
                self._stack.callback(self._group.remove)
            self.proc, self.pid = keeper.call(self._start)
        except BaseException:
            self._stack.close()
            raise
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout

    def _start(self) -> tuple[subprocess.Popen, int]:
        """Start it (in the keeper thread); returns the process and the host pid of the program itself."""
        job, plan = self._job, self._job.plan
        argv = list(job.argv)
        info = os.pipe() if plan.bwrap else None
        if info is not None:
            argv = _bwrap.program_argv(argv, volume=job.vol.ns_path, status_fd=None, info_fd=info[1])
        join = self._group.join_fds() if self._group is not None else []
        try:
            preexec = _make_preexec(
                plan,
                job.limits,
                src=job.vol.ns_path,
                uid=job.uid,
                join_fds=join,
                bwrap=bool(plan.bwrap),
            )
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                bufsize=1,
                cwd="/",
                env=job.env,
                preexec_fn=preexec,  # noqa: PLW1509 (it only makes system calls)
                start_new_session=True,
                close_fds=True,
                pass_fds=(info[1],) if info else (),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxError(f"cannot start {job.argv[0]!r} in the sandbox: {exc}") from exc
        finally:
            for fd in join + ([info[1]] if info else []):
                os.close(fd)
        if info is None:
            return proc, proc.pid
        try:
            child = json.loads(_read_all(info[0]).decode() or "{}").get("child-pid")
        except ValueError:
            child = None
        finally:
            os.close(info[0])
        return proc, child or proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Kill every process of it (not only the one started)."""
        bwrap = self._job.plan.bwrap
        _end_run(
            self._job,
            self._group,
            self.proc.pid if self.proc.poll() is None else None,
            self.proc if bwrap else None,
        )
        self.proc.kill()

    def close(self) -> None:
        """Kill what is left, wait, free its uid, cgroup and volume (safe to call twice)."""
        if self._stack is None:
            return
        self.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        stack, self._stack = self._stack, None
        stack.close()
