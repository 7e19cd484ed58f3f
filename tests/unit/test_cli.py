import pytest

from codetune.cli import _command_modules, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in ("run", "syntax", "evaluate", "report"):
        assert name in out


@pytest.mark.parametrize("name", [m.NAME for m in _command_modules()])
def test_each_command_has_working_help(name, capsys):
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: codetune " + name)


def test_no_command_prints_usage_and_fails(capsys):
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().out


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys; from codetune.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
