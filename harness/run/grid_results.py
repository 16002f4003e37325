"""`RUN_DIR/grid.json`: what a grid run found, per contrast, grid point and metric, over seeds and items (typed).

Written by `harness.evals.grid_stats` from the per-sample logs; read by the report's grid view.
"""

from __future__ import annotations

from pydantic import BaseModel

from harness.run.results import MetricPresentation
from harness.run.schema import VersionedRecord


class SeededValue(BaseModel):
    value: float
    """Mean over replicates (seeds, or points x seeds for a main effect) of the metric or paired delta."""
    ci_low: float
    ci_high: float
    p_value: float | None
    """Against 0, for deltas; None for a metric's own value."""
    seed_sd: float
    """SD of the per-replicate deltas: training randomness (and, for a main effect, the other axes)."""
    item_ci_low: float
    item_ci_high: float
    """The interval from item resampling alone, which ignores training randomness."""
    n_replicates: int
    n_items: int
    per_replicate: list[float]


class ArmValue(BaseModel):
    """A table arm's metric at one grid point: the mean over seeds, with its seeds x items interval."""

    arm: str
    point: str
    metric: str
    value: SeededValue


class GridCell(BaseModel):
    arm: str
    reference: str
    label: str
    point: str
    metric: str
    delta: SeededValue


class MainEffect(BaseModel):
    arm: str
    reference: str
    label: str
    axis: str
    value: str
    metric: str
    delta: SeededValue


class PointInfo(BaseModel):
    id: str
    label: str
    axes: dict[str, str]


class GridResult(VersionedRecord):
    points: list[PointInfo]
    seeds: list[int]
    arm_values: list[ArmValue] = []
    cells: list[GridCell]
    main_effects: list[MainEffect]
    presentation: dict[str, MetricPresentation]
    higher_is_better: dict[str, bool | None]
