"""Loading a base with every adapter to serve on one PeftModel, and the one-line errors of a bad adapter."""

import json

import pytest

from codetune.errors import ModelLoadError
from codetune.serving import adapters as serving_adapters
from codetune.serving.adapters import check_adapters, load_for_serving


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_every_adapter_loads_over_one_copy_of_the_base(tiny_model_dir, tiny_adapter_dirs):
    from transformers import AutoModelForCausalLM

    model, tok, base_name = load_for_serving(str(tiny_model_dir), tiny_adapter_dirs)
    assert base_name == str(tiny_model_dir)
    assert set(model.peft_config) == {"a", "b"} and not model.training
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    base_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    assert base_params == sum(p.numel() for p in plain.parameters())  # the base weights once, not per adapter
    ranks = {name: cfg.r for name, cfg in model.peft_config.items()}
    assert ranks == {"a": 4, "b": 8}
    assert tok.pad_token is not None


def test_no_adapters_serves_the_plain_base(tiny_model_dir):
    model, _, base_name = load_for_serving(str(tiny_model_dir), {})
    assert not hasattr(model, "peft_config") and base_name == str(tiny_model_dir)


@pytest.fixture()
def no_model_load(monkeypatch):
    """A bad adapter must be refused before the base model loads."""

    def refuse(*a, **k):
        raise AssertionError("the base model was loaded before the adapters were checked")

    monkeypatch.setattr("codetune.models.load_base", refuse)


def test_a_missing_directory_is_named(tmp_path, no_model_load):
    with pytest.raises(ModelLoadError) as exc:
        load_for_serving("tiny", {"best": tmp_path / "nope"})
    assert "adapter 'best': directory" in _one_line(exc) and "nope" in str(exc.value)


def test_a_directory_without_adapter_config_points_at_the_adapter_inside(
    tmp_path, tiny_adapter_dirs, no_model_load
):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_adapter_dirs["a"], run / "adapter")
    with pytest.raises(ModelLoadError) as exc:
        check_adapters({"best": run}, "tiny")
    text = _one_line(exc)
    assert "has no adapter_config.json" in text and f"did you mean {run / 'adapter'}" in text


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("x", "A"), ("x", "B")], "adapter name 'x' is given twice"),
        ([("tiny", "A")], "adapter name 'tiny' is the base model's name"),
        ([("v1.2", "A")], "adapter name 'v1.2' cannot be used"),
        ([("__base__", "A")], "adapter name '__base__' cannot be used"),
    ],
)
def test_bad_names_are_refused(tiny_adapter_dirs, no_model_load, pairs, message):
    pairs = [(n, tiny_adapter_dirs["a"]) for n, _ in pairs]
    with pytest.raises(ModelLoadError, match=message.replace(".", r"\.")) as exc:
        check_adapters(pairs, "tiny")
    _one_line(exc)


def test_a_non_lora_adapter_is_refused(tmp_path, no_model_load):
    d = tmp_path / "prefix"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
    with pytest.raises(ModelLoadError, match="a PREFIX_TUNING adapter; serving batches LoRA adapters only"):
        check_adapters({"p": d}, "tiny")


def test_an_adapter_for_another_base_names_both(tiny_model_dir, tiny_adapter_dirs, tmp_path):
    """An adapter trained on a wider model: the shapes do not fit, and the error says which base it wants."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    wide = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=48,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    wide.save_pretrained(tmp_path / "wide-base")
    wide.name_or_path = str(tmp_path / "wide-base")
    cfg = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(wide, cfg).save_pretrained(tmp_path / "wide")
    for pairs in ([("w", tmp_path / "wide")], [("a", tiny_adapter_dirs["a"]), ("w", tmp_path / "wide")]):
        with pytest.raises(ModelLoadError) as exc:
            load_for_serving(str(tiny_model_dir), pairs)
        text = _one_line(exc)
        assert f"adapter 'w' ({tmp_path / 'wide'}) does not fit the base model '{tiny_model_dir}'" in text
        assert "size mismatch" in text and f"--model {tmp_path / 'wide-base'}" in text


def test_check_adapters_returns_the_pairs(tiny_adapter_dirs):
    pairs = serving_adapters.check_adapters(tiny_adapter_dirs, "tiny")
    assert pairs == [("a", tiny_adapter_dirs["a"]), ("b", tiny_adapter_dirs["b"])]
