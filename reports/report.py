"""The report's content, independent of format: everything both templates show, as formatted values.

`build_report` turns a loaded run into one `Report`; the Markdown and HTML templates only lay it
out, so the two files always state the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.run.manifest import Manifest
from harness.run.results import EvalResult, MetricPresentation, SampleRecord
from harness.reports.compare import best_checkpoints
from harness.reports.format import format_number, format_value, presentations
from harness.reports.generations import GenerationGroup, generation_groups
from harness.reports.grid_view import GridView, grid_view
from harness.reports.load import RunView
from harness.reports.provenance import (
    DataGroup,
    Headline,
    StageRow,
    checkpoint_rows,
    data_inspect_groups,
    eval_rows,
    flatten,
    hardware,
    headline,
    seeds,
    stage_rows,
    versions,
)
from harness.reports.safety import (
    flagged_reply_counts,
    HotlineFinding,
    SafetyFailure,
    SafetyRateRow,
    failure_counts,
    rate_rows,
    safety_failures,
    unverified_hotlines,
)
from harness.reports.sections import METRIC as SECTION_METRIC
from harness.reports.sections import SectionRow, section_rows
from harness.reports.summary import DeltaRow, SummaryRow, delta_rows, summary_rows
from harness.reports.verdict import CAPPED_SHARE_LIMIT, VerdictSentence, verdict_sentences


@dataclass(frozen=True)
class SectionLine:
    number: int
    title: str
    tokens: str
    cells: list[str]
    best: list[bool]


@dataclass(frozen=True)
class Report:
    title: str
    checkpoints: list[str]
    headline: Headline
    verdict: list[VerdictSentence]
    grid: GridView | None
    summary: list[SummaryRow]
    deltas: list[DeltaRow]
    eval_notes: list[tuple[str, str]]
    sections: list[SectionLine]
    generations: list[GenerationGroup]
    safety_rates: list[SafetyRateRow]
    failure_counts: list[tuple[str, list[int]]]
    flagged_replies: list[tuple[str, str, list[int]]]
    capped_share_limit: str
    failures: list[SafetyFailure]
    hotlines: list[HotlineFinding]
    data_groups: list[DataGroup]
    stages: list[StageRow]
    checkpoint_rows: list[tuple[str, str, str, str]]
    eval_rows: list[tuple[str, str, str, str]]
    versions: list[tuple[str, str]]
    hardware: list[tuple[str, str]]
    seeds: list[tuple[str, str]]
    config_text: str | None
    results: dict[str, EvalResult]
    manifests: dict[str, Manifest]
    section_rows: list[SectionRow]


def eval_notes(results: dict[str, EvalResult]) -> list[tuple[str, str]]:
    """(eval, settings) for each eval, listing every distinct setting when checkpoints differ."""
    found: dict[str, list[str]] = {}
    for result in results.values():
        for name, info in result.evals.items():
            details = "; ".join(f"{k}={v}" for k, v in flatten(info.details)) if info.details else ""
            if details and details not in found.setdefault(name, []):
                found[name].append(details)
    return [(name, " | ".join(values)) for name, values in found.items() if values]


def section_lines(rows: list[SectionRow], checkpoints: list[str], display: MetricPresentation) -> list[SectionLine]:
    lines = []
    for number, row in enumerate(rows, 1):
        best = best_checkpoints(row.perplexity, higher_is_better=False)
        lines.append(
            SectionLine(
                number=number,
                title=row.title,
                tokens=format_number(row.tokens, 0),
                cells=[format_value(display, row.perplexity.get(name)) for name in checkpoints],
                best=[name in best for name in checkpoints],
            )
        )
    return lines


def _seed(view: RunView) -> int:
    seed = view.config.get("seed")
    return seed if isinstance(seed, int) else 0


def samples_of(view: RunView, eval_name: str) -> dict[str, list[SampleRecord]]:
    """checkpoint -> that eval's sample records, for the checkpoints that logged any."""
    return {c: records for c in view.checkpoints if (records := view.samples.get(c, {}).get(eval_name))}


def build_report(view: RunView) -> Report:
    checkpoints = view.checkpoints
    per_section = section_rows(samples_of(view, "perplexity"))
    failures = safety_failures(view.samples)
    displays = presentations(view.results)
    return Report(
        title=f"Run report: {view.config.get('name') or view.run_dir.name}",
        checkpoints=checkpoints,
        headline=headline(view),
        verdict=verdict_sentences(view.results, view.lineage),
        grid=grid_view(view.grid, view.lineage) if view.grid else None,
        summary=summary_rows(view.results),
        deltas=delta_rows(view.results),
        eval_notes=eval_notes(view.results),
        sections=section_lines(per_section, checkpoints, displays.get(SECTION_METRIC) or MetricPresentation(label=SECTION_METRIC)),
        generations=generation_groups(samples_of(view, "similarity"), _seed(view), view.lineage, displays),
        safety_rates=rate_rows(view.results),
        failure_counts=failure_counts(failures, checkpoints),
        flagged_replies=flagged_reply_counts(view.samples, checkpoints),
        capped_share_limit=f"{CAPPED_SHARE_LIMIT:.0%}",
        failures=failures,
        hotlines=unverified_hotlines(view.samples),
        data_groups=data_inspect_groups(view),
        stages=stage_rows(view),
        checkpoint_rows=checkpoint_rows(view),
        eval_rows=eval_rows(view),
        versions=versions(view),
        hardware=hardware(view),
        seeds=seeds(view),
        config_text=view.config_text,
        results=view.results,
        manifests=view.manifests,
        section_rows=per_section,
    )
