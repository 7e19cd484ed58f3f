"""SlotCache: rows write at their own columns, see only their own columns, and move between slots."""

import torch

from codetune.kv_cache import SlotCache


def _prompt(length: int, fill: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    k = torch.full((1, 2, length, 4), fill)  # (1, kv_heads, L, head_dim)
    return [(k, -k)]


def test_rows_write_at_their_own_column_into_views_of_one_buffer():
    cache = SlotCache(n_layers=1, width=3, capacity=8, device="cpu")
    for slot, (length, fill) in enumerate([(2, 1.0), (4, 2.0), (1, 3.0)]):
        cache.write_prompt(slot, _prompt(length, fill))
    layer = cache.layers[0]
    assert layer.keys.shape == (3, 2, 8, 4) and layer.keys.dtype == torch.float32
    cache.step(torch.tensor([2, 4, 1]))
    new = torch.arange(3.0)[:, None, None, None].expand(3, 2, 1, 4) + 10  # (rows, heads, 1, dim)
    keys, values = cache.update(new, -new, 0)
    assert keys.shape == (3, 2, 5, 4) and keys.data_ptr() == layer.keys.data_ptr()  # a view, no copy
    assert keys[:, 0, :, 0].tolist() == [[1, 1, 10, 0, 0], [2, 2, 2, 2, 11], [3, 12, 0, 0, 0]]
    assert torch.equal(values, -keys)


def test_the_mask_shows_each_row_its_own_columns():
    cache = SlotCache(n_layers=1, width=4, capacity=8, device="cpu")
    cache.step(torch.tensor([2, 0, 3]))
    allowed = cache.mask(None)
    assert allowed.shape == (3, 1, 1, 4) and allowed.dtype == torch.bool
    assert allowed[:, 0, 0].tolist() == [[True, True, True, False], [True, False, False, False], [True] * 4]
    additive = cache.mask(torch.float32)
    assert torch.equal(additive == 0, allowed)
    assert additive.min() == torch.finfo(torch.float32).min


def test_move_copies_a_row_into_another_slot_and_narrower_steps_see_it():
    cache = SlotCache(n_layers=2, width=3, capacity=6, device="cpu")
    for slot, fill in enumerate([1.0, 2.0, 3.0]):
        cache.write_prompt(slot, _prompt(3, fill) * 2)
    cache.move(2, 0, 3)
    cache.step(torch.tensor([3]))
    keys, _ = cache.update(torch.full((1, 2, 1, 4), 9.0), torch.zeros(1, 2, 1, 4), 1)
    assert keys.shape == (1, 2, 4, 4)
    assert keys[0, 0, :, 0].tolist() == [3, 3, 3, 9]
    assert cache.layers[0].keys[0, 0, :3, 0].tolist() == [3, 3, 3]
