"""The manifest every checkpoint directory carries: its lineage, inputs and training history.

A checkpoint directory is complete exactly when `manifest.json` exists in it (the stage writes it
last, inside a temporary directory that is renamed into place).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from harness.atomic import atomic_write_text

MANIFEST_NAME = "manifest.json"


class LossPoint(BaseModel):
    step: int
    loss: float
    epoch: float | None = None


class Manifest(BaseModel):
    arm: str
    """`base`, `domain`, `instruct` or `instruct-only`."""
    stage: str | None
    """`domain` or `instruct`; None for `base`, which is a reference without weights."""
    parent: str | None
    """The arm whose merged weights this adapter was trained on; None when trained on the base."""
    base_model: str
    """The model ref from the config (alias, hub id or directory)."""
    base_fingerprint: str
    """Hash of the resolved base weights, so an adapter is never applied to another base."""
    adapter_fingerprint: str | None = None
    lora: dict[str, Any] = {}
    trainable_params: int = 0
    total_params: int = 0
    config_hash: str
    """Hash of every config section that changes this stage's result (resume key, with the data fingerprints)."""
    data_fingerprints: dict[str, str] = {}
    seed: int
    versions: dict[str, str] = {}
    hardware: dict[str, Any] = {}
    wall_time_s: float = 0.0
    peak_rss_mb: float = 0.0
    train_tokens: int = 0
    tokens_per_s: float = 0.0
    bf16_autocast: bool = False
    load_in_8bit: bool = True
    train_loss: list[LossPoint] = []
    eval_loss: list[LossPoint] = []
    """Held-out loss per epoch; the first point (step 0) is the starting model's."""
    created: str = ""

    def save(self, directory: Path) -> None:
        atomic_write_text(Path(directory) / MANIFEST_NAME, self.model_dump_json(indent=2))

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        return cls.model_validate_json((Path(directory) / MANIFEST_NAME).read_text(encoding="utf-8"))
