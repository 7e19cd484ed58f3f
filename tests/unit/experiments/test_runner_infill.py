"""The runner's infilling stage: the vocabulary of the cached base model put back after a run that added
the FIM sentinels, the model stage / execution stage split (what the Ray executor runs as two tasks), and
the checks that stop a bad infilling config before anything trains."""

from __future__ import annotations

import copy
import json
import pickle
from types import SimpleNamespace

import pytest

from codetune.config import load_experiment
from codetune.errors import BenchmarkError, ConfigError
from codetune.experiments.runner import Runner, _VocabSnapshot


def _tiny(tiny_model_dir, *, tied: bool = False, extra_rows: int = 0):
    """The tiny Llama and its tokenizer; `tied`: one matrix for input and output embeddings (as SmolLM2);
    `extra_rows`: a matrix with rows beyond the tokenizer's tokens (as padded vocabularies have)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    if tied or extra_rows:
        cfg = copy.deepcopy(base.config)
        cfg.tie_word_embeddings = tied
        cfg.vocab_size = len(tok) + extra_rows
        torch.manual_seed(0)
        base = LlamaForCausalLM(cfg)
    return SimpleNamespace(model=base.eval(), tokenizer=tok)


def _state(loaded):
    import torch

    base = loaded.model
    ids = torch.tensor([[1, 5, 9, 20, 3]])
    with torch.no_grad():
        logits = base(input_ids=ids).logits
    inp, out = base.get_input_embeddings(), base.get_output_embeddings()
    return {
        "n_tokens": len(loaded.tokenizer),
        "vocab": base.config.vocab_size,
        "shapes": (tuple(inp.weight.shape), tuple(out.weight.shape), inp.num_embeddings, out.out_features),
        "inp": inp.weight.detach().clone(),
        "out": out.weight.detach().clone(),
        "logits": logits,
        "tied": inp.weight is out.weight,
        "modules": (inp, out),
    }


def _assert_same(before, after):
    import torch

    for key in ("n_tokens", "vocab", "shapes", "tied"):
        assert after[key] == before[key], key
    assert after["modules"][0] is before["modules"][0] and after["modules"][1] is before["modules"][1]
    assert torch.equal(after["inp"], before["inp"]) and torch.equal(after["out"], before["out"])
    assert torch.equal(after["logits"], before["logits"])


@pytest.mark.parametrize("tied,extra_rows", [(False, 0), (True, 0), (False, 8)])
def test_added_sentinels_are_taken_back_whatever_the_embedding_layout(tiny_model_dir, tied, extra_rows):
    from codetune.fim import add_fim_tokens, fim_tokens

    loaded = _tiny(tiny_model_dir, tied=tied, extra_rows=extra_rows)
    before = _state(loaded)
    assert before["tied"] is tied
    snap = _VocabSnapshot.take(loaded)
    assert snap.native is False
    add_fim_tokens(loaded.model, loaded.tokenizer)
    assert len(loaded.tokenizer) == before["n_tokens"] + 3  # the sentinels went in
    snap.restore(loaded)
    assert fim_tokens(loaded.tokenizer) is None
    _assert_same(before, _state(loaded))


def test_a_fim_lora_run_unloaded_and_restored_leaves_the_base_as_loaded(tiny_model_dir):
    """apply_lora(fim=True) adds the sentinels and trains their rows; after unload() and restore the base
    model gives the logits it gave before, with the embedding modules and tokenizer it had."""
    import torch

    from codetune.config import LoraConfig
    from codetune.models import apply_lora

    loaded = _tiny(tiny_model_dir, tied=True)
    before = _state(loaded)
    snap = _VocabSnapshot.take(loaded)
    model = apply_lora(loaded.model, LoraConfig(r=2), tokenizer=loaded.tokenizer, fim=True)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # LoRA weights and the sentinel rows: as if trained
                p.add_(0.5)
    loaded.model = model.unload()
    snap.restore(loaded)
    _assert_same(before, _state(loaded))


def test_nothing_is_touched_when_the_run_added_no_token(tiny_model_dir):
    loaded = _tiny(tiny_model_dir)
    tok = loaded.tokenizer
    snap = _VocabSnapshot.take(loaded)
    snap.restore(loaded)
    assert loaded.tokenizer is tok  # the copy is used only when tokens were added


EXP = """
name: split
label: "FIM rate {{data.fim_rate}}"
baseline: false
base:
  model: {{name: "{model}"}}
  data: {{language: python, source: "{source}", train_size: 8, test_size: 3, max_tokens: 200, fim_rate: 0.5}}
  train: {{epochs: 1, lr: 1.0e-3, batch_size: 4}}
  generate: {{max_new_tokens: 8, batch_size: 4}}
  eval: {{benchmark: "{benchmark}", benchmark_max_new_tokens: 8, infilling: single_line, infilling_limit: 2}}
