"""The manifest every checkpoint directory carries: its lineage, inputs and training history.

A checkpoint directory is complete exactly when `manifest.json` exists in it (the stage writes it
last, inside a temporary directory that is renamed into place).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from harness.run.layout import MANIFEST_FILE
from harness.run.schema import VersionedRecord


class LossPoint(BaseModel):
    step: int
    loss: float
    epoch: float | None = None


TRAINING_RTOL = 1e-6
"""Relative tolerance promised for training-based numbers (loss curves, held-out perplexity and
bits/byte of trained arms) when a run is repeated with the same config, seed, machine and library
versions. Measured on the CPU dev machine (tiny config, 1 and 2 torch threads): bit-identical."""

REPRODUCIBILITY = (
    "same config, seed, machine and library versions: greedy replies and every metric computed from them "
    f"identical; training-based numbers (losses, perplexity of trained arms) equal within relative {TRAINING_RTOL:g} "
    "(measured bit-identical on CPU with 1 and 2 torch threads); on other hardware or GPU kernels the last digits "
    "of training may change and, through them, greedy replies of trained arms"
)


class Determinism(BaseModel):
    """What a repeat of this run must keep equal to reproduce its numbers, and how closely they will match."""

    seed: int
    deterministic_algorithms: bool
    """`torch.are_deterministic_algorithms_enabled()` when the record was made."""
    torch_threads: int
    promise: str = REPRODUCIBILITY

    @classmethod
    def current(cls, seed: int) -> Determinism:
        import torch

        return cls(
            seed=seed,
            deterministic_algorithms=torch.are_deterministic_algorithms_enabled(),
            torch_threads=torch.get_num_threads(),
        )


class Manifest(VersionedRecord):
    """Saved as `manifest.json` in its checkpoint directory; `save` and `load` take that directory."""

    arm: str
    """`base` or the arm's name in the lineage table."""
    stage: str | None
    """`domain` or `instruct`; None for `base`, which is a reference without weights."""
    parent: str | None
    """The arm whose merged weights this adapter was trained on; None when trained on the base."""
    base_model: str
    """The model ref from the config (alias, hub id or directory)."""
    base_fingerprint: str
    """Hash of the resolved base weights, so an adapter is never applied to another base."""
    start_fingerprint: str | None = None
    """Hash of the weights the adapter was trained on (the base, or the parent's merged model)."""
    adapter_fingerprint: str | None = None
    lora: dict[str, Any] = {}
    trainable_params: int = 0
    total_params: int = 0
    config_hash: str
    """Hash of every config section that changes this stage's result (resume key, with the data fingerprints)."""
    data_fingerprints: dict[str, str] = {}
    seed: int
    determinism: Determinism | None = None
    versions: dict[str, str] = {}
    hardware: dict[str, Any] = {}
    wall_time_s: float = 0.0
    peak_rss_mb: float = 0.0
    train_tokens: int = 0
    tokens_per_s: float = 0.0
    bf16_autocast: bool = False
    load_in_8bit: bool = True
    quantization: str | None = None
    """`int8`, `nf4` or `none`: how the frozen base was held while training (None in older manifests)."""
    train_loss: list[LossPoint] = []
    eval_loss: list[LossPoint] = []
    """Held-out loss per epoch; the first point (step 0) is the starting model's."""
    created: str = ""

    def save(self, directory: Path) -> None:
        super().save(Path(directory) / MANIFEST_FILE)

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        return super().load(Path(directory) / MANIFEST_FILE)

