"""Resident memory of the loaded base, 8-bit vs fp32, each measured in a fresh process after one forward pass.

Run as `python -m benchmarks.memory int8|fp32`: prints one JSON line. "Resident" is VmRSS after
loading and one forward pass (so every weight page has been touched) minus VmRSS before loading
(the interpreter and the libraries loading imports), with freed heap returned to the system first.
"""

from __future__ import annotations

import ctypes
import gc
import json
import sys


def resident_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    return kib / 1024


def _release_freed_heap() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _import_loading_libraries() -> None:
    """Import what loading pulls in (bitsandbytes, the model's module) so the baseline holds their memory for both bases."""
    import bitsandbytes  # noqa: F401
    from transformers import BitsAndBytesConfig  # noqa: F401
    from transformers.models.llama import modeling_llama  # noqa: F401


def measure(precision: str) -> dict[str, float | str]:
    import torch

    from harness.config import ModelConfig
    from harness.models import convert_embedded, load_causal_lm

    model_dir = str(convert_embedded("smollm2-135m-instruct"))
    _import_loading_libraries()
    _release_freed_heap()
    before = resident_mb()
    model = load_causal_lm(model_dir, ModelConfig(), load_in_8bit=precision == "int8").eval()
    with torch.inference_mode():
        model(torch.randint(0, 1000, (1, 64)))
    _release_freed_heap()
    return {
        "base": precision,
        "resident_mb": resident_mb() - before,
        "footprint_mb": model.get_memory_footprint() / 2**20,
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
