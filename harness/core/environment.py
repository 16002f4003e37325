"""What a run ran on: library versions, hardware, and peak memory, for manifests and run.json.

A loss curve or a tokens/s figure means little without the versions and the machine behind it, so
every checkpoint records them next to its numbers.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
import sys
from typing import Any

_VERSIONED = ("harness", "torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate", "datasets", "lm_eval", "rouge-score", "bert-score", "pypdf")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that change a training result (absent ones are left out)."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if name == "harness":
                from harness import __version__

                versions[name] = __version__
    return versions


def hardware() -> dict[str, Any]:
    """Host, CPU count, platform, torch threads, the GPUs this process may see (`CUDA_VISIBLE_DEVICES`, as a
    Ray task or a scheduler set it; None when unset), and the CUDA device with its peak allocation when there is one."""
    import torch

    info: dict[str, Any] = {
        "host": platform.node(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_device": None,
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
        info["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return info


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 2**10, 1)
