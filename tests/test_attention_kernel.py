"""The compiled decode attention: SDPA's outputs to fp32 rounding on the shapes decoding gives it, SDPA itself
for everything it does not compute, only inside the block, and SDPA where the kernels cannot be built.

The kernel is built here as on a user's machine (a C++ compiler and ninja); where no compiler is on the
PATH the tests that need it skip, and the decoder's replies are checked against `model.generate` in
tests/test_generate.py either way.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from harness.models import attention_kernel
from harness.models.attention_kernel import kernel_attention, kernel_attention_forward

needs_kernel = pytest.mark.usefixtures("cpu_kernels")

TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
"""Measured differences from SDPA on an AVX-512 AMD host: at most 6e-7 on outputs of size 0.5-0.8 (both sum
in fp32, in different orders); ten times that allows for other CPUs' rounding."""


def module(kv_groups: int) -> SimpleNamespace:
    return SimpleNamespace(num_key_value_groups=kv_groups, training=False, is_causal=True)


def decode_inputs(rows: int, heads: int, kv_heads: int, head_dim: int, positions: int, *, padded: bool, seed: int = 0):
    """One decode step's query and the cache's keys and values as views of a larger buffer, as the in-place decoder
    hands them over, with a bool mask where rows are left-padded."""
    generator = torch.Generator().manual_seed(seed)
    capacity = positions + 40
    key = torch.randn(rows, kv_heads, capacity, head_dim, generator=generator)[:, :, :positions]
    value = torch.randn(rows, kv_heads, capacity, head_dim, generator=generator)[:, :, :positions]
    query = torch.randn(rows, heads, 1, head_dim, generator=generator)
    mask = None
    if padded:
        visible = torch.ones(rows, positions, dtype=torch.bool)
        for row in range(rows):
            visible[row, : (row * 5) % 17] = False
        mask = visible[:, None, None, :]
    return query, key, value, mask


@needs_kernel
@pytest.mark.parametrize(
    ("heads", "kv_heads", "head_dim", "padded"),
    [(9, 3, 64, True), (9, 3, 64, False), (4, 4, 128, True), (8, 2, 128, False), (14, 2, 64, True), (10, 2, 128, True)],
)
def test_kernel_gives_sdpas_outputs_to_fp32_rounding(heads, kv_heads, head_dim, padded):
    query, key, value, mask = decode_inputs(6, heads, kv_heads, head_dim, 37, padded=padded)
    layer = module(heads // kv_heads)
    expected, _ = sdpa_attention_forward(layer, query, key, value, mask, scaling=head_dim**-0.5)
    got, _ = kernel_attention_forward(layer, query, key, value, mask, scaling=head_dim**-0.5)
    assert got.shape == expected.shape == (6, 1, heads, head_dim)
    torch.testing.assert_close(got, expected, **TOLERANCE)


@needs_kernel
def test_masked_positions_take_no_weight():
    """A key behind the mask must not reach the output however large its score would be."""
    query, key, value, mask = decode_inputs(4, 9, 3, 64, 20, padded=True)
    hidden = ~mask[:, 0, 0, :, None].unsqueeze(1)
    key, value = key.masked_fill(hidden, 1e4), value.masked_fill(hidden, 1e4)
    got, _ = kernel_attention_forward(module(3), query, key, value, mask, scaling=0.125)
    assert got.abs().max() < 10


@pytest.mark.parametrize("case", ["prefill", "bf16", "head_dim_32", "float_mask"])
def test_everything_but_fp32_decode_steps_runs_sdpa_itself(case, monkeypatch):
    monkeypatch.setattr(attention_kernel, "compiled_kernels", lambda: pytest.fail("the kernel must not be called"))
    head_dim = 32 if case == "head_dim_32" else 64
    query, key, value, mask = decode_inputs(3, 6, 2, head_dim, 12, padded=case == "float_mask")
    if case == "prefill":
        query = torch.randn(3, 6, 12, head_dim)
    elif case == "bf16":
        query, key, value = query.bfloat16(), key.bfloat16(), value.bfloat16()
    elif case == "float_mask":
        mask = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    got, _ = kernel_attention_forward(module(3), query, key, value, mask, scaling=head_dim**-0.5)
    expected, _ = sdpa_attention_forward(module(3), query, key, value, mask, scaling=head_dim**-0.5)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("variant", attention_kernel.VARIANT_KWARGS)
def test_attention_variants_the_kernel_does_not_compute_go_to_sdpa(variant, monkeypatch):
    monkeypatch.setattr(attention_kernel, "compiled_kernels", lambda: pytest.fail("the kernel must not be called"))
    monkeypatch.setattr(attention_kernel, "sdpa_attention_forward", lambda *args, **kwargs: ("sdpa", kwargs))
    query, key, value, _ = decode_inputs(3, 6, 2, 64, 12, padded=False)
    got, kwargs = kernel_attention_forward(module(3), query, key, value, None, scaling=0.125, **{variant: 8})
    assert got == "sdpa" and kwargs[variant] == 8


def tiny_llama(attn_implementation: str = "sdpa") -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=64, hidden_size=128, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        attn_implementation=attn_implementation,
    )
    return LlamaForCausalLM(config).eval()


@needs_kernel
def test_only_the_block_sees_the_kernel_and_an_error_inside_restores_sdpa():
    model = tiny_llama()
    with kernel_attention(model) as taken:
        assert taken and model.config._attn_implementation == attention_kernel.IMPLEMENTATION
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError, match="stop"), kernel_attention(model):
        raise RuntimeError("stop")
    assert model.config._attn_implementation == "sdpa"


def test_a_model_on_eager_attention_keeps_it(monkeypatch):
    monkeypatch.setattr(attention_kernel, "compiled_kernels", lambda: pytest.fail("eager models must not build the kernel"))
    model = tiny_llama("eager")
    with kernel_attention(model) as taken:
        assert not taken and model.config._attn_implementation == "eager"


def test_without_the_kernels_decoding_keeps_sdpa(monkeypatch):
    monkeypatch.setattr(attention_kernel, "compiled_kernels", lambda: None)
    model = tiny_llama()
    with kernel_attention(model) as taken:
        assert not taken and model.config._attn_implementation == "sdpa"


@needs_kernel
@pytest.mark.model
def test_the_decoder_attends_through_the_kernel_on_the_embedded_model(embedded_model_dir, embedded_tokenizer, monkeypatch):
    """The replies tests in tests/test_generate.py check the kernel only if decoding takes it: it must, on SmolLM2."""
    from harness.evals.greedy_decoding import greedy_decode
    from harness.models.loading import load_causal_lm
    from harness.run.config import ModelConfig

    model = load_causal_lm(str(embedded_model_dir), ModelConfig(), quantization="none").eval()
    steps = []
    real = attention_kernel.kernel_attention_forward

    def counting(module, query, *args, **kwargs):
        steps.append(query.shape[2])
        return real(module, query, *args, **kwargs)

    monkeypatch.setattr(attention_kernel, "kernel_attention_forward", counting)
    prompts = [embedded_tokenizer("Hello there")["input_ids"], embedded_tokenizer("How do I sleep better at night?")["input_ids"]]
    greedy_decode(model, prompts, [4, 4], stop_token_ids=[], pad_token_id=embedded_tokenizer.pad_token_id)
    layers = model.config.num_hidden_layers
    assert steps.count(1) == 3 * layers and len(steps) == 4 * layers, "the prefill and three decode steps, every layer"
