"""A long-lived helper process spoken to one line at a time, restarted when it crashes or hangs.

The helper runs in a sandbox of its own (`SandboxedProcess`: bubblewrap, its own uid, a cgroup with
`limits.total_memory_mb`, a capped tmpfs as its working directory), since the snippets it compiles are
untrusted: it sees nothing of the host but the system's runtimes and the `files` given to it.
"""

from __future__ import annotations

import queue
import subprocess
import threading
from collections.abc import Mapping, Sequence

from codetune.evaluation._sandboxed_process import SandboxedProcess
from codetune.evaluation.sandbox import Limits, SandboxError


class HelperFailure(Exception):
    """The helper died, hung past the timeout, or could not start; it has been stopped."""


class HelperProcess:
    """Runs `argv`, waits for its first line (the ready banner), then answers requests line by line.

    A reader thread feeds stdout lines into a queue, so every wait has a timeout: a snippet that hangs
    the helper costs `timeout_s`, then the helper is killed and started again for the next snippet.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        limits: Limits,
        files: Mapping[str, str | bytes] | None = None,
        start_timeout_s: float = 60.0,
        env: dict | None = None,
    ) -> None:
        """`argv` runs in the sandbox's working directory, where `files` (relative path -> content) are
        written first; `limits` bound the helper as a whole (its CPU limit is per process: make it long)."""
        self.argv = list(argv)
        self.timeout_s = timeout_s
        self.limits = limits
        self.files = dict(files or {})
        self.start_timeout_s = start_timeout_s
        self.env = env
        self.proc: SandboxedProcess | None = None
        self.banner = ""
        self.restarts = 0
        self._lines: queue.Queue = queue.Queue()

    def start(self) -> str:
        """Start the helper and return its banner line."""
        self.stop()
        self._lines = queue.Queue()
        try:
            self.proc = SandboxedProcess(self.argv, limits=self.limits, files=self.files, env=self.env)
        except SandboxError as exc:
            raise HelperFailure(str(exc)) from exc
        threading.Thread(target=_pump, args=(self.proc.stdout, self._lines), daemon=True).start()
        self.banner = self._read(self.start_timeout_s)
        return self.banner

    def request(self, line: str) -> str:
        """Send one request line, return the reply line; raise HelperFailure (after stopping) on failure."""
        if self.proc is None or self.proc.poll() is not None:
            self.restarts += 1
            self.start()
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self.stop()
            raise HelperFailure(f"helper exited ({exc})") from exc
        return self._read(self.timeout_s)

    def _read(self, timeout: float) -> str:
        try:
            out = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.stop(kill=True)
            raise HelperFailure(
                f"helper gave no answer within {timeout:g} s; it was killed and will restart"
            ) from None
        if out is None:
            code = self.proc.wait() if self.proc else None
            self.stop()
            raise HelperFailure(f"helper exited with status {code}; it will restart")
        return out.rstrip("\n")

    def stop(self, *, kill: bool = False) -> None:
        """End the helper: EOF on stdin for a clean exit, or kill it at once (a hung helper)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if not kill and proc.poll() is None:
                proc.stdin.close()  # a clean end: the helper sees EOF and exits
                proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        proc.close()  # kills whatever is left (all of its processes), frees its sandbox

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


def _pump(stream, lines: queue.Queue) -> None:
    try:
        for line in stream:
            lines.put(line)
    except (OSError, ValueError):
        pass
    lines.put(None)  # EOF: the helper is gone
