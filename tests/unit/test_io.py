import gzip
import json
import os

import pytest

from codetune.errors import CodetuneError
from codetune.io import (
    append_jsonl,
    atomic_dir,
    atomic_path,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    iter_jsonl,
    parse_yaml,
    read_json,
    read_jsonl,
    read_yaml,
)


def test_atomic_writes_leave_no_temp_files_and_create_parents(tmp_path):
    target = tmp_path / "a" / "b" / "x.json"
    atomic_write_json(target, {"k": [1, 2], "é": "ü"})
    assert read_json(target) == {"k": [1, 2], "é": "ü"}
    atomic_write_text(target, "replaced")
    assert target.read_text() == "replaced"
    assert os.listdir(target.parent) == ["x.json"]


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "x.jsonl"
    atomic_write_jsonl(target, [{"a": 1}])
    with pytest.raises(TypeError):
        atomic_write_jsonl(target, [{"a": object()}])
    assert read_jsonl(target) == [{"a": 1}]
    assert os.listdir(tmp_path) == ["x.jsonl"]


def test_atomic_path_and_dir_swap_in_whole(tmp_path):
    png = tmp_path / "p.png"
    with atomic_path(png) as tmp:
        assert tmp.suffix == ".png" and tmp != png
        tmp.write_bytes(b"\x89PNG")
    assert png.read_bytes() == b"\x89PNG"
    with pytest.raises(RuntimeError), atomic_path(png) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError
    assert png.read_bytes() == b"\x89PNG" and os.listdir(tmp_path) == ["p.png"]

    d = tmp_path / "adapter"
    with atomic_dir(d) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(d) as tmp:
        (tmp / "b.txt").write_text("2")
        raise RuntimeError
    assert os.listdir(d) == ["a.txt"] and sorted(os.listdir(tmp_path)) == ["adapter", "p.png"]


def test_jsonl_torn_tail_and_bad_lines(tmp_path):
    p = tmp_path / "g.jsonl"
    with p.open("w") as f:
        append_jsonl(f, [{"i": 0}, {"i": 1}])
        f.write('{"i": 2, "cut')  # a kill in the middle of an append
    assert read_jsonl(p, torn_tail=True) == [{"i": 0}, {"i": 1}]
    with pytest.raises(CodetuneError, match=r"g\.jsonl:3: not valid JSON"):
        read_jsonl(p)
    assert read_jsonl(tmp_path / "missing.jsonl", missing_ok=True) == []
    gz = tmp_path / "t.jsonl.gz"
    with gzip.open(gz, "wt") as f:
        f.write(json.dumps({"task_id": "x"}) + "\n\n")
    assert read_jsonl(gz) == [{"task_id": "x"}]


def test_read_json_names_the_file(tmp_path):
    p = tmp_path / "metrics.json"
    p.write_bytes(b"{}\n\xff\xfe")
    with pytest.raises(CodetuneError, match=r"run metrics .*metrics\.json:2:1: not UTF-8 text \(byte 0xff"):
        read_json(p, "run metrics")
    p.write_text('{"a": 1,\n "b": }')
    with pytest.raises(CodetuneError, match=r"metrics\.json:2:7: not valid JSON"):
        read_json(p, "run metrics")
    p.write_text("[1, 2]")
    with pytest.raises(CodetuneError, match=r"metrics\.json holds an array, not a JSON object"):
        read_json(p, "run metrics")
    assert read_json(p, expect=object) == [1, 2]
    with pytest.raises(CodetuneError, match="cannot read run metrics .*missing.json"):
        read_json(tmp_path / "missing.json", "run metrics")


def test_jsonl_lines_that_are_not_utf8_or_not_objects(tmp_path):
    p = tmp_path / "b.jsonl"
    p.write_bytes(b'{"i": 0}\n{"i": "\xc3(\xff"}\n')
    with pytest.raises(CodetuneError, match=r"b\.jsonl:2:8: not UTF-8 text \(byte 0xc3"):
        read_jsonl(p)
    assert read_jsonl(p, torn_tail=True) == [{"i": 0}]  # a multi-byte character cut by a kill
    p.write_text('[{"i": 0}]\n')
    with pytest.raises(CodetuneError, match=r"b\.jsonl:1: an array, not a JSON object"):
        read_jsonl(p, torn_tail=True)  # not a torn line: an error either way
    bad_gz = tmp_path / "x.jsonl.gz"
    bad_gz.write_bytes(b"\x1f\x8b\x08\x00garbage-garbage")
    with pytest.raises(CodetuneError, match=r"cannot read samples .*x\.jsonl\.gz"):
        list(iter_jsonl(bad_gz, what="samples"))


def test_yaml_errors_are_one_line_with_position(tmp_path):
    with pytest.raises(CodetuneError) as info:
        parse_yaml("a: 1\nb: [1, 2\n", "config x.yaml")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("config x.yaml:3:1: not valid YAML: expected ',' or ']'")
    with pytest.raises(CodetuneError, match=r"^f:2:3: not valid YAML: unacceptable character #x0000"):
        parse_yaml("a: 1\nb:\x00", "f")
    p = tmp_path / "c.yaml"
    p.write_bytes(b"a: 1\nb: \xff\n")
    with pytest.raises(CodetuneError, match=r"config .*c\.yaml:2:4: not UTF-8 text"):
        read_yaml(p, "config")


def test_out_of_space_is_one_error_naming_the_file_and_the_old_file_stays(tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    target = tmp_path / "m.json"
    atomic_write_json(target, {"old": 1})

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(CodetuneError, match=r"^no space left on device writing .*m\.json; free space and rerun"):
        atomic_write_json(target, {"new": 1})
    monkeypatch.undo()
    assert read_json(target) == {"old": 1} and os.listdir(tmp_path) == ["m.json"]
    with pytest.raises(CodetuneError, match="no space left on device writing .*d"), atomic_dir(tmp_path / "d"):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError, match="Permission"), atomic_dir(tmp_path / "d"):  # other errors pass as they are
        raise PermissionError(errno.EACCES, "Permission denied")
