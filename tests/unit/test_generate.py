import pytest
import torch

from codetune.config import ModelConfig
from codetune.generate import bf16_decoding


@pytest.fixture()
def tiny(tiny_model_dir):
    from codetune.models import load_base

    return load_base(ModelConfig(name=str(tiny_model_dir)))


def test_bf16_decoding_keeps_logits_and_stores_the_cache_in_bf16(tiny):
    model = tiny.model.eval()
    head = model.get_output_embeddings()
    ids = torch.tensor([[5, 9, 14, 3, 22, 7]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = model(input_ids=ids, use_cache=True)
        with bf16_decoding(model) as changed:
            assert changed and model.get_output_embeddings() is not head
            fast = model(input_ids=ids, use_cache=True)
    assert model.get_output_embeddings() is head  # restored
    assert plain.past_key_values.layers[0].keys.dtype == torch.float32  # rotary promoted the keys
    assert fast.past_key_values.layers[0].keys.dtype == torch.bfloat16
    assert torch.allclose(fast.logits.float(), plain.logits.float(), atol=0.05)
    assert (fast.logits.argmax(-1) == plain.logits.argmax(-1)).float().mean() > 0.8
    with bf16_decoding(model, enabled=False) as changed:
        assert not changed
