"""A model's fp32 linear layers through oneDNN's GEMM instead of MKL's while it decodes on the CPU.

torch sends an fp32 `F.linear` on the CPU to MKL's sgemm. For a decode step's shapes (a few dozen rows
against weights streamed from memory) oneDNN's fp32 GEMM, which torch also ships, was faster on the
AVX-512 AMD host of benchmarks/README.md: the 30 layers' matmuls at 76 rows 103 -> 138 GFLOP/s, the
output projection 99 -> 165, the 2048-square product 177 -> 214. Both multiply and accumulate in fp32;
they sum in different orders, so logits differ in their last bits (about 1e-7 relative), as they already
do between machines, and greedy replies stay token-identical: tests/test_generate.py compares the
decoder's replies with `model.generate`'s, which keeps MKL.

Imported where a model generates and where the fp32 matmul ceiling is timed (`throughput.py`): it
imports torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch


def onednn_available() -> bool:
    """Whether this torch has oneDNN's CPU kernels (x86 and aarch64 wheels do)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


@contextmanager
def onednn_linears(model: Any) -> Iterator[int]:
    """Within the block every plain `nn.Linear` of `model` with fp32 CPU weights multiplies fp32 inputs through
    oneDNN; quantized and other subclassed layers keep their own forward, and under autocast (the bf16 opt-in)
    the layers run as autocast would run them. Yields how many layers it took over.

    The layers' `forward` is replaced on the instances and restored on the way out, so nothing outside the
    block, and no other model, sees a change; a layer whose instance already has its own `forward` (an
    enclosing block's, or a user's) is left as it is."""
    taken = [
        module for module in model.modules()
        if type(module) is torch.nn.Linear and "forward" not in vars(module)
        and _fp32_cpu(module.weight) and (module.bias is None or _fp32_cpu(module.bias))
    ] if onednn_available() else []
    for module in taken:
        module.forward = partial(_onednn_linear, module)
    try:
        yield len(taken)
    finally:
        for module in taken:
            del module.forward


def onednn_linear(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear(inputs, weight, bias)` through oneDNN's GEMM (the op torch's own compiler emits for CPU linears)."""
    return torch.ops.mkldnn._linear_pointwise(inputs, weight, bias, "none", [], "")


def _onednn_linear(module: torch.nn.Linear, inputs: torch.Tensor) -> torch.Tensor:
    if not _fp32_cpu(inputs) or torch.is_autocast_enabled("cpu"):
        return torch.nn.functional.linear(inputs, module.weight, module.bias)
    return onednn_linear(inputs, module.weight, module.bias)


def _fp32_cpu(tensor: torch.Tensor) -> bool:
    return tensor.dtype == torch.float32 and tensor.device.type == "cpu" and tensor.layout == torch.strided
