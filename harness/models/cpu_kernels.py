"""The decoder's small fp32 CPU kernels (`cpu_kernels.cpp`), compiled for this machine at first use.

A decode step on the CPU is a few dozen rows against weights streamed from memory; between the linear
layers torch runs dozens of small ops per layer, each paying its own dispatch and pass over memory. Four
of them are worth a kernel of their own:
- grouped-query attention over the KV cache (`attention_kernel.py` says why);
- the RMSNorm and rotary embedding of Llama-style models (`layer_kernels.py`);
- the greedy argmax over the vocabulary: ATen's took 1.5-3 ms on 72 x 49152 logits, this one about 0.55 ms.
So are the linear layers themselves, on AVX-512 machines (a GEMM for a few dozen rows, `linear_kernel.py`).

They are compiled with torch's C++ extension loader (a C++ compiler and ninja; about 30 s once, then
cached under a name that carries the CPU's flags and torch's version), with `-ffp-contract=off` so each
rounds exactly as its source says (the GEMM's fused multiply-adds are spelled out). Where they cannot be built, decoding keeps torch's own ops and says so
once.

Imported where a model generates: it imports torch.
"""

from __future__ import annotations

import functools
import hashlib
import platform
from pathlib import Path
from types import ModuleType

import torch

from harness.core.console import console

SOURCE = Path(__file__).with_name("cpu_kernels.cpp")
COMPILER_FLAGS = ("-O3", "-march=native", "-fopenmp", "-ffp-contract=off")
"""-fopenmp makes ATen's parallel_for split work over the cores (without it a kernel runs on one);
-ffp-contract=off keeps a*b + c*d two roundings, as torch's element-wise ops do, not one fused multiply-add."""


@functools.cache
def compiled_kernels() -> ModuleType | None:
    """The kernels built for this CPU and torch (or loaded from the build cache), or None where they cannot be built."""
    from torch.utils.cpp_extension import load

    try:
        return load(name=f"harness_cpu_kernels_{_build_key()}", sources=[str(SOURCE)], extra_cflags=list(COMPILER_FLAGS), verbose=False)
    except Exception as error:  # noqa: BLE001 -- any build failure leaves torch's ops in place
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        console.log(f"[yellow]CPU decode kernels not built ({first_line}); decoding keeps torch's own ops[/yellow]")
        return None


def greedy_tokens(logits: torch.Tensor) -> torch.Tensor:
    """Each row's argmax of fp32 `logits` [rows, vocabulary], as `torch.argmax` picks it (the first of equal
    largest values; a NaN counts as largest), through the kernel where it is built and the logits are on the CPU."""
    kernels = compiled_kernels() if fp32_cpu(logits) else None
    return logits.argmax(-1) if kernels is None else kernels.greedy_tokens(logits)


def fp32_cpu(tensor: torch.Tensor) -> bool:
    """Whether `tensor` is what the CPU kernels (and oneDNN's fp32 GEMM) take: fp32, on the CPU, strided."""
    return tensor.dtype == torch.float32 and tensor.device.type == "cpu" and tensor.layout == torch.strided


def _build_key() -> str:
    """A digest of what the binary depends on besides its source: the CPU's instruction sets and torch's version."""
    cpu = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu += next((line for line in cpuinfo.read_text().splitlines() if line.startswith(("flags", "Features"))), "")
    return hashlib.sha256(f"{cpu}|{torch.__version__}".encode()).hexdigest()[:12]
