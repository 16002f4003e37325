"""CPU training keeps freed memory in the heap, so the next micro-batch does not fault it back in."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
from harness.stages.speed.cpu_heap import keep_freed_memory_in_heap

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc.mallinfo2.restype = Mallinfo2

def probe():
    '''(a 40 MB block came from a fresh mapping, heap bytes still held after freeing it)'''
    mapped_before = libc.mallinfo2().hblks
    block = libc.malloc(40 << 20)
    mapped = libc.mallinfo2().hblks > mapped_before
    libc.free(block)
    return mapped, libc.mallinfo2().arena

mapped, _ = probe()
applied = keep_freed_memory_in_heap()
heap_mapped, heap_after_free = probe()
print(mapped, applied, heap_mapped, heap_after_free >= 40 << 20)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_a_freed_block_stays_in_the_heap_for_the_next_allocation():
    # A separate process: the setting is process-wide and cannot be undone.
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    mapped, applied, heap_mapped, kept = result.stdout.split()
    assert (mapped, applied) == ("True", "True"), "by default glibc maps a 40 MB block afresh"
    assert (heap_mapped, kept) == ("False", "True"), "after the setting it comes from the heap, which keeps it when freed"


def test_loading_the_stage_model_on_the_cpu_applies_the_setting(embedded_model_dir, monkeypatch):
    from harness.run.config import HarnessConfig
    from harness.stages import lora_model, speed

    calls = []
    monkeypatch.setattr(speed, "keep_freed_memory_in_heap", lambda: calls.append(True))
    config = HarnessConfig.model_validate(
        {
            "model": {"load_in_8bit": False},
            "data": {"domain": {"pdf": "unused.pdf"}, "counseling": {"path": "unused.csv"}, "safety": {"sources": []}},
        }
    )
    lora_model.load_lora_model(config, str(embedded_model_dir))
    assert calls == [True]
