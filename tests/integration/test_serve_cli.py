"""`codetune serve`'s refusals: each one `error:` line naming the flag and the fix, before anything loads
(bad --adapter, taken port, bad numbers), or after the model fails to load in the background."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from codetune.cli import main


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize(
    ("adapter", "words"),
    [
        ("best", ["NAME=DIR", "--adapter best=runs/quick/<run>/adapter"]),
        ("=somewhere", ["NAME=DIR"]),
        ("my.adapter={dir}", ["'my.adapter'", "letters, digits"]),
        ("best={missing}", ["does not exist", "missing"]),
        ("best={empty}", ["no adapter_config.json"]),
        ("smollm2-135m={dir}", ["base model's name"]),
    ],
)
def test_a_bad_adapter_is_one_error_line(tmp_path, capsys, adapter, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    spec = adapter.format(dir=tmp_path / "ok", missing=tmp_path / "missing", empty=tmp_path / "empty")
    assert main(["serve", "--adapter", spec, "--port", "0"]) == 2
    line = _error_line(capsys)
    assert all(w in line for w in words), line


def test_an_adapter_name_given_twice_is_one_error_line(tmp_path, capsys):
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    assert main(["serve", "--adapter", f"a={tmp_path}", "--adapter", f"a={tmp_path}", "--port", "0"]) == 2
    assert "given twice" in _error_line(capsys)


def test_a_default_model_that_is_not_served_is_one_error_line(tmp_path, capsys):
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    assert main(["serve", "--adapter", f"a={tmp_path}", "--default-model", "b", "--port", "0"]) == 2
    line = _error_line(capsys)
    assert "--default-model b is not served" in line and "smollm2-135m, a" in line


def test_a_port_in_use_is_one_error_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    line = _error_line(capsys)
    assert f"port {port} on 127.0.0.1 is in use" in line and "--port" in line


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--max-batch", "0"], ["--max-batch 0 must be at least 1"]),
        (["--max-queue", "-1"], ["--max-queue -1"]),
        (["--timeout", "0"], ["--timeout 0"]),
        (["--port", "70000"], ["--port 70000"]),
        (["--context", "1"], ["--context 1"]),
        (["--host", "192.0.2.1"], ["cannot listen on 192.0.2.1", "--host"]),  # TEST-NET: no interface has it
    ],
)
def test_bad_numbers_and_hosts_are_one_error_line(capsys, flags, words):
    port = [] if "--port" in flags else ["--port", "0"]  # never a real server, should a check fail to refuse
    assert main(["serve", *flags, *port]) == 2
    line = _error_line(capsys)
    assert all(w in line for w in words), line


@pytest.mark.slow
def test_a_model_that_fails_to_load_ends_the_server_with_one_error_line(tmp_path):
    launch = "import sys; from codetune.cli import main; sys.exit(main(sys.argv[1:]))"
    (tmp_path / "not-a-model").mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", launch, "serve", "--model", str(tmp_path / "not-a-model"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CODETUNE_CACHE": str(tmp_path / "cache")},
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("loading ") and "/health" in lines[0]
    assert lines[-1].startswith("error: ") and "config.json" in lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
