import signal
import subprocess
import sys
from pathlib import Path

import pytest

from codetune.errors import CodetuneError
from codetune.rundir import BenchmarkDir, RunDir, check_writable_dir, finished_runs, run_lock, try_lock


def test_stage_files_and_the_finished_rule(tmp_path):
    rd = RunDir(tmp_path / "exp" / "rank-4-abc").create()
    assert not rd.is_finished() and not rd.has_splits() and not rd.has_adapter()
    rd.train_split.write_text('{"id": "a"}\n{"id": "b"}\n')
    rd.test_split.write_text('{"id": "c"}\n')
    assert rd.has_splits() and rd.count_train_items() == 2

    rd.adapter.mkdir()
    assert not rd.has_adapter()  # an adapter without its training record is not finished training
    rd.train_result.write_text("{}")
    assert rd.has_adapter()

    rd.generations_partial.write_text('{"index": 0}\n{"index": 1, "cu')
    assert rd.read_partial_generations() == [{"index": 0}]
    rd.write_generations([{"index": 0, "bleu": 1.0}])
    assert not rd.generations_partial.exists() and rd.read_generations() == [{"index": 0, "bleu": 1.0}]

    assert finished_runs(tmp_path / "exp") == []
    rd.write_metrics({"BLEU": 1.0})
    assert rd.is_finished() and rd.read_metrics() == {"BLEU": 1.0}
    assert [r.name for r in finished_runs(tmp_path / "exp")] == ["rank-4-abc"]
    assert finished_runs(tmp_path / "nowhere") == []


def test_checkpoint_is_dropped_whole(tmp_path):
    rd = RunDir(tmp_path).create()
    rd.checkpoint.mkdir()
    (rd.checkpoint / "state.pt").write_bytes(b"x")
    rd.drop_checkpoint()
    assert not rd.checkpoint.exists()
    rd.drop_checkpoint()  # nothing there: no error


def test_benchmark_dir_partial_results_go_when_the_results_are_written(tmp_path):
    b = BenchmarkDir(tmp_path / "bench")
    b.path.mkdir()
    b.results_partial.write_text('{"index": 1}\n{"index": 0, "sta')  # torn by a kill
    assert b.read_partial_results() == [{"index": 1}]
    b.write_results([{"index": 0}, {"index": 1}], {"n_samples": 2})
    assert not b.results_partial.exists() and b.is_executed() and len(b.read_results()) == 2


def test_writable_check_probes_with_a_real_write_and_creates_nothing(tmp_path):
    check_writable_dir(tmp_path / "new" / "deeper", "--out", "hint")  # a writable parent will do
    assert list(tmp_path.iterdir()) == []  # nothing made, not even the probe
    a_file = tmp_path / "f"
    a_file.write_text("x")
    for path, says in (
        (a_file, "--out {p} is a file; hint"),
        (a_file / "sub", "--out {p} cannot be made: " + str(a_file) + " is a file; hint"),
    ):
        with pytest.raises(CodetuneError) as exc:
            check_writable_dir(path, "--out", "hint")
        assert str(exc.value) == says.format(p=path)
    # os.access tells root that /proc is writable; only a real write says it is not.
    with pytest.raises(CodetuneError, match=r"--out /proc/x/y: cannot create a file in /proc \("):
        check_writable_dir(Path("/proc/x/y"), "--out", "hint")


def test_a_lock_is_held_once_across_processes_and_dies_with_its_holder(tmp_path):
    path = run_lock(tmp_path / "exp", "rank-4-abc")
    assert path == tmp_path / "exp" / ".locks" / "rank-4-abc.lock"
    with try_lock(path) as mine:
        assert mine
        code = "import sys; from codetune.rundir import try_lock\nwith try_lock(sys.argv[1]) as m: print(m)"
        other = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
        assert other.stdout.strip() == "False"
    holder = subprocess.Popen(
        [sys.executable, "-c", code.replace("print(m)", "print(m, flush=True); sys.stdin.read()"), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "True"
    with try_lock(path) as mine:
        assert not mine
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with try_lock(path) as mine:
        assert mine  # the kernel released the dead holder's flock: nothing to clean up by hand
