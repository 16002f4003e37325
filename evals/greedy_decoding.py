"""Greedy decoding of a whole batch of prompts with a KV cache preallocated once and written in place.

`model.generate` with its default cache grows every layer's keys and values by `torch.cat` at every
step, copying the whole cache each time (a sixth of a batch-76 decode step on the CPU), and keeps
computing rows that have already stopped until the last one stops. Here each layer's cache is one
buffer sized for the longest prompt plus the largest budget, filled in place; the model sees the
filled prefix only, so attention runs over exactly the keys `generate` would give it. Rows that stop
(at a stop id or at their own budget) leave the batch: the rows still running move up in the same
buffers, so later steps compute only them. The prompts are prefilled in chunks of similar length,
each padded only to its own longest prompt (`PREFILL_CHUNK_TOKENS`): a batch of 76 safety prompts
spent an eighth of its prefill on padding, and the chunked prefill took 6.9 s where one batch took 8.1.

The model is called as `generate` calls it for greedy search: left padding, a 2-D attention mask
(left out when no prompt is padded), position ids counted from each row's first real token, logits
for the last position only, argmax in fp32. Each reply is therefore independent of its batch-mates,
and the replies equal `generate`'s token for token in fp32 (tests/test_generate.py compares them), with
the linear layers on a compiled panel GEMM or oneDNN's (harness/models/linear_kernel.py says why), and
each decode step's attention, the RMSNorms, rotary embeddings and the argmax through kernels compiled for
the CPU where they build (harness/models/attention_kernel.py, layer_kernels.py, cpu_kernels.py).

Imported only where a transformers model generates: it imports torch and transformers.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

from harness.models.attention_kernel import kernel_attention
from harness.models.cpu_kernels import greedy_tokens
from harness.models.layer_kernels import kernel_norms_and_rotary
from harness.models.linear_kernel import fast_linears


PREFILL_CHUNK_TOKENS = 1024
"""Most positions (padding included) one prefill forward pass takes: on the safety prompts 1024 gave the
shortest prefill of 256-2048 (5 chunks; 512 and 2048 within 3% of it, 256 13% slower)."""


class PrefixLayer(DynamicLayer):
    """One layer's keys and values in a buffer [rows, kv heads, capacity, head dim] allocated at the first
    update or placement; the model is handed the filled prefix, as a view."""

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

    def place(self, rows: torch.Tensor, total_rows: int, keys: torch.Tensor, values: torch.Tensor, *, end: int) -> None:
        """Write a prefill chunk's keys and values [len(rows), heads, positions, head dim] into rows `rows` of a
        buffer for `total_rows`, ending at position `end`. The buffer starts zeroed: positions left of a chunk's
        keys are padding, masked in attention, and must not hold NaNs a zero weight would still spread."""
        if not self.is_initialized:
            _, heads, _, head_dim = keys.shape
            self.device = keys.device
            self.key_buffer = keys.new_zeros((total_rows, heads, self.capacity, head_dim))
            self.value_buffer = values.new_zeros((total_rows, values.shape[1], self.capacity, values.shape[-1]))
            self.is_initialized = True
        self.key_buffer[rows, :, end - keys.shape[-2] : end] = keys
        self.value_buffer[rows, :, end - values.shape[-2] : end] = values
        self.rows, self.filled = total_rows, end
        self._expose()

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
    mask = torch.zeros((rows, capacity), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        mask[row, width - len(ids) : width] = 1
    padded = bool((mask[:, :width] == 0).any())
    positions = torch.tensor([[len(ids) - 1] for ids in prompt_ids], device=device)
    layers = [PrefixLayer(capacity) for _ in range(model.config.get_text_config().num_hidden_layers)]
    common = _forward_settings(model, Cache(layers=layers))
    mask = mask.to(device)
    replies: list[list[int]] = [[] for _ in range(rows)]
    running = list(range(rows))
    budget = torch.tensor(budgets, device=device)
    stops = torch.tensor(list(stop_token_ids), device=device)
    with torch.inference_mode(), fast_linears(model), kernel_attention(model), kernel_norms_and_rotary(model):
        logits = _prefill(model, prompt_ids, layers, pad_token_id=pad_token_id)
        for step in range(max(budgets)):
            tokens = greedy_tokens(logits[:, -1].to(dtype=torch.float32))
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
            positions = positions + 1
            logits = model(
                input_ids=tokens[:, None], attention_mask=mask[:, : width + step + 1] if padded else None, position_ids=positions, **common
            ).logits
    return replies


def _prefill(model: Any, prompt_ids: Sequence[Sequence[int]], layers: list[PrefixLayer], *, pad_token_id: int) -> torch.Tensor:
    """Each prompt's last-position logits [rows, 1, vocab], its keys and values written into `layers` right-aligned
    at the longest prompt's width (as one left-padded batch would leave them).

    The prompts go through in chunks of similar length (`PREFILL_CHUNK_TOKENS`), each padded only to its own
    longest prompt: less compute on padding, and less memory for activations."""
    device, width = model.device, max(len(ids) for ids in prompt_ids)
    logits: torch.Tensor | None = None
    for chunk in prefill_chunks([len(ids) for ids in prompt_ids]):
        input_ids, mask = left_padded([prompt_ids[row] for row in chunk], pad_token_id)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        chunk_layers = [PrefixLayer(input_ids.shape[1]) for _ in layers]
        out = model(
            input_ids=input_ids.to(device), attention_mask=mask.to(device) if bool((mask == 0).any()) else None,
            position_ids=positions.to(device), **_forward_settings(model, Cache(layers=chunk_layers)),
        ).logits[:, -1:]
        if logits is None:
            logits = out.new_empty((len(prompt_ids), *out.shape[1:]))
        rows = torch.tensor(chunk, device=device)
        logits[rows] = out
        for layer, chunk_layer in zip(layers, chunk_layers, strict=True):
            layer.place(rows, len(prompt_ids), chunk_layer.keys, chunk_layer.values, end=width)
    assert logits is not None
    return logits


def prefill_chunks(lengths: Sequence[int]) -> list[list[int]]:
    """Row indices in order of prompt length, cut where a chunk's rows times its longest prompt would pass
    `PREFILL_CHUNK_TOKENS` (a chunk holds at least one row)."""
    chunks: list[list[int]] = []
    for row in sorted(range(len(lengths)), key=lambda row: lengths[row]):
        if chunks and (len(chunks[-1]) + 1) * lengths[row] <= PREFILL_CHUNK_TOKENS:
            chunks[-1].append(row)
        else:
            chunks.append([row])
    return chunks


def greedy_generate(
    model: Any, prompt_ids: Sequence[Sequence[int]], budgets: Sequence[int], *, stop_token_ids: Sequence[int], pad_token_id: int
) -> list[list[int]]:
    """`greedy_decode`'s replies from `model.generate` and its own cache: for models with windowed attention
    layers, and the reference the in-place decoder is tested against."""
    from transformers import GenerationConfig

    width = max(len(ids) for ids in prompt_ids)
    input_ids, attention_mask = left_padded(prompt_ids, pad_token_id)
    settings = GenerationConfig(
        max_new_tokens=max(budgets), do_sample=False, num_beams=1, eos_token_id=list(stop_token_ids), pad_token_id=pad_token_id,
        use_cache=True,
    )
    with torch.inference_mode():
        output = model.generate(input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device), generation_config=settings)
    return [_through_first_stop(row[width:].tolist()[:budget], stop_token_ids) for row, budget in zip(output, budgets, strict=True)]


def left_padded(prompt_ids: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and attention mask [rows, longest prompt] with each prompt right-aligned after `pad_token_id`s."""
    width = max(len(ids) for ids in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        mask[row, width - len(ids) :] = 1
    return input_ids, mask


def _through_first_stop(tokens: list[int], stop_token_ids: Sequence[int]) -> list[int]:
    stop = next((i for i, token in enumerate(tokens) if token in stop_token_ids), None)
    return tokens if stop is None else tokens[: stop + 1]
