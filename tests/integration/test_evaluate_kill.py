"""`codetune evaluate` killed mid-run (kill -9, or Ctrl-C) leaves no sandboxed process behind, even one that
forked, called setsid() and went on sleeping: the samples here do exactly that, then the harness is killed
while they run. Their processes are found on the host by a marker in their command line (their pids mean
nothing outside their PID namespace)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from codetune.evaluation import _cgroups, programs, sandbox

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(programs.python_interpreter() is None, reason="no Python for the sandbox user"),
]


def _records(n: int) -> list[dict]:
    return [
        {
            "task_id": f"Python/{i}",
            "prompt": f"def f{i}(x):\n",
            "canonical_solution": "    return x\n",
            "test": f"\n\ndef check(f):\n    assert f(1) == 1\n\ncheck(f{i})\n",
        }
        for i in range(n)
    ]


def _hostile(marker: str) -> str:
    """A completion that leaves a grandchild in a session of its own, sleeping with `marker` in its argv,
    and then sleeps itself (so the run is in progress when the harness is killed)."""
    return (
        "    import os, sys, time\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        f"            os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(300)', '{marker}'])\n"
        "        os._exit(0)\n"
        "    time.sleep(300)\n"
        "    return x\n"
    )


def _marked(marker: str) -> list[int]:
    out = []
    for e in os.scandir("/proc"):
        if not e.name.isdigit():
            continue
        try:
            with open(f"/proc/{e.name}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{e.name}/status") as f:
                zombie = "State:\tZ" in f.read()
        except OSError:
            continue
        if marker.encode() in cmd and not zombie:
            out.append(int(e.name))
    return out


def _wait_for(cond, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def _start(tmp_path, marker: str, n: int = 3) -> subprocess.Popen:
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in _records(n)))
    samples = tmp_path / "samples.jsonl"
    rows = [{"task_id": f"Python/{i}", "completion": _hostile(marker)} for i in range(n)]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli = "import sys; from codetune.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", cli, "evaluate", "--benchmark", str(bench), "--samples", str(samples)]
    argv += ["--out", str(tmp_path / "out"), "--timeout", "120", "--workers", "2", "--no-progress"]
    # A session of its own, as a shell gives a foreground job: only it receives the signal below.
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _no_leftovers(pid: int) -> None:
    """Nothing of the dead harness stays mounted on the host, and its cgroups go at the next probe."""
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    assert f"codetune-vol-{pid}-" not in mounts and f"codetune-priv-{pid}-" not in mounts
    ctl = sandbox.isolation() and sandbox._plan().cgroups
    if ctl is not None:
        for base in {ctl.memory_base, ctl.pids_base}:
            parent = os.path.dirname(base)
            _cgroups.sweep_stale(parent, ctl.version)
            assert f"codetune-{pid}" not in os.listdir(parent)


@pytest.mark.parametrize("how", ["kill -9", "ctrl-c"])
def test_no_sandboxed_process_outlives_a_killed_evaluate(tmp_path, how):
    marker = f"codetune-hostile-{uuid.uuid4().hex}"
    proc = _start(tmp_path, marker)
    try:
        # Both workers' samples have left their grandchildren behind in sessions of their own.
        assert _wait_for(lambda: len(_marked(marker)) >= 2 or proc.poll() is not None, 120)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        if how == "kill -9":
            proc.kill()
        else:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground process group
        proc.wait(timeout=120)
        assert _wait_for(lambda: not _marked(marker), 20), f"still alive: {_marked(marker)}"
        _no_leftovers(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
        for pid in _marked(marker):  # never leave them to the next test if this one failed
            os.kill(pid, signal.SIGKILL)
