"""A preallocated KV cache of `width` row slots that rows enter and leave while the others keep decoding.

Each slot holds one sequence: its prompt's keys and values at columns [0, L), then one column per
generated token. Rows write at their own column (`pos`, their length so far) and attend over the
columns [0, span) with a per-row mask, span = longest active row + 1, so rows of any lengths share a
step and no tensor grows: the step writes in place instead of `torch.cat` (the decoding loop is in
`codetune.decoding`). Active rows are always slots [0, n): a step's keys are the view `keys[:n, :, :span]`,
no copy; a row that leaves takes the last row's slot (`move`).

Driven through transformers' own attention code: the model calls `update(key, value, layer_idx)` in
each layer, as with its own caches, and gets the cache's keys and values back.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class SlotLayer(CacheLayerMixin):
    """One layer's keys and values, (width, kv_heads, capacity, head_dim), allocated on the first write."""

    is_sliding = False

    def __init__(self, width: int, capacity: int) -> None:
        super().__init__()
        self.width, self.capacity = width, capacity

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        # Heads, head size and dtype as the model produced them (bf16 under autocast with bf16 rotary tables).
        self.device = key_states.device
        self.keys = key_states.new_zeros((self.width, key_states.shape[1], self.capacity, key_states.shape[-1]))
        self.values = value_states.new_zeros(
            (self.width, value_states.shape[1], self.capacity, value_states.shape[-1])
        )
        self.is_initialized = True

    def write_prompt(self, slot: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Put one prefilled sequence, (1, kv_heads, L, head_dim), at columns [0, L) of `slot`."""
        if not self.is_initialized:
            self.lazy_initialization(keys, values)
        n = keys.shape[2]
        self.keys[slot, :, :n] = keys[0]
        self.values[slot, :, :n] = values[0]

    def reserve(self, capacity: int) -> None:
        """Make room for `capacity` columns per slot, keeping what the slots hold (never shrinks)."""
        if capacity <= self.capacity:
            return
        if self.is_initialized:
            keys, values = self.keys, self.values
            self.keys = keys.new_zeros((*keys.shape[:2], capacity, keys.shape[-1]))
            self.values = values.new_zeros((*values.shape[:2], capacity, values.shape[-1]))
            self.keys[:, :, : self.capacity] = keys
            self.values[:, :, : self.capacity] = values
        self.capacity = capacity

    def move(self, src: int, dst: int, length: int) -> None:
        self.keys[dst, :, :length] = self.keys[src, :, :length]
        self.values[dst, :, :length] = self.values[src, :, :length]

    def write_step(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        rows: torch.Tensor,
        pos: torch.Tensor,
        span: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write one new token per row, (n, kv_heads, 1, head_dim), at column pos[r]; return the keys and
        values the step attends over, (n, kv_heads, span, head_dim) views."""
        n = key_states.shape[0]
        self.keys[rows, :, pos] = key_states[:, :, 0]
        self.values[rows, :, pos] = value_states[:, :, 0]
        return self.keys[:n, :, :span], self.values[:n, :, :span]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("SlotCache.update passes each step's rows and positions to write_step")

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.capacity, 0

    def get_seq_length(self) -> int:
        return 0  # rows differ in length: the loop passes position_ids and a 4D mask, so nothing asks

    def get_max_length(self) -> int:
        return self.capacity


class SlotCache(Cache):
    """The per-layer slots, and the current step's rows: set `step(n, pos)` before each decoding forward."""

    def __init__(self, n_layers: int, width: int, capacity: int, device: str) -> None:
        super().__init__(layers=[SlotLayer(width, capacity) for _ in range(n_layers)])
        self.width, self.capacity = width, capacity
        self._all_rows = torch.arange(width, device=device)
        self._rows = self._all_rows[:0]
        self._pos = self._all_rows[:0]
        self.span = 0

    def write_prompt(self, slot: int, prefilled: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Copy a prefilled prompt's per-layer (keys, values) into `slot`."""
        for layer, (k, v) in zip(self.layers, prefilled):
            layer.write_prompt(slot, k, v)

    def reserve(self, capacity: int) -> None:
        """Grow every slot to `capacity` columns, keeping its contents: a server sizes the cache to the rows it
        holds rather than to the longest context it allows (a step reads only `span` columns anyway)."""
        for layer in self.layers:
            layer.reserve(capacity)
        self.capacity = max(self.capacity, capacity)

    def move(self, src: int, dst: int, length: int) -> None:
        """Move a row's first `length` columns from slot `src` to slot `dst` (all layers)."""
        for layer in self.layers:
            layer.move(src, dst, length)

    def step(self, pos: torch.Tensor) -> None:
        """The next forward decodes rows [0, len(pos)), row r writing at column pos[r]."""
        self._rows = self._all_rows[: pos.shape[0]]
        self._pos = pos
        self.span = int(pos.max()) + 1

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layers[layer_idx].write_step(key_states, value_states, self._rows, self._pos, self.span)

    def mask(self, dtype: torch.dtype | None) -> torch.Tensor:
        """The step's attention mask, (n, 1, 1, span): row r sees columns <= pos[r]. Boolean (True = attend)
        for SDPA; additive in `dtype` for eager attention."""
        allowed = torch.arange(self.span, device=self._pos.device)[None, :] <= self._pos[:, None]
        allowed = allowed[:, None, None, :]
        if dtype is None:
            return allowed
        zero = torch.zeros((), dtype=dtype, device=allowed.device)
        return torch.where(allowed, zero, torch.finfo(dtype).min)
