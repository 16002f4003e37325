"""The suite runs the same way under `make test`, CI and a bare `pytest`: one BLAS thread unless overridden."""

from __future__ import annotations

import os


def test_torch_uses_the_thread_count_the_suite_sets():
    import torch

    assert "OMP_NUM_THREADS" in os.environ, "tests/conftest.py sets it before torch is imported"
    assert torch.get_num_threads() == int(os.environ["OMP_NUM_THREADS"])
