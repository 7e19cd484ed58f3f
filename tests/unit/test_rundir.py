from codetune.rundir import RunDir, finished_runs


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
