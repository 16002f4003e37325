"""The machine's measured matmul ceiling per dtype (the roofline training is compared with) and its description."""

from __future__ import annotations

import platform
import statistics
import time
from typing import Any

ROOFLINE_REPEATS = 20
"""Timed matmuls per dtype: enough that a moment of other load on the machine does not move the median."""


def matmul_gflops(dtype_name: str, *, size: int = 2048, repeats: int = ROOFLINE_REPEATS) -> float:
    """Median GFLOP/s of a `size`-square matmul in `dtype_name` ("float32" or "bfloat16") on the CPU."""
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.matmul(a, b)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(a, b)
        seconds.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(seconds) / 1e9


def cpu_flags() -> list[str]:
    """The SIMD flags that decide matmul speed (AVX2/AVX-512/BF16/AMX), from /proc/cpuinfo where it exists."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "fma")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return []
    return [flag for flag in wanted if flag in flags]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            return next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), platform.processor())
    except OSError:
        return platform.processor()


def describe_machine() -> dict[str, Any]:
    import torch

    from harness.core.environment import library_versions

    return {
        "cpu": cpu_model(),
        "cores": torch.get_num_threads(),
        "flags": cpu_flags(),
        "versions": library_versions(),
    }
