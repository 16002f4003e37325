"""Attention for training on the CPU: plain matmul-softmax-matmul for short sequences, SDPA otherwise.

PyTorch's CPU flash-attention kernel, which SDPA picks for these shapes, has a backward pass tuned
for long sequences: for a padded batch of 2 x 160 tokens with 9 heads of 64 it took 5.8 ms forward
and backward against 2.7 ms for the plain computation, which broke even somewhere between 192 and
256 tokens (benchmarks/README.md). The plain computation holds a [batch, heads, T, T] probability
matrix per layer for the backward pass, which is small only for short sequences, so longer ones,
GPUs, and inference keep SDPA.
"""

from __future__ import annotations

from typing import Any

import torch

SHORT_SEQUENCE = 192
"""Longest sequence (tokens) that takes the plain path."""

ATTENTION_NAME = "harness_sdpa"
"""The name under which `use_short_sequence_attention` registers this attention with transformers."""


def plain_causal_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None, scaling: float) -> torch.Tensor:
    """softmax(q k^T * scaling, masked) v for [batch, heads, T, head_dim] inputs; key/value heads may be fewer (GQA).

    `mask` is SDPA's boolean mask (True = may attend), or None for plain causal attention. The
    softmax runs in fp32 and masked scores get the dtype's lowest value rather than -inf, so a
    row with nothing to attend to comes out finite, as in transformers' eager attention.
    """
    groups = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    if mask is None:
        mask = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool, device=query.device).tril()
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    probabilities = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    return torch.matmul(probabilities, value)


def short_sequence_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function interface; returns ([batch, T, heads, head_dim], no weights)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    length = query.shape[-2]
    plain = (
        module.training
        and query.device.type == "cpu"
        and torch.is_grad_enabled()
        and 1 < length <= SHORT_SEQUENCE
        and key.shape[-2] == length
        and dropout == 0.0
        and kwargs.get("is_causal", getattr(module, "is_causal", True))
        and (attention_mask is None or attention_mask.dtype == torch.bool)
        and not any(kwargs.get(name) is not None for name in ("position_bias", "softcap", "s_aux", "sliding_window"))
    )
    if not plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    output = plain_causal_attention(query, key, value, attention_mask, scale)
    return output.transpose(1, 2).contiguous(), None


def use_short_sequence_attention(model: Any) -> None:
    """Switch `model` (an SDPA model) to `short_sequence_attention`, with SDPA's attention masks."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, short_sequence_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)
    model.set_attn_implementation(ATTENTION_NAME)
