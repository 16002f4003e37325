"""The machine's description for a benchmark record (its matmul ceiling: `harness.models.throughput`)."""

from __future__ import annotations

import platform
from typing import Any


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
