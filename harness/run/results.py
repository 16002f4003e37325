"""Typed results: the single source of truth for the CLI summary, the statistics and the reports.

A results file (`RUN_DIR/results/<checkpoint>.json`) is an `EvalResult`; a per-sample log
(`RUN_DIR/samples/<checkpoint>/<eval>.jsonl`) holds one `SampleRecord` per line. Reports read these
objects and never re-derive numbers from anything else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import BaseModel, Field

from harness.core.atomic import atomic_write_text
from harness.run.schema import VersionedRecord

Aggregation = Literal["mean", "exp_ratio", "ratio", "sum"]
"""How per-item (value, weight) pairs become one number:
`mean` sum(v)/n; `ratio` sum(v)/sum(w); `exp_ratio` exp(sum(v)/sum(w)) (perplexity); `sum` sum(v) (counts)."""


class MetricValue(BaseModel):
    value: float
    ci_low: float
    ci_high: float
    n: int
    """Items the metric was computed over (the unit the bootstrap resamples)."""
    higher_is_better: bool | None
    """None for descriptive counts where neither direction is a goal."""
    capped_share: float | None = None
    """Share of the items whose generated reply was cut at the token cap (None when nothing was generated):
    a rate from cut replies could still change with more tokens."""


class MetricPresentation(BaseModel):
    """How a metric is shown and what it was measured on, declared with the metric by its eval and saved with every result.

    Reports read this instead of knowing any eval: a new eval's metrics appear in the summary, the
    deltas, the charts and the verdict as their registration describes them.
    """

    label: str
    decimals: int = 3
    unit: Literal["plain", "percent", "count"] = "plain"
    """`percent`: a stored fraction shown as % (deltas in percentage points); `count`: a whole number."""
    section: str = "Other metrics"
    """The report group it is listed under (e.g. "Domain text", "Counseling replies", "Safety")."""
    verdict: Literal["headline", "when_significant", "when_nonzero"] | None = None
    """`headline`: stated for every contrast that trains `headline_stage`; `when_significant`: stated against base
    only when p < 0.05; `when_nonzero`: each checkpoint's value listed when any is not zero."""
    headline_stage: Literal["domain", "instruct"] | None = None
    worst_value: float | None = None
    """A value that, reached by every checkpoint, the verdict states as such (no delta would show it)."""
    findings_need_whole_replies: bool = False
    """The verdict states no finding from this metric while many of its replies were cut at the token cap
    (`harness.reports.verdict.CAPPED_SHARE_LIMIT`): a refusal or a referral could still come with more tokens."""
    dataset: str | None = None
    """The data fingerprint key of the items it is measured on (`domain_split`, ...), from its eval's spec."""

    @property
    def percent(self) -> bool:
        return self.unit == "percent"


class Delta(BaseModel):
    """A checkpoint's metric minus a reference checkpoint's, paired over the same items."""

    reference: str
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    """`paired_bootstrap`, `permutation` or `mcnemar_exact`."""
    n: int


class CheckpointSummary(BaseModel):
    name: str
    arm: str
    """`base`, an arm of the lineage table, or `external` for refs outside a run."""
    parent: str | None = None
    base_model: str
    path: str | None = None
    fingerprint: str
    """Hash of base weights + adapter weights: two checkpoints with the same fingerprint answer alike."""


class EvalInfo(BaseModel):
    """What one eval of the suite ran on and how long it took."""

    n_items: int
    wall_time_s: float
    samples_file: str | None = None
    details: dict[str, Any] = {}
    """Eval-specific facts a reader needs, e.g. the perplexity mode or the BERTScore model and layer."""
    scorer_version: int | None = None
    """The eval's `scorer_version` that scored these items; None in results written before versions were
    saved, which version 1 (each scorer as it was then) produced."""


JOINT_GENERATION = "generation"
"""The `evals` entry for the one pass that decoded several evals' replies (its time is not in theirs)."""


class EvalResult(VersionedRecord):
    checkpoint: CheckpointSummary
    metrics: dict[str, MetricValue]
    deltas: dict[str, dict[str, Delta]] = {}
    """metric name -> reference checkpoint -> delta."""
    evals: dict[str, EvalInfo] = {}
    presentation: dict[str, MetricPresentation] = {}
    """metric name -> how reports show it (absent in results written before presentations were saved)."""
    config_hash: str
    eval_hash: str = ""
    """Hash of weights, data and eval settings: saved results with the same hash are reused."""
    limit: int | None = None
    """The item cap per eval (`--limit`, `eval.limit`); None: every item."""
    wall_time_s: float


class SampleRecord(BaseModel):
    """One scored item of one eval. `values`/`weights` feed the aggregation of each metric."""

    id: str
    eval: str
    category: str | None = None
    prompt: str | None = None
    reference: str | None = None
    output: str | None = None
    values: dict[str, float] = {}
    weights: dict[str, float] = {}
    """Missing weight means 1 (a plain per-item mean)."""
    flags: list[str] = []
    """e.g. `empty_output`, `hit_token_cap`, `partial_refusal`, `unverified_hotline`."""
    extra: dict[str, Any] = Field(default_factory=dict)


def write_samples(path: Path, records: Iterable[SampleRecord]) -> None:
    atomic_write_text(path, "".join(r.model_dump_json() + "\n" for r in records))


def read_samples(path: Path) -> list[SampleRecord]:
    with open(path, encoding="utf-8") as handle:
        return [SampleRecord.model_validate(json.loads(line)) for line in handle if line.strip()]
