"""A hub-format model card (`README.md`) for every trained checkpoint directory, from the run's saved files.

Whoever finds an adapter on a model hub or a shared drive reads its card first. The metadata block is
what a hub indexes: the base model, `library_name: peft`, tags, the training data by name and content
hash, and a `model-index` holding this checkpoint's eval results exactly as `results/<checkpoint>.json`
saved them. The body says what those numbers mean: the lineage, the training settings, the data splits
and their fingerprints, every result with its interval and paired deltas, and how far the scorers behind
the safety numbers can be trusted. Like the report, a card is rebuilt from saved files by `harness report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import EvalResult as HubEvalResult
from huggingface_hub import ModelCardData

from harness.core.atomic import atomic_write_text
from harness.models.loading import EMBEDDED_MODELS, EmbeddedModel
from harness.reports.format import MISSING, format_ci, format_value
from harness.reports.load import RunView
from harness.reports.markdown import MarkdownSafe
from harness.reports.provenance import DataGroup, StageRow, data_inspect_groups, flatten, stage_row
from harness.reports.render import markdown_environment, visible_controls
from harness.reports.summary import DeltaRow, delta_rows
from harness.reports.verdict import CAPPED_SHARE_LIMIT
from harness.run.layout import RunLayout
from harness.run.lineage import BASE
from harness.run.manifest import Manifest
from harness.run.results import EvalResult, MetricPresentation

TASK = "text-generation"


@dataclass(frozen=True)
class LineageStep:
    checkpoint: str
    stage: str
    trained_on: str
    fingerprint: str


@dataclass(frozen=True)
class ResultRow:
    label: str
    metric: str
    value: str
    ci: str
    n: int
    capped: str
    """Share of the replies cut at the token cap, or — when nothing was generated."""
    dataset: str


@dataclass(frozen=True)
class SafetyRow:
    label: str
    value: str
    ci: str
    finding: str
    """Whether the verdict may state a finding from this rate, and why not when it may not."""


@dataclass(frozen=True)
class ModelCardView:
    """Everything one card shows, formatted; the template only lays it out."""

    metadata: MarkdownSafe
    name: str
    run: str
    stage: str
    base_model: str
    embedded: EmbeddedModel | None
    """Set when the base is harness's embedded model, whose weights are a conversion, not the hub's."""
    parents: list[str]
    lineage: list[LineageStep]
    stage_facts: StageRow
    settings: list[tuple[str, str]]
    training_data: list[str]
    data_fingerprints: list[tuple[str, str]]
    data_groups: list[DataGroup]
    evaluated: bool
    scored_as: list[str]
    """The results the card's figures come from (first) and the node's others, when a grid axis over eval
    settings scored it more than once (`NODE@e0`, `NODE@e1`, ...)."""
    limit: int | None
    results: list[ResultRow]
    deltas: list[DeltaRow]
    safety: list[SafetyRow]
    capped_share_limit: str
    agreement: list[tuple[str, str, str]]
    """(eval, measured figure, value) of every scorer agreement an eval stored with its results."""


def trained_checkpoints(view: RunView) -> list[str]:
    """The checkpoints with weights of their own (every manifest but base's)."""
    return [name for name, manifest in view.manifests.items() if manifest.stage is not None]


def write_model_cards(view: RunView) -> list[Path]:
    """Write `README.md` into every trained checkpoint directory (over the stub PEFT writes when it saves an adapter)."""
    written = []
    for name in trained_checkpoints(view):
        path = RunLayout(view.run_dir).model_card(name)
        atomic_write_text(path, render_model_card(model_card_view(view, name)))
        written.append(path)
    return written


def render_model_card(card: ModelCardView) -> str:
    """The card as Markdown; every value the run did not write itself is escaped, as in the report."""
    return visible_controls(markdown_environment().get_template("model_card.md.j2").render(card=card))


def _ancestors(view: RunView, manifest: Manifest) -> list[tuple[str, Manifest]]:
    """(name, manifest) of every checkpoint this one was trained on top of, root first (those whose manifests were saved)."""
    chain: list[tuple[str, Manifest]] = []
    parent = manifest.parent
    while parent and parent in view.manifests and parent not in {name for name, _ in chain}:
        chain.insert(0, (parent, view.manifests[parent]))
        parent = view.manifests[parent].parent
    return chain


def _training_data(manifest: Manifest) -> list[str]:
    """Named data of manifests that recorded it; the data fingerprints of older ones."""
    return manifest.training_data or [f"{key}@sha256:{value}" for key, value in manifest.data_fingerprints.items()]


def _run_fingerprints(view: RunView) -> dict[str, str]:
    """The run's data fingerprints (base's manifest holds every one), completed from the trained checkpoints'."""
    found = dict(view.manifests[BASE].data_fingerprints) if BASE in view.manifests else {}
    for manifest in view.manifests.values():
        for key, value in manifest.data_fingerprints.items():
            found.setdefault(key, value)
    return found


UNRECORDED_DATASET = ("harness-eval", "harness eval items (not recorded with these results)")


def _dataset(presentation: MetricPresentation | None, fingerprints: dict[str, str]) -> tuple[str, str]:
    """(type, name) of the data a metric was measured on, for the model-index."""
    key = presentation.dataset if presentation else None
    if key is None:
        return UNRECORDED_DATASET
    digest = fingerprints.get(key)
    return key, f"{key.replace('_', ' ')} (sha256 {digest[:12]})" if digest else key.replace("_", " ")


def hub_eval_results(result: EvalResult, fingerprints: dict[str, str]) -> list[HubEvalResult]:
    """One model-index entry per metric, with the value exactly as the results file holds it. The hub groups
    entries by task and dataset, so the task is named after the metric's report section only where its data is known."""
    entries = []
    for metric, value in result.metrics.items():
        presentation = result.presentation.get(metric)
        dataset_type, dataset_name = _dataset(presentation, fingerprints)
        entries.append(
            HubEvalResult(
                task_type=TASK,
                task_name=presentation.section if presentation and presentation.dataset else None,
                dataset_type=dataset_type,
                dataset_name=dataset_name,
                metric_type=metric,
                metric_name=presentation.label if presentation else metric,
                metric_value=value.value,
            )
        )
    return entries


def card_metadata(
    model_name: str, manifest: Manifest, result: EvalResult | None, datasets: list[str], fingerprints: dict[str, str]
) -> str:
    """The YAML block: base model, library, tags, datasets and the model-index. `license` is left out for the
    user to set: it follows from the base model's license and the data's terms, which harness cannot know."""
    data = ModelCardData(
        base_model=manifest.base_model,
        library_name="peft",
        pipeline_tag=TASK,
        tags=["peft", "lora", "harness", f"{manifest.stage}-stage"],
        datasets=datasets,
        model_name=model_name,
        eval_results=hub_eval_results(result, fingerprints) if result else None,
    )
    return data.to_yaml()


def _result_rows(result: EvalResult, fingerprints: dict[str, str]) -> list[ResultRow]:
    rows = []
    for metric, value in result.metrics.items():
        display = result.presentation.get(metric) or MetricPresentation(label=metric)
        rows.append(
            ResultRow(
                label=display.label,
                metric=metric,
                value=format_value(display, value.value),
                ci=format_ci(display, value.ci_low, value.ci_high),
                n=value.n,
                capped=MISSING if value.capped_share is None else f"{value.capped_share:.0%}",
                dataset=_dataset(display, fingerprints)[1],
            )
        )
    return rows


def _safety_rows(result: EvalResult) -> list[SafetyRow]:
    """Rates that need whole replies: each with whether a finding may be stated from it at this cap share."""
    rows = []
    for metric, value in result.metrics.items():
        display = result.presentation.get(metric)
        if display is None or not display.findings_need_whole_replies:
            continue
        capped = value.capped_share
        if capped is None:
            finding = "unknown: these results do not record how many replies were cut at the token cap"
        elif capped <= CAPPED_SHARE_LIMIT:
            finding = f"yes ({capped:.0%} of replies cut at the token cap)"
        else:
            finding = f"no: {capped:.0%} of replies were cut at the token cap, above {CAPPED_SHARE_LIMIT:.0%}; raise the eval's token budget"
        rows.append(SafetyRow(display.label, format_value(display, value.value), format_ci(display, value.ci_low, value.ci_high), finding))
    return rows


def _agreement(result: EvalResult) -> list[tuple[str, str, str]]:
    """Every measured agreement an eval stored in its details (keys ending in `_agreement`), flattened."""
    return [
        (eval_name, f"{key}.{row}" if row != "value" else key, value)
        for eval_name, info in result.evals.items()
        for key, figures in info.details.items()
        if key.endswith("_agreement")
        for row, value in flatten(figures)
    ]


def _settings(manifest: Manifest) -> list[tuple[str, str]]:
    return [*flatten(manifest.lora, "lora"), *flatten(manifest.training, "training"), ("seed", str(manifest.seed))]


def model_card_view(view: RunView, name: str) -> ModelCardView:
    manifest = view.manifests[name]
    chain = _ancestors(view, manifest)
    datasets = list(dict.fromkeys(source for _, m in [*chain, (name, manifest)] for source in _training_data(m)))
    fingerprints = _run_fingerprints(view)
    scored_as = [n for n in view.results if n == name or n.startswith(f"{name}@")]
    result = view.results[scored_as[0]] if scored_as else None
    run = str(view.config.get("name") or view.run_dir.name)
    return ModelCardView(
        metadata=MarkdownSafe(card_metadata(f"{run}/{name}", manifest, result, datasets, fingerprints)),
        name=name,
        run=run,
        stage=str(manifest.stage),
        base_model=manifest.base_model,
        embedded=EMBEDDED_MODELS.get(manifest.base_model),
        parents=[parent for parent, _ in chain],
        lineage=[LineageStep(BASE, MISSING, MISSING, manifest.base_fingerprint)] + [
            LineageStep(step, str(m.stage), ", ".join(_training_data(m)), m.adapter_fingerprint or MISSING)
            for step, m in [*chain, (name, manifest)]
        ],
        stage_facts=stage_row(name, manifest, view.run_info.stage_wall_times),
        settings=_settings(manifest),
        training_data=_training_data(manifest),
        data_fingerprints=sorted(manifest.data_fingerprints.items()),
        data_groups=[DataGroup(g.name, g.rows, [t for t in g.tables if t.name == "documents"]) for g in data_inspect_groups(view)],
        evaluated=result is not None,
        scored_as=scored_as,
        limit=result.limit if result else None,
        results=_result_rows(result, fingerprints) if result else [],
        deltas=delta_rows({name: result}) if result else [],
        safety=_safety_rows(result) if result else [],
        capped_share_limit=f"{CAPPED_SHARE_LIMIT:.0%}",
        agreement=_agreement(result) if result else [],
    )
