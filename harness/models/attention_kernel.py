"""A decoder's attention over its KV cache through a small compiled kernel while it decodes on the CPU.

At a decode step each row brings one new token, so grouped-query attention is, per row and key/value
head, a handful of query heads (three for SmolLM2) against that head's cached keys and values. torch's
SDPA CPU kernel is built for long queries and spends most of its time outside the arithmetic on this
shape: 2-3 ms a layer at 72 rows and about 220 positions on the AVX-512 AMD host of benchmarks/README.md,
a third of a 256-token decode step, where reading the keys and values once takes 0.3-0.5 ms. The kernel
in `cpu_kernels.cpp` reads them once per query head from cache, on 16-float vectors, in 0.7-1.0 ms. It
computes in fp32 like SDPA and sums in a different order, so outputs differ in their last bits (about
1e-7 relative) and greedy replies stay token-identical (tests/test_generate.py).

The kernel is compiled for this machine's CPU at first use (`cpu_kernels.py`); where it cannot be built,
decoding keeps SDPA. Only fp32 decode steps on the CPU with head dim 64 or 128 and plain full attention
take it; the prefill, other dtypes, devices and attention variants (soft-capping, sinks, biases,
windows) keep transformers' SDPA path.

Imported where a model generates: it imports torch and transformers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from harness.models.cpu_kernels import compiled_kernels, fp32_cpu

IMPLEMENTATION = "harness_decode"
"""The name the kernel is registered under in transformers' attention and mask registries."""

HEAD_DIMS = (64, 128)
VARIANT_KWARGS = ("softcap", "s_aux", "sinks", "position_bias", "sliding_window")
"""Keyword arguments of attention variants the kernel does not compute; a call with any of them set keeps SDPA."""


@contextmanager
def kernel_attention(model: Any) -> Iterator[bool]:
    """Within the block `model`'s decode steps attend through the compiled kernel, where the model uses SDPA
    and the kernel builds; everything else still runs SDPA. Yields whether the kernel took over.

    The model's attention implementation is switched on its config and switched back on the way out."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    kernel = compiled_kernels() if config._attn_implementation == "sdpa" and model.device.type == "cpu" else None
    if kernel is None:
        yield False
        return
    AttentionInterface.register(IMPLEMENTATION, kernel_attention_forward)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)
    configs = {id(c): c for c in (model.config, config)}.values()
    for each in configs:
        each._attn_implementation = IMPLEMENTATION
    try:
        yield True
    finally:
        for each in configs:
            each._attn_implementation = "sdpa"


def kernel_attention_forward(
    module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None,
    scaling: float | None = None, dropout: float = 0.0, **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention signature: query [rows, heads, 1, head dim] and the cache's keys and values
    [rows, kv heads, positions, head dim] through the kernel where it applies, else SDPA's forward."""
    rows, heads, q_length, head_dim = query.shape
    mask_ok = attention_mask is None or (
        attention_mask.dtype == torch.bool and attention_mask.shape[1:3] == (1, 1) and attention_mask.shape[-1] == key.shape[2]
    )
    takes = (
        q_length == 1 and head_dim in HEAD_DIMS and dropout == 0.0 and mask_ok and not module.training
        and all(fp32_cpu(t) and t.stride(-1) == 1 for t in (query, key, value))
        and not any(kwargs.get(name) is not None for name in VARIANT_KWARGS) and getattr(module, "sinks", None) is None
    )
    if not takes:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    kv_heads = key.shape[1]
    visible = torch.empty(0, dtype=torch.bool) if attention_mask is None else attention_mask[:, 0, 0, :].expand(rows, -1).contiguous()
    scale = scaling if scaling is not None else head_dim**-0.5
    out = compiled_kernels().grouped_decode_attention(query.reshape(rows, kv_heads, heads // kv_heads, head_dim), key, value, visible, scale)
    return out.reshape(rows, heads, 1, head_dim).transpose(1, 2).contiguous(), None
