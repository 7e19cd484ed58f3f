import math

import pytest

from codetune.config import RunConfig
from codetune.training.plan import collate, encode, plan_batches, plan_steps, share_tokens, split_by_tokens


def test_encode_masks_prompt_tokens_and_appends_eos(tiny, samples):
    tok = tiny.tokenizer
    s = samples(1)[0]
    e = encode(tok, [s])[0]
    assert e.input_ids[-1] == tok.eos_token_id and e.labels[-1] == tok.eos_token_id
    labelled = [t for t, lab in zip(e.input_ids, e.labels) if lab != -100][:-1]
    assert tok.decode(labelled).strip() == s.target.strip()  # loss exactly on the target
    n_prompt = sum(lab == -100 for lab in e.labels)
    assert tok.decode(e.input_ids[:n_prompt]).startswith("def add0(a):")


def test_length_grouped_batches_pad_little_and_cover_everything():
    lengths = [5, 50, 6, 51, 7, 52, 8, 53]
    batches = plan_batches(lengths, 2, seed=0, epoch=0, mode="length_grouped")
    assert sorted(i for b in batches for i in b) == list(range(8))
    waste = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    assert waste <= 4
    assert plan_batches(lengths, 2, 0, 0, "length_grouped") == batches  # deterministic
    assert plan_batches(lengths, 3, 0, 0, "sequential") == [[0, 1, 2], [3, 4, 5], [6, 7]]


def test_collate_pads_to_batch_max_not_global_max(tiny, samples):
    enc = encode(tiny.tokenizer, samples(2))
    enc[1].input_ids += [5, 5, 5]
    enc[1].labels += [5, 5, 5]
    b = collate(enc, pad_id=0)
    width = max(len(e.input_ids) for e in enc)
    assert b["input_ids"].shape == (2, width)
    assert int(b["attention_mask"][0].sum()) == len(enc[0].input_ids)
    assert (b["labels"][0, len(enc[0].input_ids) :] == -100).all()


def test_split_by_tokens_caps_padded_size():
    lengths = [10, 100, 20, 90, 30]
    pieces = split_by_tokens([0, 1, 2, 3, 4], lengths, budget=200)
    assert sorted(i for p in pieces for i in p) == [0, 1, 2, 3, 4]
    assert all(len(p) == 1 or len(p) * max(lengths[i] for i in p) <= 200 for p in pieces)
    assert split_by_tokens([0, 1], lengths, budget=0) == [[0, 1]]
    assert split_by_tokens([1], lengths, budget=10) == [[1]]  # one item always runs, even over budget


def test_share_tokens_balances_tokens_and_covers_every_sequence():
    lengths = [100, 10, 90, 20, 50, 50, 30, 5]
    groups = share_tokens(list(range(8)), lengths, 2)
    assert sorted(i for g in groups for i in g) == list(range(8))
    loads = [sum(lengths[i] for i in g) for g in groups]
    assert loads == [180, 175]  # longest first, each to the lighter group
    assert share_tokens(list(range(8)), lengths, 2) == groups  # deterministic
    assert share_tokens([0, 3], lengths, 3) == [[0], [3]]  # fewer sequences than workers: no empty group
    assert share_tokens([4, 5, 1], lengths, 1) == [[4, 5, 1]]


@pytest.mark.parametrize(("epochs", "grad_accum"), [(1, 1), (1.5, 1), (2, 3)])
def test_plan_steps_lays_out_epochs_of_batches_and_counts_targets(tiny, samples, epochs, grad_accum):
    cfg = RunConfig.model_validate({"train": {"epochs": epochs, "batch_size": 4, "grad_accum": grad_accum}})
    plan = plan_steps(tiny.tokenizer, samples(10), cfg)
    n_batches = round(epochs * math.ceil(10 / 4))  # 3 batches an epoch, the last of 2
    assert plan.total_steps == math.ceil(n_batches / grad_accum)
    assert sum(len(s.batches) for s in plan.steps) == n_batches
    assert all(len(s.batches) <= grad_accum for s in plan.steps)
    for step in plan.steps:
        assert step.n_target == plan.targets(step.indices) > 0
        assert step.indices == [i for b in step.batches for i in b]
    first_epoch = [i for s in plan.steps for i in s.indices][:10]
    assert sorted(first_epoch) == list(range(10))  # each epoch covers every example once
    batch = plan.batch(plan.steps[0].batches[0])
    # the labelled positions (label t+1 of token t) are the plan's target count
    assert int((batch["labels"][:, 1:] != -100).sum()) == plan.targets(plan.steps[0].batches[0])
    assert plan_steps(tiny.tokenizer, samples(10), cfg).steps == plan.steps  # from the seed alone
