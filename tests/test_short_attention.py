"""Short sequences in CPU training take plain attention, which computes what SDPA computes."""

from __future__ import annotations

import pytest
import torch

from harness.stages.speed import short_attention
from harness.stages.speed.short_attention import SHORT_SEQUENCE, plain_causal_attention, use_short_sequence_attention


def qkv(length: int, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """Query with 6 heads, key and value with 2 (grouped-query attention), as leaves."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(2, 6, length, 16), (2, 2, length, 16), (2, 2, length, 16)]
    return [torch.randn(shape, generator=generator).to(dtype).requires_grad_(True) for shape in shapes]


def padded_causal_mask(length: int) -> torch.Tensor:
    """SDPA's boolean mask for a batch whose second row ends in 5 padding tokens."""
    mask = torch.ones(2, 1, length, length, dtype=torch.bool).tril()
    mask[1, :, :, -5:] = False
    return mask


def outputs_and_gradients(attention, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    for tensor in tensors:
        tensor.grad = None
    output = attention(*tensors)
    output.float().pow(2).sum().backward()
    return [output.detach(), *[tensor.grad for tensor in tensors]]


@pytest.mark.parametrize("padded", [False, True])
def test_plain_attention_equals_sdpa_with_gradients(padded):
    length = 12
    mask = padded_causal_mask(length) if padded else None
    scale = 0.3

    def plain(q, k, v):
        return plain_causal_attention(q, k, v, mask, scale)

    def sdpa(q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None, scale=scale, enable_gqa=True
        )

    tensors = qkv(length)
    for ours, theirs in zip(outputs_and_gradients(plain, tensors), outputs_and_gradients(sdpa, tensors)):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def tiny_llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=512,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config)


def padded_batch(length: int) -> dict[str, torch.Tensor]:
    input_ids = torch.randint(0, 64, (2, length), generator=torch.Generator().manual_seed(1))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, -7:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": input_ids.masked_fill(attention_mask == 0, -100)}


@pytest.mark.parametrize("length", [24, SHORT_SEQUENCE + 8])
def test_model_trains_to_the_same_loss_and_gradients_as_with_sdpa(length, monkeypatch):
    calls = []
    monkeypatch.setattr(short_attention, "plain_causal_attention", lambda *a: calls.append(1) or plain_causal_attention(*a))
    batch = padded_batch(length)
    results = []
    for switch in (False, True):
        model = tiny_llama()
        if switch:
            use_short_sequence_attention(model)
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        results.append((loss.detach(), model.model.layers[0].self_attn.q_proj.weight.grad))
    assert len(calls) == (2 if length <= SHORT_SEQUENCE else 0)
    # bf16 autocast: measured on AMD EPYC (avx512_bf16) at 24 tokens, loss 1.3e-5 relative apart and
    # gradients within rtol 5e-2 plus 1.7e-6; the bounds leave about 100x for other CPUs' bf16 kernels.
    torch.testing.assert_close(results[1][0], results[0][0], rtol=2e-3, atol=0)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=5e-2, atol=2e-3)


def test_evaluation_keeps_sdpa(monkeypatch):
    calls = []
    monkeypatch.setattr(short_attention, "plain_causal_attention", lambda *a: calls.append(1) or plain_causal_attention(*a))
    model = tiny_llama()
    use_short_sequence_attention(model)
    model.eval()
    with torch.inference_mode():
        model(**padded_batch(24))
    assert model.config._attn_implementation == short_attention.ATTENTION_NAME
    assert calls == []


def test_backward_keeps_only_the_probabilities_in_the_input_dtype():
    """Per layer the plain path holds one [batch, heads, T, T] matrix for the backward pass, in bf16, not also an fp32 softmax."""
    length = 32
    saved = []

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        output = plain_causal_attention(*qkv(length, torch.bfloat16), padded_causal_mask(length), scaling=0.25)
    square = {t.data_ptr(): t.dtype for t in saved if t.shape[-2:] == (length, length) and t.shape[1] > 1}
    assert list(square.values()) == [torch.bfloat16]
    output.float().sum().backward()
