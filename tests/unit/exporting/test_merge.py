"""Which base an adapter is merged into, and which directories export refuses, without loading a model."""

from __future__ import annotations

import json

import pytest

from codetune.exporting import ExportError
from codetune.exporting.merge import EXPORT_RECORD, check_adapter_dir, check_merged_out, find_base


def _adapter(root, base="/somewhere/base-model"):
    adapter = root / "adapter"
    adapter.mkdir(parents=True)
    cfg = {"peft_type": "LORA"} if base is None else {"peft_type": "LORA", "base_model_name_or_path": base}
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    return adapter


def test_base_is_model_flag_then_run_config_then_adapter_config(tmp_path):
    adapter = _adapter(tmp_path / "run")
    assert find_base(adapter) == ("/somewhere/base-model", "adapter_config.json")
    # The run's config.yaml beside the adapter names the model as the run was given it.
    (tmp_path / "run" / "config.yaml").write_text("seed: 0\nmodel:\n  name: smollm2-135m\n  revision: null\n")
    assert find_base(adapter) == ("smollm2-135m", str((tmp_path / "run" / "config.yaml").resolve()))
    (tmp_path / "run" / "config.yaml").write_text("model: gpt2\n")  # the shorthand
    assert find_base(adapter)[0] == "gpt2"
    assert find_base(adapter, "my/base") == ("my/base", "--model")


def test_config_without_a_model_falls_back_to_adapter_config(tmp_path):
    adapter = _adapter(tmp_path / "run")
    (tmp_path / "run" / "config.yaml").write_text("seed: 0\n")
    assert find_base(adapter)[1] == "adapter_config.json"


def test_no_base_anywhere_is_one_error_naming_the_flag(tmp_path):
    adapter = _adapter(tmp_path / "run", base=None)
    with pytest.raises(ExportError) as err:
        find_base(adapter)
    assert "cannot tell which model" in str(err.value) and "--model" in str(err.value)


def test_adapter_dir_errors_say_what_to_pass(tmp_path):
    with pytest.raises(ExportError, match="does not exist; pass a PEFT adapter directory"):
        check_adapter_dir(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="has no adapter_config.json"):
        check_adapter_dir(tmp_path / "empty")
    _adapter(tmp_path / "run")
    with pytest.raises(ExportError, match="that is a run directory; pass its adapter"):
        check_adapter_dir(tmp_path / "run")
    assert check_adapter_dir(tmp_path / "run" / "adapter") == tmp_path / "run" / "adapter"


def test_merged_out_must_be_new_empty_or_an_earlier_export(tmp_path):
    check_merged_out(tmp_path / "new")  # nothing made by the check
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    check_merged_out(tmp_path / "empty")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="holds other files"):
        check_merged_out(tmp_path / "mine")
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / EXPORT_RECORD).write_text("{}")
    (tmp_path / "earlier" / "model.safetensors").write_text("")
    check_merged_out(tmp_path / "earlier")
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportError, match="is a file"):
        check_merged_out(tmp_path / "file")
