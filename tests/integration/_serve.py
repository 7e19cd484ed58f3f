"""Helpers for the `codetune serve` tests: the real command in a subprocess on a free loopback port (it
binds port 0 and prints its URL when ready), and small stdlib HTTP calls. Loaded by file path (the tests
directory is not a package)."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LAUNCH = "import sys; from codetune.cli import main; sys.exit(main(sys.argv[1:]))"
READY_WITHIN_S = 300  # a cold torch import on a loaded 2-core machine


class Server:
    """`codetune serve ARGS --port 0` until `stop()`; `url` once it printed its ready line."""

    def __init__(self, args: list[str], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = workdir / "serve.stderr"
        env = {**os.environ, "CODETUNE_CACHE": str(workdir / "cache"), "PYTHONUNBUFFERED": "1"}
        env.pop("CODETUNE_API_KEY", None)
        self.args = ["serve", *args, "--port", "0"]
        self._stderr = open(self.stderr_path, "w")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *self.args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait_ready()
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + READY_WITHIN_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            found = re.search(r"at (http://\S+) ", line)
            if found:
                return found.group(1)
        self.stop()
        raise AssertionError(f"codetune {' '.join(self.args)} did not get ready; stderr:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return self.proc.returncode

    # --- plain HTTP, so the tests see exactly what a client gets ---------------------------------------

    def connection(self, timeout: float = 120) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """(status, parsed JSON body) of one request; `body` a dict (sent as JSON) or raw bytes."""
        conn = self.connection()
        try:
            data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return self.request("POST", path, body, headers)

    def health(self) -> dict[str, Any]:
        status, body = self.request("GET", "/health")
        assert status == 200, body
        return body

    def wait_health(self, ok: Any, what: str, within_s: float = 120) -> dict[str, Any]:
        """Poll /health until ok(body); fail naming `what` after `within_s` seconds."""
        deadline = time.monotonic() + within_s
        body = self.health()
        while not ok(body):
            if time.monotonic() > deadline:
                raise AssertionError(f"/health never showed {what}: {body}")
            time.sleep(0.05)
            body = self.health()
        return body

    def open_stream(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        """A streamed request left open: (connection, response) with the status and headers read."""
        conn = self.connection()
        conn.request(
            "POST",
            path,
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        return conn, conn.getresponse()


def read_event(resp: Any) -> str:
    """The next `data: ...` payload of a server-sent event stream."""
    while True:
        line = resp.readline()
        if not line:
            raise AssertionError("the stream ended")
        line = line.decode().rstrip("\r\n")
        if line.startswith("data: "):
            return line[len("data: ") :]


def sse_payloads(raw: str) -> list[str]:
    """Every `data: ...` payload in a whole server-sent event stream."""
    return [line[len("data: ") :] for line in raw.splitlines() if line.startswith("data: ")]
