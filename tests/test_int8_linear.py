"""The frozen int8 base trains in the autocast dtype, as an ordinary linear layer with the same weights would."""

from __future__ import annotations

import pytest
import torch

bnb = pytest.importorskip("bitsandbytes")

from harness.stages.speed.int8_linear import dequantize, train_int8_in_autocast_dtype  # noqa: E402


def int8_layer(bias: bool = True, seed: int = 0) -> torch.nn.Module:
    """A quantized, frozen bitsandbytes layer, as `load_in_8bit` makes them."""
    torch.manual_seed(seed)
    layer = bnb.nn.Linear8bitLt(48, 24, bias=bias, has_fp16_weights=False, threshold=6.0).to("cpu")
    if bias:
        layer.bias.data.normal_()
    return layer


def matching_linear(layer: torch.nn.Module) -> torch.nn.Linear:
    """An `nn.Linear` holding the int8 layer's dequantized weights."""
    linear = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(dequantize(layer.weight.CB, layer.weight.SCB, torch.float32))
        if layer.bias is not None:
            linear.bias.copy_(layer.bias)
    linear.weight.requires_grad_(False)
    return linear


def forward_backward(layer: torch.nn.Module, x: torch.Tensor, autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = layer(x)
    out.float().pow(2).sum().backward()
    return out.detach(), x.grad


@pytest.mark.parametrize("autocast", [True, False])
def test_rerouted_layer_trains_as_a_linear_layer_with_the_same_weights(autocast):
    layer = int8_layer()
    reference = matching_linear(layer)
    rerouted = torch.nn.Sequential(layer)
    assert train_int8_in_autocast_dtype(rerouted) == 1
    x = torch.randn(3, 5, 48)

    out, grad = forward_backward(layer.train(), x, autocast)
    expected_out, expected_grad = forward_backward(reference, x, autocast)

    assert out.dtype == expected_out.dtype == (torch.bfloat16 if autocast else torch.float32)
    assert grad.dtype == torch.float32
    assert torch.equal(out, expected_out)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-5)


def test_bias_gradient_matches_bitsandbytes():
    plain, rerouted = int8_layer(seed=1), int8_layer(seed=1)
    train_int8_in_autocast_dtype(torch.nn.Sequential(rerouted))
    x = torch.randn(6, 48)
    for layer in (plain, rerouted):
        layer.train()
        layer.bias.requires_grad_(True)
        forward_backward(layer, x, autocast=False)
    torch.testing.assert_close(rerouted.bias.grad, plain.bias.grad, rtol=1e-5, atol=1e-4)


def test_gradients_agree_with_the_bitsandbytes_path_within_bf16_rounding():
    plain, rerouted = int8_layer(seed=2), int8_layer(seed=2)
    train_int8_in_autocast_dtype(torch.nn.Sequential(rerouted))
    x = torch.randn(4, 7, 48)
    out, grad = forward_backward(rerouted.train(), x, autocast=True)
    plain_out, plain_grad = forward_backward(plain.train(), x, autocast=True)
    assert torch.equal(out, plain_out), "bitsandbytes' forward also runs in the autocast dtype"
    assert not torch.equal(grad, plain_grad), "bitsandbytes' backward runs in fp32; ours in bf16"
    assert (grad - plain_grad).norm() / plain_grad.norm() < 0.01


def test_evaluation_keeps_bitsandbytes_int8_kernels():
    plain, rerouted = int8_layer(seed=3), int8_layer(seed=3)
    train_int8_in_autocast_dtype(torch.nn.Sequential(rerouted))
    x = torch.randn(2, 48) * 4
    x[0, 0] = 20.0  # above the outlier threshold
    dequantized = matching_linear(plain)
    with torch.no_grad():
        int8_out = plain.eval()(x)
        assert not torch.equal(int8_out, dequantized(x)), "the int8 kernel differs from a dequantized matmul"
        assert torch.equal(rerouted.eval()(x), int8_out)


def test_only_frozen_int8_layers_are_rerouted():
    model = torch.nn.Sequential(
        int8_layer(),
        torch.nn.Linear(24, 24),
        bnb.nn.Linear8bitLt(24, 24, has_fp16_weights=True),
        int8_layer(bias=False),
    )
    assert train_int8_in_autocast_dtype(model) == 2
    assert train_int8_in_autocast_dtype(torch.nn.Sequential(torch.nn.Linear(4, 4))) == 0
