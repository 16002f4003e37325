"""Attention for training on the CPU: plain matmul-softmax-matmul for short sequences, SDPA otherwise.

PyTorch's CPU flash-attention kernel, which SDPA picks for these shapes, has a backward pass tuned
for long sequences. With freed memory kept in the heap (stages/speed/cpu_heap.py), the plain computation
took 5.9 ms forward and backward for 2 x 256 tokens with 9 heads of 64 against 8.4 ms for SDPA, and
still 23 ms against 28 ms at 512 tokens (benchmarks/README.md). The plain computation keeps a
[batch, heads, T, T] probability matrix per layer for the backward pass (3.7 MB per layer for
2 x 320 tokens in bf16), so it stops at `SHORT_SEQUENCE`; longer sequences, GPUs and inference keep
SDPA.
"""

from __future__ import annotations

from typing import Any

import torch

SHORT_SEQUENCE = 320
"""Longest sequence (tokens) that takes the plain path: the default instruct `max_length`."""

ATTENTION_NAME = "harness_sdpa"
"""The name under which `use_short_sequence_attention` registers this attention with transformers."""


class MaskedSoftmax(torch.autograd.Function):
    """softmax(scores * scale) over the last dimension where `keep`, computed in fp32, returned in the scores' dtype.

    The backward pass works from the returned probabilities, so only they are kept for it, not the
    fp32 softmax output that autograd would keep as well. Masked scores get the dtype's lowest value
    rather than -inf, so a row with nothing to attend to comes out finite, as in transformers' eager
    attention.
    """

    @staticmethod
    def forward(ctx: Any, scores: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        masked = (scores * scale).masked_fill_(~keep, torch.finfo(scores.dtype).min)
        probabilities = torch.softmax(masked, dim=-1, dtype=torch.float32).to(scores.dtype)
        ctx.save_for_backward(probabilities)
        ctx.scale = scale
        return probabilities

    @staticmethod
    def backward(ctx: Any, grad_probabilities: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (probabilities,) = ctx.saved_tensors
        p = probabilities.float()
        grad = grad_probabilities.float()
        grad_scores = p.mul_(grad.sub_((grad * p).sum(-1, keepdim=True))).mul_(ctx.scale)
        return grad_scores.to(probabilities.dtype), None, None


def plain_causal_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None, scaling: float) -> torch.Tensor:
    """softmax(q k^T * scaling, masked) v for [batch, heads, T, head_dim] inputs; key/value heads may be fewer (GQA).

    `mask` is SDPA's boolean mask (True = may attend), or None for plain causal attention.
    """
    groups = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    if mask is None:
        mask = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool, device=query.device).tril()
    probabilities = MaskedSoftmax.apply(torch.matmul(query, key.transpose(-1, -2)), mask, scaling)
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
