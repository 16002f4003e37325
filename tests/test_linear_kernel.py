"""The decoder's linear layers on the compiled panel GEMM, or oneDNN where it is not built: the same products as
`F.linear` to fp32 rounding, only for plain fp32 layers, only inside the block; and the fp32 matmul ceiling
counts the fastest kernel."""

from __future__ import annotations

import pytest
import torch

from harness.models import linear_kernel, throughput
from harness.models.linear_kernel import fast_linears, onednn_available, panel_linear, panel_packed
from harness.models.throughput import matmul_gflops, matmul_kernel_gflops

needs_onednn = pytest.mark.skipif(not onednn_available(), reason="this torch has no oneDNN")


@pytest.fixture
def panel_gemm(cpu_kernels):
    if not hasattr(cpu_kernels, "packed_linear"):
        pytest.skip("the panel GEMM is built only where the compiler targets AVX-512")
    return cpu_kernels


@pytest.fixture
def onednn_only(monkeypatch):
    """The oneDNN path, as on a machine where the panel GEMM is not built."""
    monkeypatch.setattr(linear_kernel, "panel_kernel", lambda: None)


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


@needs_onednn
def test_only_plain_fp32_layers_go_to_onednn_and_give_f_linears_products_to_rounding(onednn_only, monkeypatch):
    model = TwoLayers()
    inputs = torch.randn(3, 5, 576)
    expected = model.fp32(inputs)
    calls = calls_to_onednn(monkeypatch)
    with torch.inference_mode(), fast_linears(model) as taken:
        through_onednn = model.fp32(inputs)
        model(inputs)
    assert taken == 1 and calls == [((192, 576), True)] * 2, "the bf16 layer must keep its own forward"
    # fp32 sums of 576 products in another order: differences of a few ulps of the largest partial sums.
    torch.testing.assert_close(through_onednn, expected, rtol=1e-5, atol=1e-5)
    assert through_onednn.shape == expected.shape


@pytest.mark.parametrize("gemm", ["panel_gemm", "onednn_only"])
def test_under_autocast_the_layers_compute_as_autocast_has_them(gemm, request, monkeypatch):
    """On either GEMM's path: the panel GEMM where it is built, oneDNN where it is not."""
    if gemm == "onednn_only" and not onednn_available():
        pytest.skip("this torch has no oneDNN")
    request.getfixturevalue(gemm)
    model = TwoLayers()
    inputs = torch.randn(4, 576)
    onednn_calls, panel_calls = calls_to_onednn(monkeypatch), calls_to_panel_gemm(monkeypatch)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model.fp32(inputs)
        with fast_linears(model):
            autocast = model.fp32(inputs)
    assert onednn_calls == panel_calls == [] and autocast.dtype == torch.bfloat16 and torch.equal(autocast, expected)


@needs_onednn
def test_layers_get_their_own_forward_back_even_when_the_block_fails(onednn_only, monkeypatch):
    model = TwoLayers()
    calls = calls_to_onednn(monkeypatch)
    with pytest.raises(RuntimeError, match="stop"), fast_linears(model):
        raise RuntimeError("stop")
    assert "forward" not in vars(model.fp32)
    model.fp32(torch.randn(2, 576))
    assert calls == []


@needs_onednn
def test_a_block_inside_a_block_leaves_the_outer_ones_layers_to_it(onednn_only, monkeypatch):
    model = TwoLayers()
    calls = calls_to_onednn(monkeypatch)
    with fast_linears(model) as outer:
        with fast_linears(model) as inner:
            pass
        model.fp32(torch.randn(2, 576))
    assert (outer, inner) == (1, 0) and calls == [((192, 576), True)] and "forward" not in vars(model.fp32)


