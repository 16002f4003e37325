"""A model's fp32 linear layers through oneDNN's GEMM instead of MKL's while it decodes on the CPU.

torch sends an fp32 `F.linear` on the CPU to MKL's sgemm. For a decode step's shapes (a few dozen rows
against weights streamed from memory) oneDNN's fp32 GEMM, which torch also ships, was faster on the
AVX-512 AMD host of benchmarks/README.md: the 30 layers' matmuls at 76 rows 103 -> 138 GFLOP/s, the
output projection 99 -> 165, the 2048-square product 177 -> 214. Both multiply and accumulate in fp32;
they sum in different orders, so logits differ in their last bits (about 1e-7 relative), as they already
do between machines, and greedy replies stay token-identical: tests/test_generate.py compares the
decoder's replies with `model.generate`'s, which keeps MKL.

For the block the weights are also copied once into oneDNN's own blocked layout, which saves the GEMM
rearranging them at every call: on the same host 576x576 at 76 rows 181 -> 208 GFLOP/s, the output
projection 176 -> 203, more at fewer rows (at 12: 84 -> 134), products equal to the unpacked call's bit
for bit; whole decodes of the 76 safety prompts 1.01-1.10x faster (four pairs). The copies cost the
layers' fp32 weights once more in memory, so they are made only where they fit in `PACKED_MEMORY_SHARE`
of the free memory.

Imported where a model generates and where the fp32 matmul ceiling is timed (`throughput.py`): it
imports torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import psutil
import torch

from harness.models.cpu_kernels import fp32_cpu

PACKED_MEMORY_SHARE = 0.25
"""Most of the machine's free memory the packed copies of the weights may take; past it the layers
multiply with their own weights (the same products, a little slower)."""


def onednn_available() -> bool:
    """Whether this torch has oneDNN's CPU kernels (x86 and aarch64 wheels do)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


@contextmanager
def onednn_linears(model: Any) -> Iterator[int]:
    """Within the block every plain `nn.Linear` of `model` with fp32 CPU weights multiplies fp32 inputs through
    oneDNN, with its weights packed in oneDNN's layout where they fit; quantized and other subclassed layers
    keep their own forward, and under autocast (the bf16 opt-in) the layers run as autocast would run them.
    Yields how many layers it took over.

    The layers' `forward` is replaced on the instances and restored on the way out, so nothing outside the
    block, and no other model, sees a change; a layer whose instance already has its own `forward` (an
    enclosing block's, or a user's) is left as it is."""
    taken = [
        module for module in model.modules()
        if type(module) is torch.nn.Linear and "forward" not in vars(module)
        and fp32_cpu(module.weight) and (module.bias is None or fp32_cpu(module.bias))
    ] if onednn_available() else []
    weights = {id(module.weight): module.weight for module in taken}
    fits = sum(weight.nbytes for weight in weights.values()) <= PACKED_MEMORY_SHARE * psutil.virtual_memory().available
    packed = {key: packed_weight(weight) for key, weight in weights.items()} if fits else {}
    for module in taken:
        module.forward = partial(_onednn_linear, module, packed.get(id(module.weight), module.weight))
    try:
        yield len(taken)
    finally:
        for module in taken:
            del module.forward


def onednn_linear(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear(inputs, weight, bias)` through oneDNN's GEMM (the op torch's own compiler emits for CPU linears)."""
    return torch.ops.mkldnn._linear_pointwise(inputs, weight, bias, "none", [], "")


def packed_weight(weight: torch.Tensor) -> torch.Tensor:
    """`weight` [out, in] copied into oneDNN's blocked layout for this CPU, which `onednn_linear` takes in its place."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)


def _onednn_linear(module: torch.nn.Linear, weight: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    if not fp32_cpu(inputs) or torch.is_autocast_enabled("cpu"):
        return torch.nn.functional.linear(inputs, module.weight, module.bias)
    return onednn_linear(inputs, weight, module.bias)
