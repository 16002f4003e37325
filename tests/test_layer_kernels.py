"""RMSNorms and rotary embeddings through the compiled CPU kernels: the rotary bit for bit as transformers computes
it, the norms to fp32 rounding, only inside the block, and only where the kernel computes what the layer's own code
computes (a variant keeps its code)."""

from __future__ import annotations

import sys

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama import modeling_llama

from harness.models import layer_kernels
from harness.models.layer_kernels import NORM_PROBE_TOLERANCE, kernel_norms_and_rotary

needs_kernels = pytest.mark.usefixtures("cpu_kernels")


def tiny_llama(layers: int = 2) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=96, hidden_size=192, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=3, num_key_value_heads=1,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    for name, parameter in model.named_parameters():
        if name.endswith("norm.weight"):
            parameter.data.uniform_(0.5, 1.5)
    return model


def untouched(model: torch.nn.Module, original_rotary) -> bool:
    return modeling_llama.apply_rotary_pos_emb is original_rotary and not any("forward" in vars(module) for module in model.modules())


@needs_kernels
def test_every_norm_and_the_rotary_are_taken_in_the_block_and_restored_after():
    model, original_rotary = tiny_llama(layers=2), modeling_llama.apply_rotary_pos_emb
    ids = torch.randint(0, 96, (3, 11), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model(input_ids=ids).logits
        with kernel_norms_and_rotary(model) as taken:
            assert taken == 2 * 2 + 1 + 1, "two norms a layer, the final norm, and llama's rotary"
            assert modeling_llama.apply_rotary_pos_emb is not original_rotary
            got = model(input_ids=ids).logits
    assert untouched(model, original_rotary)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.equal(got, model(input_ids=ids + 1).logits), "the comparison can fail"


@needs_kernels
def test_an_error_inside_the_block_restores_every_layer():
    model, original_rotary = tiny_llama(layers=1), modeling_llama.apply_rotary_pos_emb
    with pytest.raises(RuntimeError, match="stop"), kernel_norms_and_rotary(model):
        raise RuntimeError("stop")
    assert untouched(model, original_rotary)


@needs_kernels
@pytest.mark.parametrize(("rows", "heads", "positions"), [(72, 9, 1), (5, 4, 37)])
def test_the_rotary_kernel_rounds_as_transformers_does(rows, heads, positions):
    generator = torch.Generator().manual_seed(rows)
    query = torch.randn(rows, positions, heads * 64, generator=generator).view(rows, positions, heads, 64).transpose(1, 2)
    key = torch.randn(rows, positions, 64, generator=generator).view(rows, positions, 1, 64).transpose(1, 2)
    cos, sin = torch.randn(rows, positions, 64, generator=generator), torch.randn(rows, positions, 64, generator=generator)
    expected = modeling_llama.apply_rotary_pos_emb(query, key, cos, sin)
    with kernel_norms_and_rotary(tiny_llama(layers=1)):
        got = modeling_llama.apply_rotary_pos_emb(query, key, cos, sin)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


@needs_kernels
@pytest.mark.parametrize("call", ["bf16", "heads_last"])
def test_rotary_calls_the_kernel_does_not_cover_go_to_transformers(call, monkeypatch):
    query, key = torch.randn(2, 3, 4, 64), torch.randn(2, 1, 4, 64)
    cos, sin = torch.randn(2, 4, 64), torch.randn(2, 4, 64)
    kwargs = {}
    if call == "bf16":
        query, key, cos, sin = (tensor.bfloat16() for tensor in (query, key, cos, sin))
    else:
        query, key, kwargs = query.transpose(1, 2), key.transpose(1, 2), {"unsqueeze_dim": 2}
    expected = modeling_llama.apply_rotary_pos_emb(query, key, cos, sin, **kwargs)
    with kernel_norms_and_rotary(tiny_llama(layers=1)):
        got = modeling_llama.apply_rotary_pos_emb(query, key, cos, sin, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


class ShiftedRMSNorm(torch.nn.Module):
    """A Gemma-style norm: the Llama norm's attributes, scaled by 1 + weight."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(width))
        self.variance_epsilon = 1e-6

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.variance_epsilon) * (1 + self.weight)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    """An interleaved rotary (pairs of neighbouring dims), which the kernel does not compute; found by the block
    because `ShiftedRMSNorm` is defined in this module."""
    def rotate(x):
        return torch.stack((-x[..., 1::2], x[..., ::2]), dim=-1).flatten(-2)

    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return q * cos + rotate(q) * sin, k * cos + rotate(k) * sin


class GatedRMSNorm(ShiftedRMSNorm):
    """A norm with the Llama norm's attributes whose forward takes a second input."""

    def forward(self, hidden: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return super().forward(hidden) * gate


class Variants(torch.nn.Module):
    device = torch.device("cpu")

    def __init__(self) -> None:
        super().__init__()
        self.norm = ShiftedRMSNorm(64)
        self.gated = GatedRMSNorm(64)


@needs_kernels
def test_a_variant_norm_or_rotary_keeps_its_own_code():
    model = Variants()
    with kernel_norms_and_rotary(model) as taken:
        assert taken == 0
        assert not any("forward" in vars(module) for module in (model.norm, model.gated))
        assert sys.modules[__name__].apply_rotary_pos_emb is apply_rotary_pos_emb


def test_without_the_kernels_nothing_is_taken(monkeypatch):
    monkeypatch.setattr(layer_kernels, "compiled_kernels", lambda: None)
    model, original_rotary = tiny_llama(layers=1), modeling_llama.apply_rotary_pos_emb
    with kernel_norms_and_rotary(model) as taken:
        assert taken == 0 and untouched(model, original_rotary)


@needs_kernels
def test_a_norm_under_autocast_or_on_bf16_runs_its_own_code():
    model = tiny_llama(layers=1)
    norm = model.model.norm
    hidden = torch.randn(4, 192)
    with kernel_norms_and_rotary(model):
        assert torch.equal(norm(hidden.bfloat16()), type(norm).forward(norm, hidden.bfloat16()))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(norm(hidden), type(norm).forward(norm, hidden))
        torch.testing.assert_close(norm(hidden), type(norm).forward(norm, hidden), **NORM_PROBE_TOLERANCE)


@needs_kernels
@pytest.mark.model
def test_the_embedded_model_has_every_norm_and_its_rotary_taken(embedded_model_dir):
    """The replies tests in tests/test_generate.py check these kernels only if decoding takes them: it must, on SmolLM2."""
    from harness.models.loading import load_causal_lm
    from harness.run.config import ModelConfig

    model = load_causal_lm(str(embedded_model_dir), ModelConfig(), quantization="none").eval()
    with kernel_norms_and_rotary(model) as taken:
        assert taken == 2 * model.config.num_hidden_layers + 1 + 1


class Norms(torch.nn.Module):
    device = torch.device("cpu")

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = modeling_llama.LlamaRMSNorm(width, eps=1e-5)
        self.norm.weight.data.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(width))


@needs_kernels
@pytest.mark.parametrize("width", [8, 100, 576])
def test_a_norm_of_any_width_is_taken_and_gives_its_own_output_to_fp32_rounding(width):
    model = Norms(width)
    hidden = torch.randn(5, 3, width, generator=torch.Generator().manual_seed(0)) * 4
    expected = model.norm(hidden)
    with kernel_norms_and_rotary(model):
        assert "forward" in vars(model.norm)
        got = model.norm(hidden)
    torch.testing.assert_close(got, expected, **NORM_PROBE_TOLERANCE)
