"""`codetune export` end to end: a tiny Llama + adapter merged, written as GGUF f16 and q8_0, loaded back.

The GGUF files are read back with transformers' own GGUF loader (which undoes llama.cpp's Q/K row order);
their logits are compared with the merged model's, and the tokenizer with the merged directory's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from codetune.cli import main

pytestmark = pytest.mark.slow

PROMPTS = [
    "def add(a, b):\n",
    'class Stack:\n    """A list-backed stack."""\n\n    def push(self, item):',
    "total = clamp(x, 0, 3) + 12345 # héllo ✓ <|endoftext|> done",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_adapter_dirs):
    """Adapter "a" exported as a merged directory and as GGUF f16 and q8_0 (two commands)."""
    out = tmp_path_factory.mktemp("export")
    adapter = tiny_adapter_dirs["a"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CODETUNE_CACHE", str(out / "cache"))
        argv = ["export", str(adapter), "--merged", str(out / "merged"), "--gguf", str(out / "f16.gguf")]
        assert main(argv) == 0
        assert main(["export", str(adapter), "--gguf", str(out / "q8.gguf"), "--quant", "q8_0"]) == 0
    return out


def _load(path, gguf_file=None):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": gguf_file} if gguf_file else {}
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, **kw).eval()
    return model, AutoTokenizer.from_pretrained(str(path), **kw)


def _logits(model, tok) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        return [model(torch.tensor([tok(p)["input_ids"]])).logits[0].numpy() for p in PROMPTS]


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def _rounded(model, fn):
    """`model` with every 2-D weight replaced by fn(weight as numpy) (in place); returns the model."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.copy_(torch.from_numpy(np.ascontiguousarray(fn(p.detach().numpy()), dtype=np.float32)))
    return model


def test_merged_model_is_the_base_with_the_adapter(exported, tiny_model_dir, tiny_adapter_dirs, capsys):
    from peft import PeftModel

    merged, tok = _load(exported / "merged")
    base, _ = _load(tiny_model_dir)
    base_logits = _logits(base, tok)
    with_adapter = _logits(PeftModel.from_pretrained(base, str(tiny_adapter_dirs["a"])).eval(), tok)
    merged_logits = _logits(merged, tok)
    diff = _max_diff(merged_logits, with_adapter)
    assert diff < 1e-4, f"merged vs base + adapter: max abs logit difference {diff:.2e}"
    moved = _max_diff(with_adapter, base_logits)
    assert moved > 1e-2, f"the adapter moves the logits by only {moved:.2e}: the comparison would prove nothing"
    record = json.loads((exported / "merged" / "codetune_export.json").read_text())
    assert record["base"] == str(tiny_model_dir) and record["base_from"] == "adapter_config.json"
    assert not any(p.name.startswith("adapter") for p in (exported / "merged").iterdir())  # no peft left


def test_gguf_f16_logits_match_the_merged_model(exported):
    merged, tok = _load(exported / "merged")
    reference = _logits(merged, tok)
    gguf_model, _ = _load(exported, "f16.gguf")
    got = _logits(gguf_model, tok)
    # The file holds each 2-D weight rounded to f16 (norms in f32): exactly the merged model so rounded.
    rounded = _logits(_rounded(merged, lambda w: w.astype(np.float16)), tok)
    same, diff = _max_diff(got, rounded), _max_diff(got, reference)
    assert same < 1e-5, (
        f"GGUF f16 vs merged with f16-rounded weights: max abs logit difference {same:.2e} (vs merged: {diff:.2e})"
    )
    print(f"GGUF f16 vs merged: max abs logit difference {diff:.2e}; vs f16-rounded merged {same:.2e}")


def test_gguf_q8_0_weights_and_logits_are_the_merged_model_within_q8_0_rounding(exported):
    import gguf

    from codetune.exporting.gguf_export import q8_0_error_bound

    q8 = gguf.GGMLQuantizationType.Q8_0
    merged, tok = _load(exported / "merged")
    reference = _logits(merged, tok)
    merged_weights = {k: v.numpy().copy() for k, v in merged.state_dict().items()}
    gguf_model, _ = _load(exported, "q8.gguf")
    # Every 2-D weight (rows of 32 and 64 here) is the q8_0 rounding of the merged one, and so within its bound.
    n_checked = 0
    for name, w in gguf_model.state_dict().items():
        want = merged_weights[name]
        if w.ndim == 1:
            np.testing.assert_array_equal(w.numpy(), want, err_msg=f"{name} should be stored exactly (f32)")
            continue
        np.testing.assert_array_equal(w.numpy(), gguf.quants.dequantize(gguf.quants.quantize(want, q8), q8), name)
        err = np.abs(w.numpy().astype(np.float64) - want)
        worst = float((err / np.maximum(q8_0_error_bound(want), 1e-30)).max())
        assert worst <= 1.0, f"{name}: an error of {worst:.3f}x the q8_0 bound"
        n_checked += 1
    assert n_checked == 2 + 7 * 2  # embeddings, lm_head, 7 matrices in each of 2 layers
    # So its logits are the merged model's with that rounding, to float precision.
    got = _logits(gguf_model, tok)
    rounded = _logits(_rounded(merged, lambda w: gguf.quants.dequantize(gguf.quants.quantize(w, q8), q8)), tok)
    same, diff = _max_diff(got, rounded), _max_diff(got, reference)
    assert same < 1e-5, (
        f"GGUF q8_0 vs merged with q8_0-rounded weights: max abs logit difference {same:.2e} (vs merged: {diff:.2e})"
    )
    print(f"GGUF q8_0 vs merged: max abs logit difference {diff:.2e}; vs q8_0-rounded merged {same:.2e}")


