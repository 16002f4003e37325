"""The decoder's linear layers on oneDNN: the same products as `F.linear` to fp32 rounding, only for plain fp32
layers, only inside the block; and the fp32 matmul ceiling counts the faster kernel."""

from __future__ import annotations

import pytest
import torch

from harness.models import linear_kernel, throughput
from harness.models.linear_kernel import onednn_available, onednn_linears
from harness.models.throughput import matmul_gflops, matmul_kernel_gflops

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this torch has no oneDNN")


class TwoLayers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fp32 = torch.nn.Linear(576, 192, bias=True)
        self.bf16 = torch.nn.Linear(192, 64, bias=False).to(torch.bfloat16)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.bf16(self.fp32(inputs).to(torch.bfloat16))


def calls_to_onednn(monkeypatch) -> list[tuple[tuple[int, ...], bool]]:
    """The shapes of the weights the layers multiply through oneDNN with from here on, and whether each was packed."""
    calls: list[tuple[tuple[int, ...], bool]] = []
    real = linear_kernel.onednn_linear

    def recorded(inputs, weight, bias=None):
        calls.append((tuple(weight.shape), weight.is_mkldnn))
        return real(inputs, weight, bias)

    monkeypatch.setattr(linear_kernel, "onednn_linear", recorded)
    return calls


def test_only_plain_fp32_layers_go_to_onednn_and_give_f_linears_products_to_rounding(monkeypatch):
    model = TwoLayers()
    inputs = torch.randn(3, 5, 576)
    expected = model.fp32(inputs)
    calls = calls_to_onednn(monkeypatch)
    with torch.inference_mode(), onednn_linears(model) as taken:
        through_onednn = model.fp32(inputs)
        model(inputs)
    assert taken == 1 and calls == [((192, 576), True)] * 2, "the bf16 layer must keep its own forward"
    # fp32 sums of 576 products in another order: differences of a few ulps of the largest partial sums.
    torch.testing.assert_close(through_onednn, expected, rtol=1e-5, atol=1e-5)
    assert through_onednn.shape == expected.shape


def test_under_autocast_the_layers_compute_as_autocast_has_them(monkeypatch):
    model = TwoLayers()
    inputs = torch.randn(4, 576)
    calls = calls_to_onednn(monkeypatch)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model.fp32(inputs)
        with onednn_linears(model):
            autocast = model.fp32(inputs)
    assert calls == [] and autocast.dtype == torch.bfloat16 and torch.equal(autocast, expected)


def test_layers_get_their_own_forward_back_even_when_the_block_fails(monkeypatch):
    model = TwoLayers()
    calls = calls_to_onednn(monkeypatch)
    with pytest.raises(RuntimeError, match="stop"), onednn_linears(model):
        raise RuntimeError("stop")
    assert "forward" not in vars(model.fp32)
    model.fp32(torch.randn(2, 576))
    assert calls == []


def test_a_block_inside_a_block_leaves_the_outer_ones_layers_to_it(monkeypatch):
    model = TwoLayers()
    calls = calls_to_onednn(monkeypatch)
    with onednn_linears(model) as outer:
        with onednn_linears(model) as inner:
            pass
        model.fp32(torch.randn(2, 576))
    assert (outer, inner) == (1, 0) and calls == [((192, 576), True)] and "forward" not in vars(model.fp32)


def test_weights_that_do_not_fit_packed_are_multiplied_as_they_are_with_the_same_products(monkeypatch):
    model = TwoLayers()
    inputs = torch.randn(7, 576)
    calls = calls_to_onednn(monkeypatch)
    with torch.inference_mode():
        with onednn_linears(model):
            packed = model.fp32(inputs)
        monkeypatch.setattr(linear_kernel, "PACKED_MEMORY_SHARE", 0.0)
        with onednn_linears(model):
            unpacked = model.fp32(inputs)
    assert calls == [((192, 576), True), ((192, 576), False)]
    # Same GEMM, weights laid out differently: equal bit for bit on the AVX-512 host; another host's kernels may
    # block the sums differently, hence fp32 rounding as the bound.
    torch.testing.assert_close(packed, unpacked, rtol=1e-5, atol=1e-5)


def test_a_weight_shared_by_two_layers_is_packed_once(monkeypatch):
    model = TwoLayers()
    model.tied = torch.nn.Linear(576, 192, bias=False)
    model.tied.weight = model.fp32.weight
    packings = []
    real = linear_kernel.packed_weight
    monkeypatch.setattr(linear_kernel, "packed_weight", lambda weight: packings.append(weight) or real(weight))
    with torch.inference_mode(), onednn_linears(model) as taken:
        pass
    assert taken == 2 and len(packings) == 1


def test_fp32_is_timed_on_mkl_and_onednn_and_its_ceiling_is_the_faster(monkeypatch):
    kernels = matmul_kernel_gflops("float32", size=256, repeats=3)
    assert set(kernels) == {"torch.matmul", "oneDNN"} and all(gflops > 0 for gflops in kernels.values())
    assert set(matmul_kernel_gflops("bfloat16", size=64, repeats=1)) == {"torch.matmul"}
    seconds = iter([2.0, 0.5])
    monkeypatch.setattr(throughput, "_median_seconds", lambda work, repeats: next(seconds))
    assert matmul_gflops("float32", size=100, repeats=1) == pytest.approx(2 * 100**3 / 0.5 / 1e9)
