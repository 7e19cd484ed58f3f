"""The Ray executor's switches and the failures it names in one line (no cluster needed)."""

from __future__ import annotations

import socket
import sys

import pytest

from codetune.cli import main
from codetune.config import load_experiment


def test_executor_flags_are_the_config_keys():
    from codetune.commands.run import _executor_overrides
    from codetune.config import execution_keys, expand_grid

    class Args:
        executor, ray_address = None, "10.1.2.3:6379"

    overrides = _executor_overrides(Args())
    assert overrides == ["executor=ray", 'ray.address="10.1.2.3:6379"']
    exp = load_experiment("quick", overrides)
    assert exp.base.executor == "ray" and exp.base.ray.address == "10.1.2.3:6379"
    # How a grid executes is no part of its runs' ids, and is recorded in their results.
    assert [s.run_id for s in expand_grid(exp)] == [s.run_id for s in expand_grid(load_experiment("quick"))]
    assert {"executor", "ray.address", "ray.num_gpus", "ray.max_retries", "tracking"} <= set(execution_keys())
    assert exp.base.execution_settings()["setting_ray_address"] == "10.1.2.3:6379"
    exp = load_experiment("quick", ["ray.num_gpus=0.5", "ray.exec_num_cpus=2"])
    assert exp.base.ray.num_gpus == 0.5 and exp.base.ray.exec_num_cpus == 2


@pytest.mark.parametrize(
    "item, message",
    [
        ("executor=spark", "`base.executor`"),
        ("ray.num_gpus=-1", "`base.ray.num_gpus`"),
        ("ray.adress=x", "unknown key `ray.adress`"),
        ("tracking=wandb", "`base.tracking`"),
    ],
)
def test_bad_executor_keys_are_config_errors(item, message, capsys, tmp_path):
    assert main(["run", "quick", item, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_an_executor_axis_is_refused():
    from codetune.errors import ConfigError

    with pytest.raises(ConfigError, match="grid axis `executor` sets how a run executes"):
        load_experiment("quick", ["executor=[local, ray]"])


def test_without_ray_installed_the_error_names_the_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["run", "quick", "--executor", "ray", "eval.benchmark=none", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: executor=ray needs the package ray; install it with: pip install")
    assert not (tmp_path / "quick").exists() or not list((tmp_path / "quick").glob("*/config.yaml"))


def test_an_address_nobody_listens_on_is_one_line_at_once(capsys, tmp_path):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a loopback port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["run", "quick", "--ray-address", f"127.0.0.1:{port}", "eval.benchmark=none", "--out", str(tmp_path)]
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused")
    assert "ray start --head" in last