"""


def _exp(tmp_path, tiny_model_dir, source_tree, benchmark, *overrides):
    f = tmp_path / "split.yaml"
    f.write_text(EXP.format(model=tiny_model_dir, source=source_tree, benchmark=benchmark))
    return load_experiment(str(f), list(overrides))


@pytest.mark.slow
def test_execution_stage_runs_in_another_runner_without_a_model(
    tmp_path, tiny_model_dir, source_tree, tiny_benchmark
):
    """As the Ray executor splits a cell: the model stage in one process, the execution stage (benchmark
    and infilling programs in the sandbox) in another that loads no model, joined by the run directory and
    the hand-off (which Ray pickles)."""
    exp = _exp(tmp_path, tiny_model_dir, source_tree, tiny_benchmark)
    out = tmp_path / "runs"
    first = Runner(exp, out, progress=False, log=lambda _: None)
    first._resolve_benchmarks()
    (spec,) = first.specs
    handoff = pickle.loads(pickle.dumps(first.model_stage(spec)))
    assert handoff["infilling"]["fim_tokens"] == "trained"
    rd = first.run_dir(spec)
    assert rd.infilling.has_samples() and not rd.infilling.is_executed() and not rd.is_finished()

    second = Runner(exp, out, progress=False, log=lambda _: None)
    second._resolve_benchmarks()
    metrics = second.execute_stage(spec, handoff)
    assert second._cache.models == {}  # no model was loaded for execution
    assert rd.is_finished() and rd.infilling.is_executed()
    assert metrics["infill_kind"] == "single_line" and metrics["infill_n"] == 2 and metrics["infill_tasks"] == 2
    assert metrics["fim_tokens"] == "trained" and metrics["infill_note"] is None
    verdicts = rd.infilling.read_results()
    assert metrics["infill_pass@1"] == pytest.approx(50.0 * sum(v["status"] == "passed" for v in verdicts))
    assert json.loads(rd.metrics.read_text())["infill_pass@1"] == metrics["infill_pass@1"]


def test_infilling_with_several_samples_stops_before_anything_trains(
    tmp_path, tiny_model_dir, source_tree, tiny_benchmark
):
    exp = _exp(tmp_path, tiny_model_dir, source_tree, tiny_benchmark, "generate.n_samples=2")
    out = tmp_path / "runs"
    with pytest.raises(ConfigError, match="generate.n_samples"):
        Runner(exp, out, progress=False, log=lambda _: None).run_all()
    assert not any(p.is_dir() for p in (out / "split").iterdir())  # no run directory was made


def test_a_benchmark_without_canonical_solutions_stops_before_anything_trains(
    tmp_path, tiny_model_dir, source_tree, tiny_benchmark
):
    rows = [json.loads(line) for line in tiny_benchmark.read_text().splitlines()]
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(json.dumps({**r, "canonical_solution": ""}) + "\n" for r in rows))
    exp = _exp(tmp_path, tiny_model_dir, source_tree, bare)
    out = tmp_path / "runs"
    with pytest.raises(BenchmarkError, match="canonical solution"):
        Runner(exp, out, progress=False, log=lambda _: None).run_all()
    assert not any(p.is_dir() for p in (out / "split").iterdir())


def test_the_fim_preset_asks_its_question_on_131_infilling_items():
    """`codetune run fim`: the base model and FIM rates 0, 0.5, 0.9, each with left-to-right HumanEval (all
    164 tasks) and single-line infilling of the first 24 tasks (131 items, what its time estimate assumes)."""
    from codetune.config import expand_grid
    from codetune.evaluation.benchmarks import load_tasks
    from codetune.experiments.infilling import infilling_items

    exp = load_experiment("fim")
    specs = expand_grid(exp)
    assert [s.label for s in specs] == ["Base model", "FIM rate 0.0", "FIM rate 0.5", "FIM rate 0.9"]
    assert [s.config.data.fim_rate for s in specs] == [0.0, 0.0, 0.5, 0.9]
    assert len({s.run_id for s in specs}) == 4
    for s in specs:
        assert (s.config.eval.infilling, s.config.eval.infilling_limit) == ("single_line", 24)
        assert s.config.eval.benchmark == "auto" and s.config.eval.benchmark_limit is None
    items = infilling_items(load_tasks("humaneval", "python"), "single_line", 24)
    assert len(items) == 131 and len({it.base_id for it in items}) == 24