@needs_onednn
def test_weights_that_do_not_fit_packed_are_multiplied_as_they_are_with_the_same_products(onednn_only, monkeypatch):
    model = TwoLayers()
    inputs = torch.randn(7, 576)
    calls = calls_to_onednn(monkeypatch)
    with torch.inference_mode():
        with fast_linears(model):
            packed = model.fp32(inputs)
        monkeypatch.setattr(linear_kernel, "PACKED_MEMORY_SHARE", 0.0)
        with fast_linears(model):
            unpacked = model.fp32(inputs)
    assert calls == [((192, 576), True), ((192, 576), False)]
    # Same GEMM, weights laid out differently: equal bit for bit on the AVX-512 host; another host's kernels may
    # block the sums differently, hence fp32 rounding as the bound.
    torch.testing.assert_close(packed, unpacked, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_a_weight_shared_by_two_layers_is_packed_once(onednn_only, monkeypatch):
    model = TwoLayers()
    model.tied = torch.nn.Linear(576, 192, bias=False)
    model.tied.weight = model.fp32.weight
    packings = []
    real = linear_kernel.packed_weight
    monkeypatch.setattr(linear_kernel, "packed_weight", lambda weight: packings.append(weight) or real(weight))
    with torch.inference_mode(), fast_linears(model) as taken:
        pass
    assert taken == 2 and len(packings) == 1


@needs_onednn
def test_fp32_is_timed_on_every_kernel_the_layers_use_and_its_ceiling_is_the_fastest(monkeypatch):
    kernels = matmul_kernel_gflops("float32", size=256, repeats=3)
    panel = {"panel GEMM"} if linear_kernel.panel_kernel() is not None else set()
    assert set(kernels) == {"torch.matmul", "oneDNN"} | panel and all(gflops > 0 for gflops in kernels.values())
    assert set(matmul_kernel_gflops("bfloat16", size=64, repeats=1)) == {"torch.matmul"}
    assert set(matmul_kernel_gflops("float32", size=64, repeats=1, decode_gemms=False)) == {"torch.matmul"}, "training's kernel alone"
    seconds = iter([2.0, 0.5, 1.0])
    monkeypatch.setattr(throughput, "_median_seconds", lambda work, repeats: next(seconds))
    assert matmul_gflops("float32", size=100, repeats=1) == pytest.approx(2 * 100**3 / 0.5 / 1e9)


def calls_to_panel_gemm(monkeypatch) -> list[tuple[int, ...]]:
    """The shapes of the packed weights the layers multiply through the panel GEMM with from here on."""
    calls: list[tuple[int, ...]] = []
    real = linear_kernel.panel_linear

    def recorded(inputs, panels, bias, out_features):
        calls.append(tuple(panels.shape))
        return real(inputs, panels, bias, out_features)

    monkeypatch.setattr(linear_kernel, "panel_linear", recorded)
    return calls


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 6, 7, 13, 76])
@pytest.mark.parametrize(("out_features", "in_features"), [(192, 576), (100, 7), (80, 33), (576, 1536)])
def test_the_panel_gemm_gives_f_linears_products_to_fp32_rounding(panel_gemm, rows, out_features, in_features):
    """Every row-block size (1-6 rows, and several blocks), panels cut short (100 = 64 + 36 features; 80 = 64 + 16,
    a last panel with whole vectors unused), with and without a bias, inputs with leading dims."""
    torch.manual_seed(rows)
    weight, bias = torch.randn(out_features, in_features), torch.randn(out_features)
    inputs = torch.randn(2, rows, in_features)
    panels = panel_packed(weight)
    assert panels.shape == (-(-out_features // 64), in_features, 64)
    for added in (None, bias):
        got = panel_linear(inputs, panels, added, out_features)
        exact = torch.nn.functional.linear(inputs.double(), weight.double(), None if added is None else added.double())
        assert got.shape == exact.shape and got.dtype == torch.float32
        # One fp32 sum over up to 1536 products in order: measured within 1.3e-4 of fp64 on sums of 576 products of
        # unit normals (1024 x 1536 outputs), where F.linear's blocked sums were within 5e-5.
        torch.testing.assert_close(got.double(), exact, rtol=1e-5, atol=5e-4)


def test_the_panel_gemm_rejects_a_weight_packed_for_other_shapes(panel_gemm):
    panels = panel_packed(torch.randn(100, 8))
    with pytest.raises(RuntimeError, match="packed_linear takes"):
        panel_gemm.packed_linear(torch.randn(3, 9), panels, None, 100)
    with pytest.raises(RuntimeError, match="packed_linear takes"):
        panel_gemm.packed_linear(torch.randn(3, 8), panels, None, 200)


def test_where_the_panel_gemm_is_built_plain_fp32_layers_go_to_it_with_each_weight_packed_once(panel_gemm, monkeypatch):
    model = TwoLayers()
    model.tied = torch.nn.Linear(576, 192, bias=False)
    model.tied.weight = model.fp32.weight
    inputs = torch.randn(3, 5, 576)
    expected = model.fp32(inputs)
    packings = []
    real_packed = linear_kernel.panel_packed
    monkeypatch.setattr(linear_kernel, "panel_packed", lambda weight: packings.append(weight) or real_packed(weight))
    calls = calls_to_panel_gemm(monkeypatch)
    with torch.inference_mode(), fast_linears(model) as taken:
        through_panels = model.fp32(inputs)
        model(inputs)
    assert taken == 2 and len(packings) == 1 and calls == [(3, 576, 64)] * 2, "the bf16 layer must keep its own forward"
    torch.testing.assert_close(through_panels, expected, rtol=1e-5, atol=5e-4)
    assert "forward" not in vars(model.fp32) and "forward" not in vars(model.tied)


@needs_onednn
def test_where_the_panels_do_not_fit_the_layers_go_to_onednn_on_their_own_weights(panel_gemm, monkeypatch):
    model = TwoLayers()
    monkeypatch.setattr(linear_kernel, "PACKED_MEMORY_SHARE", 0.0)
    panel_calls, onednn_calls = calls_to_panel_gemm(monkeypatch), calls_to_onednn(monkeypatch)
    with torch.inference_mode(), fast_linears(model) as taken:
        model.fp32(torch.randn(4, 576))
    assert taken == 1 and panel_calls == [] and onednn_calls == [((192, 576), False)]


def test_the_benchmark_records_the_gemm_the_layers_use(monkeypatch):
    monkeypatch.setattr(linear_kernel, "panel_kernel", lambda: object())
    assert linear_kernel.linear_gemm() == "panel GEMM"
    monkeypatch.setattr(linear_kernel, "panel_kernel", lambda: None)
    monkeypatch.setattr(linear_kernel, "onednn_available", lambda: True)
    assert linear_kernel.linear_gemm() == "oneDNN"
    monkeypatch.setattr(linear_kernel, "onednn_available", lambda: False)
    assert linear_kernel.linear_gemm() == "MKL"
