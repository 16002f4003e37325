"""A model's fp32 linear layers through a faster GEMM than MKL's while it decodes on the CPU.

torch sends an fp32 `F.linear` on the CPU to MKL's sgemm. A decode step's shapes (a few dozen rows against
weights streamed from memory) run faster on two other GEMMs, each on weights copied once per decode into
its own layout:
- the panel GEMM compiled with the decoder's other kernels (`cpu_kernels.cpp`), where the compiler targets
  AVX-512: weights in panels of 64 output features, rows in register tiles of 6 x 64 sums, the (panel,
  row block) pairs split evenly over the cores. On the AVX-512 AMD host of benchmarks/README.md the 30
  layers' matmuls at 76 rows, each weight streamed from memory, went from oneDNN's 146-159 to 172-180
  GFLOP/s (medians of interleaved runs), most where a layer has few panels (192 x 576: 136 -> 173);
- elsewhere oneDNN's fp32 GEMM, which torch also ships, on its own blocked layout: on the same host the
  layers' matmuls 103 -> 138 GFLOP/s over MKL, the output projection 99 -> 165, and packing saved it
  rearranging the weights at every call (576x576 at 76 rows 181 -> 208 GFLOP/s).
All of them multiply and accumulate in fp32 but sum in different orders (the panel GEMM one fused
multiply-add per input feature, in order), so logits differ in their last bits, as they already do
between machines, and greedy replies stay token-identical: tests/test_generate.py compares the decoder's
replies with `model.generate`'s, which keeps MKL.

The packed copies cost the layers' fp32 weights once more in memory, so they are made only where they fit
in `PACKED_MEMORY_SHARE` of the free memory.

Imported where a model generates and where the fp32 matmul ceiling is timed (`throughput.py`): it
imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import psutil
import torch

from harness.models.cpu_kernels import compiled_kernels, fp32_cpu

PACKED_MEMORY_SHARE = 0.25
"""Most of the machine's free memory the packed copies of the weights may take; past it the layers multiply
through oneDNN with their own weights (the same products as packed oneDNN, a little slower), or keep MKL's
where torch has no oneDNN."""

PANEL_WIDTH = 64
"""Output features per panel of the compiled GEMM's packed weights (`cpu_kernels.cpp`): four 16-float vectors."""


@contextmanager
def fast_linears(model: Any) -> Iterator[int]:
    """Within the block every plain `nn.Linear` of `model` with fp32 CPU weights multiplies fp32 inputs through the
    fastest kernel this machine has: the compiled panel GEMM (`panel_kernel`) where it is built and the packed
    copies fit, else oneDNN (on packed weights where they fit). Quantized and other subclassed layers keep their
    own forward, and under autocast (the bf16 opt-in) the layers run as autocast would run them. Yields how many
    layers it took over.

    The layers' `forward` is replaced on the instances and restored on the way out, so nothing outside the
    block, and no other model, sees a change; a layer whose instance already has its own `forward` (an
    enclosing block's, or a user's) is left as it is."""
    taken = [
        module for module in model.modules()
        if type(module) is torch.nn.Linear and "forward" not in vars(module)
        and fp32_cpu(module.weight) and (module.bias is None or fp32_cpu(module.bias))
    ]
    weights = {id(module.weight): module.weight for module in taken}
    fits = sum(weight.nbytes for weight in weights.values()) <= PACKED_MEMORY_SHARE * psutil.virtual_memory().available
    if fits and panel_kernel() is not None:
        panels = {key: panel_packed(weight) for key, weight in weights.items()}
        multiply = {id(module): partial(panel_linear, panels=panels[id(module.weight)], out_features=module.out_features) for module in taken}
    elif onednn_available():
        packed = {key: packed_weight(weight) for key, weight in weights.items()} if fits else weights
        multiply = {id(module): partial(onednn_linear, weight=packed[id(module.weight)]) for module in taken}
    else:
        taken = []
    for module in taken:
        module.forward = partial(_fast_linear, module, multiply[id(module)])
    try:
        yield len(taken)
    finally:
        for module in taken:
            del module.forward


def linear_gemm() -> str:
    """Which GEMM `fast_linears` multiplies with on this machine where the packed copies fit, for the benchmark's record."""
    if panel_kernel() is not None:
        return "panel GEMM"
    return "oneDNN" if onednn_available() else "MKL"


def panel_kernel() -> Any | None:
    """The compiled kernels where they carry the panel GEMM (built where the compiler targets AVX-512), else None."""
    kernels = compiled_kernels()
    return kernels if hasattr(kernels, "packed_linear") else None


def panel_packed(weight: torch.Tensor) -> torch.Tensor:
    """`weight` [out, in] as the panel GEMM takes it: [panels, in, 64], each panel 64 output features' weights
    interleaved by input feature, zero past the last feature."""
    out_features, in_features = weight.shape
    padded = torch.nn.functional.pad(weight.detach(), (0, 0, 0, -out_features % PANEL_WIDTH))
    return padded.view(padded.shape[0] // PANEL_WIDTH, PANEL_WIDTH, in_features).transpose(1, 2).contiguous()


def panel_linear(inputs: torch.Tensor, panels: torch.Tensor, bias: torch.Tensor | None, out_features: int) -> torch.Tensor:
    """`F.linear(inputs, weight, bias)` through the panel GEMM on `panel_packed(weight)`, inputs of any leading shape,
    where `panel_kernel()` has it."""
    flat = inputs.reshape(math.prod(inputs.shape[:-1]), inputs.shape[-1])
    return compiled_kernels().packed_linear(flat, panels, bias, out_features).view(*inputs.shape[:-1], out_features)


def onednn_available() -> bool:
    """Whether this torch has oneDNN's CPU kernels (x86 and aarch64 wheels do)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def onednn_linear(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear(inputs, weight, bias)` through oneDNN's GEMM (the op torch's own compiler emits for CPU linears)."""
    return torch.ops.mkldnn._linear_pointwise(inputs, weight, bias, "none", [], "")


def packed_weight(weight: torch.Tensor) -> torch.Tensor:
    """`weight` [out, in] copied into oneDNN's blocked layout for this CPU, which `onednn_linear` takes in its place."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)


def _fast_linear(module: torch.nn.Linear, multiply: Any, inputs: torch.Tensor) -> torch.Tensor:
    if not fp32_cpu(inputs) or torch.is_autocast_enabled("cpu"):
        return torch.nn.functional.linear(inputs, module.weight, module.bias)
    return multiply(inputs, bias=module.bias)
