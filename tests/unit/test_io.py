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
    read_json,
    read_jsonl,
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
    p.write_bytes(b"\xff\xfe")
    with pytest.raises(CodetuneError, match="cannot read run metrics .*metrics.json"):
        read_json(p, "run metrics")
