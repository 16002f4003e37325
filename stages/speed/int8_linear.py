"""Training through a frozen LLM.int8 base on the CPU in the autocast dtype, as a full-precision base would be.

LoRA leaves the base frozen, but every base linear layer still passes the activation gradient back
to the adapters below it. On the CPU, bitsandbytes' training path (`MatMul8bitFp`) dequantizes the
int8 weight to the input's dtype, fp32 in this residual stream, and its backward pass runs outside
autocast, so under bf16 autocast an 8-bit base computes its input gradients in fp32 while an fp32
base computes them in bf16 (benchmarks/README.md: one 576x1536 layer's forward and backward took
7.8 ms that way vs 4.9 ms for an `nn.Linear`). `Int8AutocastMatmul` dequantizes straight to the compute dtype in both passes,
which is what an ordinary `nn.Linear` under autocast computes from the same weights. Evaluation
(`module.eval()`) and GPUs keep bitsandbytes' own int8 kernels.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch


def dequantize(int8_weight: torch.Tensor, row_scales: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """LLM.int8 row-wise dequantization (weight * absmax / 127) in fp32, as bitsandbytes computes it, then cast to `dtype`.

    Scaling in fp32 first is also the fast order on the CPU: an in-place bf16-by-fp32 multiply is
    about 20x slower than the fp32 multiply and cast together.
    """
    return int8_weight.to(torch.float32).mul_(row_scales.unsqueeze(1).mul(1.0 / 127.0)).to(dtype)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The CPU autocast dtype while autocast is on, else the input's own dtype."""
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype


class Int8AutocastMatmul(torch.autograd.Function):
    """x @ dequantize(W).T (+ bias) with the weight frozen; the input gradient in the same dtype as the forward.

    The backward pass dequantizes again instead of keeping the forward's copy, so that between the two
    passes the base stays int8 in memory, which is what `model.load_in_8bit` is chosen for.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, int8_weight: torch.Tensor, row_scales: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        dtype = compute_dtype(x)
        ctx.save_for_backward(int8_weight, row_scales)
        ctx.dtypes = (dtype, x.dtype, None if bias is None else bias.dtype)
        weight = dequantize(int8_weight, row_scales, dtype)
        return torch.nn.functional.linear(x.to(dtype), weight, None if bias is None else bias.to(dtype))

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None, None, torch.Tensor | None]:
        int8_weight, row_scales = ctx.saved_tensors
        dtype, input_dtype, bias_dtype = ctx.dtypes
        grad_input = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = (grad_output.to(dtype) @ dequantize(int8_weight, row_scales, dtype)).to(input_dtype)
        if ctx.needs_input_grad[3]:
            grad_bias = grad_output.reshape(-1, grad_output.shape[-1]).sum(0, dtype=bias_dtype)
        return grad_input, None, None, grad_bias


def _forward(module: Any, bitsandbytes_forward: Any, x: torch.Tensor) -> torch.Tensor:
    if not module.training or x.device.type != "cpu":
        return bitsandbytes_forward(x)
    if module.weight.CB is not None:
        module.init_8bit_state()
    return Int8AutocastMatmul.apply(x, module.state.CB, module.state.SCB, module.bias)


def train_int8_in_autocast_dtype(model: Any) -> int:
    """Route the training forward of every frozen bitsandbytes int8 linear layer through `Int8AutocastMatmul`.

    Returns how many layers were rerouted (0 for a model without int8 layers).
    """
    from bitsandbytes.nn import Linear8bitLt

    rerouted = 0
    for module in model.modules():
        if isinstance(module, Linear8bitLt) and not module.state.has_fp16_weights:
            module.forward = partial(_forward, module, module.forward)
            rerouted += 1
    return rerouted