def test_gguf_tokenizer_gives_the_same_ids(exported):
    from transformers import AutoTokenizer

    want = AutoTokenizer.from_pretrained(str(exported / "merged"))
    for name in ("f16.gguf", "q8.gguf"):
        got = AutoTokenizer.from_pretrained(str(exported), gguf_file=name)
        for p in PROMPTS:
            ids = want(p)["input_ids"]
            assert got(p)["input_ids"] == ids, (name, p)
            assert got.decode(ids) == want.decode(ids)
        assert got.eos_token_id == want.eos_token_id


def test_a_gguf_base_lends_its_tokenizer_and_its_run_config_names_it(exported, tmp_path, capsys):
    """A base given as a .gguf file (like the bundled model): the export copies its tokenizer metadata."""
    import gguf
    import torch
    from peft import LoraConfig, get_peft_model

    from codetune.config import ModelConfig
    from codetune.models import load_base

    source = exported / "f16.gguf"
    torch.manual_seed(3)
    base = load_base(ModelConfig(name=str(source))).model
    cfg = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    run = tmp_path / "runs" / "exp" / "run1"
    get_peft_model(base, cfg).save_pretrained(run / "adapter")
    (run / "config.yaml").write_text(f"seed: 0\nmodel:\n  name: {source}\n")
    capsys.readouterr()
    argv = ["export", str(run / "adapter"), "--merged", str(tmp_path / "m"), "--gguf", str(tmp_path / "o.gguf")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"tokenizer from the base's GGUF): {tmp_path / 'o.gguf'}" in out
    fields = [{k: f.contents() for k, f in gguf.GGUFReader(str(p)).fields.items() if k.startswith("tokenizer.")}
              for p in (source, tmp_path / "o.gguf")]  # fmt: skip
    assert fields[0] == fields[1]
    assert gguf.GGUFReader(str(tmp_path / "o.gguf")).fields["general.name"].contents() == "f16.gguf + run1"
    merged, tok = _load(tmp_path / "m")
    got, _ = _load(tmp_path, "o.gguf")
    rounded = _logits(_rounded(merged, lambda w: w.astype(np.float16)), tok)
    same = _max_diff(_logits(got, tok), rounded)
    assert same < 1e-5, f"GGUF f16 (tokenizer copied) vs f16-rounded merged: max abs logit difference {same:.2e}"


def _tiny_gpt2_adapter(tmp_path, tokenizer_dir):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from codetune.config import LoraConfig
    from codetune.models import apply_lora

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=1, n_head=4)
    cfg.bos_token_id = cfg.eos_token_id = tok.eos_token_id
    GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    adapter = apply_lora(GPT2LMHeadModel.from_pretrained(tmp_path / "gpt2"), LoraConfig(r=2))
    adapter.save_pretrained(tmp_path / "ad")
    return tmp_path / "ad"


def test_bad_exports_are_one_error_line_and_write_nothing(tmp_path, tiny_tokenizer_dir, tiny_adapter_dirs, capsys):
    gpt2_adapter = _tiny_gpt2_adapter(tmp_path, tiny_tokenizer_dir)
    a = str(tiny_adapter_dirs["a"])
    cases = [
        ([str(gpt2_adapter), "--merged", str(tmp_path / "m"), "--gguf", str(tmp_path / "x.gguf")],
         "error: GGUF export supports the architectures llama, not 'gpt2'; export --merged DIR instead"),
        ([a], "error: nothing to export; add --merged DIR, --gguf FILE, or both"),
        ([a, "--merged", str(tmp_path / "m"), "--quant", "q8_0"], "error: --quant q8_0 applies to --gguf only"),
        ([str(tmp_path / "nowhere"), "--gguf", str(tmp_path / "x.gguf")], f"error: ADAPTER {tmp_path / 'nowhere'} does not exist"),
        ([a, "--model", str(tmp_path / "gpt2"), "--gguf", str(tmp_path / "x.gguf")], "does not fit the base"),
        ([a, "--gguf", str(tmp_path)], f"error: --gguf {tmp_path} is a directory"),
    ]  # fmt: skip
    for argv, message in cases:
        capsys.readouterr()
        assert main(["export", *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1] and err[-1].startswith("error: "), (argv, err)
        assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "m").exists() and not (tmp_path / "x.gguf").exists()
    # A GPT-2 adapter still merges into a plain HF directory.
    assert main(["export", str(gpt2_adapter), "--merged", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "config.json").is_file()
