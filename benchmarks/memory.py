"""Resident memory of the loaded base, 8-bit vs fp32, each measured in a fresh process.

Run as `python -m benchmarks.memory int8|fp32`: prints one JSON line. Each figure is the growth of
VmRSS over loading the base and running one forward pass (so every weight page is touched), with
freed heap returned to the system before each reading. `first_load_mb` is that growth the first
time in the process: it also holds one-time costs of the process (modules imported lazily while
loading, kernel and thread-pool set-up; about 110 MB here, the same for both bases). `resident_mb`
is the growth of a second load after the first model is deleted: the base's own memory.
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


def _load_and_run(model_dir: str, precision: str):
    import torch

    from harness.run.config import ModelConfig
    from harness.models.loading import load_causal_lm

    model = load_causal_lm(model_dir, ModelConfig(), quantization=precision).eval()
    with torch.inference_mode():
        model(torch.randint(0, 1000, (1, 64)))
    return model


def measure(precision: str) -> dict[str, float | str]:
    from harness.models.loading import convert_embedded

    model_dir = str(convert_embedded("smollm2-135m-instruct"))
    _import_loading_libraries()
    _release_freed_heap()
    before = resident_mb()
    model = _load_and_run(model_dir, precision)
    _release_freed_heap()
    first_load = resident_mb() - before
    del model
    _release_freed_heap()
    before = resident_mb()
    model = _load_and_run(model_dir, precision)
    _release_freed_heap()
    return {
        "base": precision,
        "first_load_mb": first_load,
        "resident_mb": resident_mb() - before,
        "footprint_mb": model.get_memory_footprint() / 2**20,
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
