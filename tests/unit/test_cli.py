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


def test_overrides_after_options_join_the_others_and_unknown_options_still_fail(capsys):
    from codetune.cli import _parse, build_parser

    args = _parse(build_parser(), ["run", "quick", "a.b=1", "--dry-run", "lora.r=8", "--no-progress", "seed=2"])
    assert args.overrides == ["a.b=1", "lora.r=8", "seed=2"] and args.dry_run and args.no_progress
    for argv in (["run", "quick", "--dry-run", "--bogus"], ["syntax", "--lang", "python", "f.jsonl", "x=1"]):
        with pytest.raises(SystemExit) as info:
            _parse(build_parser(), argv)
        assert info.value.code == 2
        assert "unrecognized arguments: " + argv[-1] in capsys.readouterr().err
