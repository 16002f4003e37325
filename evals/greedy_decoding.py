"""Greedy decoding of a whole batch of prompts with a KV cache preallocated once and written in place.

`model.generate` with its default cache grows every layer's keys and values by `torch.cat` at every
step, copying the whole cache each time (a sixth of a batch-76 decode step on the CPU), and keeps
computing rows that have already stopped until the last one stops. Here each layer's cache is one
buffer sized for the longest prompt plus the largest budget, filled in place; the model sees the
filled prefix only, so attention runs over exactly the keys `generate` would give it. Rows that stop
(at a stop id or at their own budget) leave the batch: the rows still running move up in the same
buffers, so later steps compute only them.

The model is called as `generate` calls it for greedy search: left padding, a 2-D attention mask
(left out when no prompt is padded), position ids counted from each row's first real token, logits
for the last position only, argmax in fp32. Each reply is therefore independent of its batch-mates,
and the replies equal `generate`'s token for token in fp32 (tests/test_generate.py compares them), with
the linear layers on oneDNN's fp32 GEMM where torch has it (harness/models/linear_kernel.py says why)
and each decode step's attention through a compiled kernel where it builds (harness/models/attention_kernel.py).

Imported only where a transformers model generates: it imports torch and transformers.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

from harness.models.attention_kernel import kernel_attention
from harness.models.linear_kernel import onednn_linears


class PrefixLayer(DynamicLayer):
    """One layer's keys and values in a buffer [rows, kv heads, capacity, head dim] allocated at the first
    update; the model is handed the filled prefix, as a view."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        rows, heads, _, head_dim = key_states.shape
        self.device = key_states.device
        self.key_buffer = key_states.new_empty((rows, heads, self.capacity, head_dim))
        self.value_buffer = value_states.new_empty((rows, value_states.shape[1], self.capacity, value_states.shape[-1]))
        self.rows, self.filled = rows, 0
        self._expose()
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.filled + key_states.shape[-2]
        self.key_buffer[: self.rows, :, self.filled : end] = key_states
        self.value_buffer[: self.rows, :, self.filled : end] = value_states
        self.filled = end
        self._expose()
        return self.keys, self.values

    def get_max_length(self) -> int:
        return self.capacity

    def keep_rows(self, kept: Sequence[int]) -> None:
        """Keep only the rows `kept` (ascending), moved up in place: a row only ever moves to a lower slot,
        so no row is overwritten before it has moved."""
        for slot, row in enumerate(kept):
            if slot != row:
                self.key_buffer[slot, :, : self.filled] = self.key_buffer[row, :, : self.filled]
                self.value_buffer[slot, :, : self.filled] = self.value_buffer[row, :, : self.filled]
        self.rows = len(kept)
        self._expose()

    def _expose(self) -> None:
        self.keys = self.key_buffer[: self.rows, :, : self.filled]
        self.values = self.value_buffer[: self.rows, :, : self.filled]


def attends_to_full_context(model: Any) -> bool:
    """Whether every layer of `model` attends to the whole context (no sliding or chunked windows), the only
    layout `PrefixLayer` stands in for."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
    windowed = getattr(config, "sliding_window", None) is not None and getattr(config, "use_sliding_window", True)
    return layer_types == {"full_attention"} and not windowed and getattr(config, "attention_chunk_size", None) is None


def _forward_settings(model: Any, cache: Cache) -> dict[str, Any]:
    """What every forward call gets besides its inputs: the cache, under the name this transformers gives it
    (`cache` from 5.x, `past_key_values` before), and logits for the last position only where the model can."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    accepted = inspect.signature(inner.forward).parameters
    settings = {"cache" if "cache" in accepted else "past_key_values": cache, "use_cache": True}
    return settings | ({"logits_to_keep": 1} if "logits_to_keep" in accepted else {})


def greedy_decode(
    model: Any, prompt_ids: Sequence[Sequence[int]], budgets: Sequence[int], *, stop_token_ids: Sequence[int], pad_token_id: int
) -> list[list[int]]:
    """Each prompt's greedy continuation: up to and including its first stop id, at most its own budget of tokens."""
    device = model.device
    rows, width = len(prompt_ids), max(len(ids) for ids in prompt_ids)
    capacity = width + max(budgets)
    input_ids = torch.full((rows, width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((rows, capacity), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        mask[row, width - len(ids) : width] = 1
    padded = bool((mask[:, :width] == 0).any())
    positions = (mask[:, :width].cumsum(-1) - 1).masked_fill(mask[:, :width] == 0, 0)
    layers = [PrefixLayer(capacity) for _ in range(model.config.get_text_config().num_hidden_layers)]
    common = _forward_settings(model, Cache(layers=layers))
    mask, positions = mask.to(device), positions.to(device)
    replies: list[list[int]] = [[] for _ in range(rows)]
    running = list(range(rows))
    budget = torch.tensor(budgets, device=device)
    stops = torch.tensor(list(stop_token_ids), device=device)
    with torch.inference_mode(), onednn_linears(model), kernel_attention(model):
        logits = model(input_ids=input_ids.to(device), attention_mask=mask[:, :width] if padded else None, position_ids=positions, **common).logits
        for step in range(max(budgets)):
            tokens = logits[:, -1].to(dtype=torch.float32).argmax(-1)
            for row, token in zip(running, tokens.tolist(), strict=True):
                replies[row].append(token)
            done = torch.isin(tokens, stops) | (budget == step + 1)
            if bool(done.all()):
                break
            if bool(done.any()):
                kept = (~done).nonzero().flatten()
                for layer in layers:
                    layer.keep_rows(kept.tolist())
                running = [running[i] for i in kept.tolist()]
                tokens, mask, positions, budget = tokens[kept], mask[kept], positions[kept], budget[kept]
            mask[:, width + step] = 1
            positions = positions[:, -1:] + 1
            logits = model(
                input_ids=tokens[:, None], attention_mask=mask[:, : width + step + 1] if padded else None, position_ids=positions, **common
            ).logits
    return replies


def greedy_generate(
    model: Any, prompt_ids: Sequence[Sequence[int]], budgets: Sequence[int], *, stop_token_ids: Sequence[int], pad_token_id: int
) -> list[list[int]]:
    """`greedy_decode`'s replies from `model.generate` and its own cache: for models with windowed attention
    layers, and the reference the in-place decoder is tested against."""
    from transformers import GenerationConfig

    width = max(len(ids) for ids in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    settings = GenerationConfig(
        max_new_tokens=max(budgets), do_sample=False, num_beams=1, eos_token_id=list(stop_token_ids), pad_token_id=pad_token_id,
        use_cache=True,
    )
    with torch.inference_mode():
        output = model.generate(input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device), generation_config=settings)
    return [_through_first_stop(row[width:].tolist()[:budget], stop_token_ids) for row, budget in zip(output, budgets, strict=True)]


def _through_first_stop(tokens: list[int], stop_token_ids: Sequence[int]) -> list[int]:
    stop = next((i for i, token in enumerate(tokens) if token in stop_token_ids), None)
    return tokens if stop is None else tokens[: stop + 1]
