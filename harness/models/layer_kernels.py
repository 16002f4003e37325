"""A Llama-style model's RMSNorms and rotary embeddings through the compiled CPU kernels while it decodes.

transformers computes an RMSNorm as six small ops and a rotary embedding as a dozen, once per layer and
step. At a decode step's few dozen rows each op costs more in dispatch and passes over memory than in
arithmetic: on the AVX-512 AMD host of benchmarks/README.md the 61 norms of SmolLM2 took 5% of a
72-row decode step and the 30 rotary embeddings about 3%, where one kernel call each takes a fifth of
the time. The rotary kernel rounds exactly as transformers' ops do (bit-identical outputs); the norm sums
its squares in another order than ATen's mean, so outputs differ in their last bits (about 3e-7
relative), as they already do between machines, and greedy replies stay token-identical
(tests/test_generate.py compares the decoder's replies with `model.generate`'s, which keeps torch's ops).

A layer is taken over only where the kernel computes what its own code computes: each norm, and each
modeling module's `apply_rotary_pos_emb`, is checked on a random input when the block is entered, so a
variant (a norm scaled by 1 + weight, an interleaved rotary) keeps its own code. Calls the kernels do not
cover (other dtypes and devices, a rotary over part of the head) go to the original code.

Imported where a model generates: it imports torch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from types import ModuleType
from typing import Any

import torch

from harness.models.cpu_kernels import compiled_kernels, fp32_cpu

NORM_PROBE_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
"""How close a norm's own output and the kernel's must be on the probe for the kernel to take it over: the
kernel's sum of squares differs from ATen's mean in order only (measured differences at most 3.4e-7 relative)."""


@contextmanager
def kernel_norms_and_rotary(model: Any) -> Iterator[int]:
    """Within the block `model`'s RMSNorms and its modeling modules' rotary embeddings run through the compiled
    kernels, where the model is on the CPU, the kernels build and each passes its check. Yields how many norms and
    modules it took over; everything is restored on the way out."""
    kernels = compiled_kernels() if model.device.type == "cpu" else None
    with ExitStack() as stack:
        taken = 0
        if kernels is not None:
            for module in model.modules():
                if _computes_rms_norm(module, kernels):
                    module.forward = partial(_rms_norm, kernels, module)
                    stack.callback(delattr, module, "forward")
                    taken += 1
            for modeling in {sys.modules[type(module).__module__] for module in model.modules()}:
                original = getattr(modeling, "apply_rotary_pos_emb", None)
                if callable(original) and _computes_rotary(original, kernels):
                    modeling.apply_rotary_pos_emb = partial(_rotary, kernels, original)
                    stack.callback(setattr, modeling, "apply_rotary_pos_emb", original)
                    taken += 1
        yield taken


def _computes_rms_norm(module: torch.nn.Module, kernels: ModuleType) -> bool:
    weight, epsilon = getattr(module, "weight", None), getattr(module, "variance_epsilon", None)
    if not (isinstance(weight, torch.Tensor) and weight.dim() == 1 and fp32_cpu(weight) and isinstance(epsilon, float)):
        return False
    if "forward" in vars(module):
        return False
    probe = torch.randn(3, weight.shape[0], generator=torch.Generator().manual_seed(0))
    try:
        with torch.inference_mode():
            own = type(module).forward(module, probe)
            return own.shape == probe.shape and torch.allclose(own, kernels.rms_norm(probe, weight, epsilon), **NORM_PROBE_TOLERANCE)
    except Exception:  # noqa: BLE001 -- a forward that cannot take the probe is a variant: it keeps its code
        return False


def _rms_norm(kernels: ModuleType, module: torch.nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    if not fp32_cpu(hidden_states) or torch.is_autocast_enabled("cpu"):
        return type(module).forward(module, hidden_states)
    return kernels.rms_norm(hidden_states, module.weight, module.variance_epsilon)


def _computes_rotary(original: Callable[..., Any], kernels: ModuleType) -> bool:
    if isinstance(original, partial) and original.func is _rotary:
        return False
    generator = torch.Generator().manual_seed(0)
    query, key = torch.randn(2, 3, 4, 64, generator=generator), torch.randn(2, 1, 4, 64, generator=generator)
    cos, sin = torch.randn(2, 4, 64, generator=generator), torch.randn(2, 4, 64, generator=generator)
    try:
        own_query, own_key = original(query, key, cos, sin)
    except Exception:  # noqa: BLE001 -- a signature of its own is a variant: it keeps its code
        return False
    return torch.equal(own_query, kernels.rotary(query, cos, sin)) and torch.equal(own_key, kernels.rotary(key, cos, sin))


def _rotary(
    kernels: ModuleType, original: Callable[..., Any], query: torch.Tensor, key: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
    *args: Any, **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`apply_rotary_pos_emb(q, k, cos, sin)` with cos and sin unsqueezed at dim 1, the call every Llama-style
    attention makes; any other call goes to the original."""
    default_layout = not args and set(kwargs) <= {"unsqueeze_dim"} and kwargs.get("unsqueeze_dim", 1) == 1
    tensors = (query, key, cos, sin)
    fits = (
        default_layout and query.dim() == key.dim() == 4 and cos.dim() == 3 and cos.shape == sin.shape
        and all(fp32_cpu(tensor) and tensor.stride(-1) == 1 for tensor in tensors)
        and query.shape[-1] == key.shape[-1] == cos.shape[-1] and query.shape[-1] % 2 == 0
        and (query.shape[0], query.shape[2]) == (key.shape[0], key.shape[2]) == tuple(cos.shape[:2])
    )
    if not fits or torch.is_autocast_enabled("cpu"):
        return original(query, key, cos, sin, *args, **kwargs)
    return kernels.rotary(query, cos, sin), kernels.rotary(key, cos, sin)
