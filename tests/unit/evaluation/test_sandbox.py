"""The sandbox against hostile programs: each ends as a result (never a crash of the harness), the machine
and the run are left unharmed, and the result says what the program tried.

The bombs are bounded by the limits they run under (a few dozen processes, 256 MiB, seconds).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import tempfile
import textwrap
import time
import uuid

import pytest

from codetune.evaluation import _process, _volumes, programs, sandbox
from codetune.evaluation.sandbox import Limits, run_sandboxed

PY = programs.python_interpreter()
ISO = sandbox.isolation()
OWN_UID = "per run" in ISO.user or "own uid" in ISO.user
pytestmark = pytest.mark.skipif(PY is None, reason="no Python the sandbox user can execute")
SMALL = Limits(
    wall_s=5,
    cpu_s=3,
    memory_mb=256,
    address_space_mb=512,
    processes=24,
    file_size_mb=4,
    open_files=64,
    output_bytes=4096,
)


def _run(code: str, limits: Limits = SMALL, fork_server: bool = False, **kw):
    return run_sandboxed(
        [PY, "-I", "-S", "-B", "prog.py"],
        files={"prog.py": textwrap.dedent(code)},
        limits=limits,
        fork_server=fork_server,
        **kw,
    )


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" not in f.read()
    except OSError:
        return False


def _marked(marker: str) -> list[int]:
    """Live host processes with `marker` in their command line (sandboxed pids mean nothing out here)."""
    out = []
    for e in os.scandir("/proc"):
        if e.name.isdigit():
            try:
                with open(f"/proc/{e.name}/cmdline", "rb") as f:
                    if marker.encode() in f.read() and _alive(int(e.name)):
                        out.append(int(e.name))
            except OSError:
                pass
    return out


def _none_marked(marker: str) -> bool:
    for _ in range(50):  # a killed process is gone within moments; never a timing assertion
        if not _marked(marker):
            return True
        time.sleep(0.1)
    return False


# A sandboxed process that sleeps with `marker` in its command line.
def _sleeper(marker: str) -> str:
    return f"[sys.executable, '-c', 'import time; time.sleep(300)', '{marker}']"


@pytest.fixture(params=[False, True], ids=["exec", "forkserver"])
def fork_server(request):
    return request.param


def test_runs_in_fresh_dir_with_scrubbed_env_and_records_isolation(fork_server, monkeypatch):
    monkeypatch.setenv("CODETUNE_SECRET_TOKEN", "hunter2")
    r = _run(
        """
        import os, sys
        print(os.getuid(), sorted(os.listdir('.')), 'CODETUNE_SECRET_TOKEN' in os.environ, os.environ['HOME'])
        print(sys.stdin.read())
    """,
        stdin=b"hello",
        fork_server=fork_server,
    )
    assert r.returncode == 0 and not r.timed_out, r.stderr
    uid, rest = r.stdout.split(" ", 1)
    assert "['prog.py'] False" in rest and "hello" in r.stdout
    if OWN_UID:
        assert int(uid) != 0 and int(uid) != os.getuid()
        assert r.isolation.user == f"uid {uid} (per run)"
    d = r.isolation.as_dict()
    assert set(d) >= {"user", "network", "filesystem", "rlimits", "process_group"}


@pytest.mark.parametrize(
    ("code", "status", "stdout", "stderr"),
    [
        ("pass", 0, "", ""),
        ("import sys; sys.exit()", 0, "", ""),
        ("import sys; sys.exit(3)", 3, "", ""),
        ("import sys; sys.exit(300)", 300 & 0xFF, "", ""),
        ("import sys; sys.exit('bad input')", 1, "", "bad input"),
        ("raise ValueError('boom')", 1, "", "ValueError: boom"),
        ("import atexit; atexit.register(print, 'at exit')", 0, "at exit", ""),
        (
            "import threading, time\n"
            "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()",
            0,
            "thread done",
            "",
        ),
    ],
    ids=["falls-off-end", "exit-none", "exit-3", "exit-300", "exit-str", "uncaught", "atexit", "thread"],
)
def test_exit_status_and_shutdown_match_python(fork_server, code, status, stdout, stderr):
    r = _run(code + "\n", fork_server=fork_server)
    assert (r.returncode, r.timed_out) == (status, False), r.stderr
    assert stdout in r.stdout and stderr in r.stderr
    if not stderr:
        assert r.stderr == ""


def test_output_is_capped_and_counted():
    r = _run("import sys\nsys.stdout.write('x' * 1_000_000)\nsys.stderr.write('e' * 300_000)\n")
    assert r.returncode == 0
    assert len(r.stdout) == 4096 and r.stdout_bytes == 1_000_000
    assert len(r.stderr) == 4096 and r.stderr_bytes == 300_000


def test_infinite_loop_is_stopped_by_the_cpu_limit(fork_server):
    t0 = time.monotonic()
    r = _run("while True:\n    pass\n", Limits(wall_s=10, cpu_s=1), fork_server=fork_server)
    assert r.signal in (24, 9)  # SIGXCPU, then SIGKILL at the hard limit
    assert time.monotonic() - t0 < 8


def test_long_sleep_times_out_and_every_process_of_the_run_dies(fork_server):
    marker = f"codetune-test-{uuid.uuid4().hex}"
    r = _run(
        f"""
        import subprocess, sys, time
        subprocess.Popen({_sleeper(marker)})
        print('started', flush=True)
        time.sleep(300)
    """,
        Limits(wall_s=1.5, cpu_s=5),
        fork_server=fork_server,
    )
    assert r.timed_out and "started" in r.stdout
    assert _none_marked(marker)


@pytest.mark.skipif(not OWN_UID, reason="needs a uid of its own per run (run as root)")
def test_children_that_leave_the_process_group_are_killed_too(fork_server):
    marker = f"codetune-test-{uuid.uuid4().hex}"
    r = _run(
        f"""
        import os, sys
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, {_sleeper(marker)})
            os._exit(0)
        print('forked', flush=True)
    """,
        fork_server=fork_server,
    )
    assert r.returncode == 0 and "forked" in r.stdout, r.stderr
    assert _none_marked(marker)


@pytest.mark.skipif("nproc" not in ISO.rlimits, reason="no per-run process limit without root or user namespaces")
def test_fork_bomb_is_bounded_and_cleaned_up(fork_server):
    r = _run(
        """
        import os, sys
        n = 0
        try:
            while True:
                if os.fork() == 0:
                    import time; time.sleep(30); os._exit(0)
                n += 1
        except OSError as e:
            print('forked', n, 'then', type(e).__name__, flush=True)
            sys.exit(3)
    """,
        fork_server=fork_server,
    )
    assert r.returncode == 3, (r.stdout, r.stderr)
    n = int(r.stdout.split()[1])
    assert n < SMALL.processes
    if OWN_UID:
        uid = int(r.isolation.user.split()[1])
        assert _process._live_pids_of(uid) == []


def test_memory_bomb_gets_memory_error(fork_server):
    r = _run(
        """
        blocks = []
        try:
            while True:
                blocks.append(bytearray(32 * 1024 * 1024))
        except MemoryError:
            print('MemoryError after', len(blocks) * 32, 'MiB', flush=True)
            raise
    """,
        fork_server=fork_server,
    )
    assert r.returncode == 1 and "MemoryError" in r.stderr
    assert int(r.stdout.split()[2]) <= SMALL.memory_mb


def test_writes_outside_the_temp_dir_do_not_land_on_the_host(tmp_path, fork_server):
    os.chmod(tmp_path, 0o755)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    name = f"codetune-escape-{uuid.uuid4().hex}"
    r = _run(
        f"""
        import os
        for p in ['/tmp/{name}', '/var/tmp/{name}', '/dev/shm/{name}', '{tmp_path}/{name}',
                  '{victim}', '/etc/{name}']:
            try:
                with open(p, 'w') as f:
                    f.write('pwned')
                print('wrote', p)
            except OSError as e:
                print('denied', p, type(e).__name__)
        for p in ['{victim}', '/etc/hostname']:
            try:
                os.remove(p)
                print('deleted', p)
            except OSError as e:
                print('denied', p, type(e).__name__)
    """,
        fork_server=fork_server,
    )
    assert r.returncode == 0, r.stderr
    for d in ("/tmp", "/var/tmp", "/dev/shm", str(tmp_path), "/etc"):
        assert not os.path.exists(os.path.join(d, name))
    assert victim.read_text() == "keep me"
    # hidden by the private /tmp (FileNotFoundError) or refused to the run's uid (PermissionError)
    assert f"wrote {victim}" not in r.stdout and f"deleted {victim}" not in r.stdout
    if OWN_UID:  # refused to the run's uid, or a read-only file system (bubblewrap)
        assert re.search(f"denied /etc/{name} (PermissionError|OSError)", r.stdout), r.stdout
        assert re.search("denied /etc/hostname (PermissionError|OSError|FileNotFoundError)", r.stdout)


@pytest.mark.skipif(ISO.network != "netns", reason="no network namespace on this machine")
def test_sockets_reach_nothing(fork_server):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.setblocking(False)
    port = srv.getsockname()[1]
    try:
        r = _run(
            f"""
            import socket
            for addr in [('127.0.0.1', {port}), ('1.1.1.1', 80)]:
                try:
                    socket.create_connection(addr, timeout=2)
                    print('connected', addr)
                except OSError as e:
                    print('refused', addr, type(e).__name__)
        """,
            fork_server=fork_server,
        )
        assert "connected" not in r.stdout and r.stdout.count("refused") == 2, r.stdout + r.stderr
        with pytest.raises(BlockingIOError):
            srv.accept()
    finally:
        srv.close()


@pytest.mark.skipif("caller" in ISO.user, reason="runs as the caller: it could signal the harness")
def test_killing_the_harness_and_everyone_fails(fork_server):
    me = os.getpid()
    r = _run(
        f"""
        import os, signal
        for target in [{me}, os.getppid(), 1, -1]:
            try:
                os.kill(target, signal.SIGKILL)
                print('sent', target)
            except OSError as e:
                print('denied', target, type(e).__name__)
    """,
        fork_server=fork_server,
    )
    # this test process is still here (not visible, or not the run's to signal); the next run works
    assert f"denied {me} " in r.stdout, r.stdout + r.stderr
    assert _run("print('still fine')", fork_server=fork_server).stdout.strip() == "still fine"


def test_missing_executable_is_a_sandbox_error():
    with pytest.raises(sandbox.SandboxError):
        run_sandboxed(["/nonexistent/binary"], limits=SMALL)


def test_temp_dirs_and_volumes_are_removed(monkeypatch):
    # A parent of our own: other processes' runs come and go in /tmp while this test runs.
    parent = tempfile.mkdtemp(prefix="codetune-test-")
    os.chmod(parent, 0o711)  # as /tmp is to the run's uid: traversable
    monkeypatch.setattr(tempfile, "tempdir", parent)
    keeper = _volumes.keeper()
    places = [keeper.view + keeper.root, keeper.view + keeper.private_root] if keeper.volumes else []
    before = [set(os.listdir(p)) for p in places]
    try:
        _run("print(1)")
        _run("print(1)", fork_server=True)
        with sandbox.shared_workdir() as w:
            run_sandboxed([PY, "-I", "-S", "-c", "open('f', 'w').write('x')"], limits=SMALL, workdir=w)
        sandbox.flush_removals()
        assert os.listdir(parent) == []
        for p, was in zip(places, before):  # volumes and private dirs: none of ours is left
            assert set(os.listdir(p)) <= was
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_isolation_record_follows_the_limits_used():
    r = _run("print(1)", Limits(address_space_mb=None))
    assert "as" not in r.isolation.rlimits and "data" in r.isolation.rlimits
    assert "as" in _run("print(1)").isolation.rlimits


_THREAD_IN_FORKED_CHILD = False


def _start_a_thread_in_the_child() -> None:
    if _THREAD_IN_FORKED_CHILD:  # as a native library's fork handler may do (seen once torch's stack is loaded)
        import threading

        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()


os.register_at_fork(after_in_child=_start_a_thread_in_the_child)


def test_a_fork_handler_that_starts_a_thread_in_the_child_does_not_break_runs(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "_THREAD_IN_FORKED_CHILD", True)
    r = _run("print('ran')")
    assert r.returncode == 0 and r.stdout.strip() == "ran", r.stderr
