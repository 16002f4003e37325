"""The eval registry: an eval is one module that registers an `EvalSpec`.

Like an lm-evaluation-harness task or an inspect_ai scorer, a spec says what the eval is called,
which inputs it needs, which metrics it produces (and which direction is better), and how it scores
items. Adding an eval is one new module plus one import line in `evals/__init__.py`.

A spec also carries its scorer's version, saved with every result, and, where scoring needs only
what the per-sample log keeps (the replies), how to score saved records again: `harness rescore`
then recomputes the eval's numbers without loading a model.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

from harness.core.errors import HarnessError
from harness.run.results import Aggregation, MetricPresentation, SampleRecord

if TYPE_CHECKING:
    from harness.evals.context import EvalContext
    from harness.run.config import EvalConfig

PairedTest = Literal["paired_bootstrap", "mcnemar_exact"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    higher_is_better: bool | None
    presentation: MetricPresentation
    """Label, format, report section and verdict wording; saved with every result."""
    aggregation: Aggregation = "mean"
    paired_test: PairedTest = "paired_bootstrap"
    """`mcnemar_exact` for per-item 0/1 outcomes (refusals), the bootstrap for everything else."""
    category: str | None = None
    """Only items of this category count toward the metric (safety rates per category)."""


@dataclass(frozen=True)
class EvalOutput:
    records: list[SampleRecord]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalSpec:
    name: str
    description: str
    metrics: tuple[MetricSpec, ...]
    run: Callable[[EvalContext], EvalOutput]
    needs_generation: bool = False
    conversations: Callable[[EvalContext], list[list[dict[str, str]]]] | None = None
    """The chats a generation eval will ask the model, for the runner to decode every such eval's prompts in
    one pass (`Generator.prefetch`) before the evals run; None: the eval generates on its own."""
    scorer_version: int = 1
    """Raised by one whenever how an item is scored changes (a new detector, a fixed metric). Results
    save it per eval, so a result an older scorer produced can be told apart and scored again."""
    rescore: Callable[[list[SampleRecord], EvalConfig], EvalOutput] | None = None
    """Scores saved records again from what they keep (the replies), loading no model under test; its
    details replace the saved ones of the same name. None when scoring needs the model itself."""
    dataset: str | None = None
    """The data fingerprint (a `RunData.fingerprints` key) of the items it scores; saved with each metric's
    presentation, so a model card can name the data behind every result."""

    def presentations(self, measured: Collection[str]) -> dict[str, MetricPresentation]:
        """How each of its `measured` metrics is shown, with the data it was measured on, as results save it."""
        return {m.name: m.presentation.model_copy(update={"dataset": self.dataset}) for m in self.metrics if m.name in measured}


_REGISTRY: dict[str, EvalSpec] = {}


def register(spec: EvalSpec) -> EvalSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"eval {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get_eval(name: str) -> EvalSpec:
    if name not in _REGISTRY:
        raise HarnessError(f"unknown eval {name!r}; choose from {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def registered_evals() -> list[str]:
    return sorted(_REGISTRY)
