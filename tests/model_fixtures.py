"""Fixtures that need a real model: the embedded SmolLM2, converted once per machine into the cache.

Loaded as a pytest plugin (see `addopts` in pyproject.toml) so every test module can use them.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedded_model_dir():
    """Path of the converted SmolLM2-135M-Instruct safetensors directory."""
    from harness.models.loading import convert_embedded

    return convert_embedded("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def embedded_tokenizer(embedded_model_dir):
    from harness.run.config import ModelConfig
    from harness.models.loading import load_tokenizer

    return load_tokenizer(str(embedded_model_dir), ModelConfig())
