"""The manifest every checkpoint directory carries: its lineage, inputs and training history.

Built here alone: the pipeline knows where a checkpoint comes from (`CheckpointOrigin`), the stage
returns what it measured (`TrainingRecord`), and `stage_manifest` / `base_manifest` turn them into a
`Manifest`. A checkpoint directory is complete exactly when `manifest.json` exists in it (written
last, inside a temporary directory that is renamed into place).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from harness.core.environment import hardware, library_versions
from harness.run.config import HarnessConfig, config_hash
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
    training_data: list[str] = []
    """What the stage trained on by name and content hash, `NAME@sha256:HASH` (a file name, or a hub id with
    the hash of its rows); empty in manifests written before it was recorded."""
    training: dict[str, Any] = {}
    """The stage's training settings as this arm trained with them (epochs, learning rate, batch, ...)."""
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


class CheckpointOrigin(BaseModel):
    """Where a stage's checkpoint comes from, known before it trains: lineage, inputs and resume key."""

    arm: str
    stage: str
    parent: str | None
    base_model: str
    base_fingerprint: str
    start_fingerprint: str
    config_hash: str
    data_fingerprints: dict[str, str]
    training_data: list[str]
    """What the stage trains on by name and content hash (`harness.data.run_data.RunData.stage_sources`)."""
    seed: int


class TrainingRecord(BaseModel):
    """What a stage measured while it trained; the stage returns it and `stage_manifest` files it."""

    trainable_params: int
    total_params: int
    wall_time_s: float
    peak_rss_mb: float
    train_tokens: int
    tokens_per_s: float
    bf16_autocast: bool
    world_size: int
    train_loss: list[LossPoint]
    eval_loss: list[LossPoint]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def training_settings(config: HarnessConfig, stage: str) -> dict[str, Any]:
    """The stage's training settings as its manifest records them: a domain stage's windows are `data.domain`'s,
    and its `training.domain.max_length` (the SFT example limit) does not apply to it."""
    settings = getattr(config.training, stage).model_dump(mode="json")
    if stage == "domain":
        del settings["max_length"]
        settings.update(window_tokens=config.data.domain.max_length, window_stride=config.data.domain.stride)
    return settings


def stage_manifest(origin: CheckpointOrigin, config: HarnessConfig, record: TrainingRecord, adapter_fingerprint: str | None) -> Manifest:
    """The manifest of a trained checkpoint; `config` is the arm's own (its overrides applied)."""
    return Manifest(
        **origin.model_dump(),
        determinism=Determinism.current(origin.seed),
        adapter_fingerprint=adapter_fingerprint,
        lora=config.lora.model_dump(mode="json"),
        training=training_settings(config, origin.stage),
        versions=library_versions(),
        hardware={**hardware(), "world_size": record.world_size},
        load_in_8bit=config.model.load_in_8bit,
        quantization=config.model.quantization,
        created=_now(),
        **record.model_dump(exclude={"world_size"}),
    )


def base_manifest(config: HarnessConfig, base_fingerprint: str, data_fingerprints: dict[str, str]) -> Manifest:
    """The manifest of `base`: a reference without weights of its own, recording the run's base and data."""
    return Manifest(
        arm="base",
        stage=None,
        parent=None,
        base_model=config.model.name,
        base_fingerprint=base_fingerprint,
        config_hash=config_hash(config.model.model_dump(mode="json")),
        data_fingerprints=data_fingerprints,
        seed=config.seed,
        determinism=Determinism.current(config.seed),
        load_in_8bit=config.model.load_in_8bit,
        quantization=config.model.quantization,
        created=_now(),
    )
