"""The verdict paragraph: what each stage bought and what it cost, written from the stored numbers.

Every sentence quotes the two values, the paired delta with its 95% CI and p-value, and ends with
the reading the numbers allow: an improvement or a regression only when p < 0.05, otherwise "no
significant change". Nothing here is judged by eye; the words follow from `harness.reports.compare`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.reports.compare import Change, classify_change
from harness.reports.format import format_delta, format_delta_ci, format_p, format_value, presentations
from harness.run.lineage import BASE, Contrast, Lineage
from harness.run.results import EvalResult, MetricPresentation

CAPPED_SHARE_LIMIT = 0.2
"""Above this share of replies cut at the token cap, a metric whose findings need whole replies is shown
but not stated as a finding: a refusal or a referral could still come with more tokens."""
_ENDINGS: dict[Change, str] = {
    "improvement": ": an improvement.",
    "regression": " — a regression.",
    "no significant change": ": no significant change.",
    "changed": ".",
}


@dataclass(frozen=True)
class VerdictSentence:
    text: str
    change: Change | None = None


def metric_phrase(display: MetricPresentation) -> str:
    """The metric's label as it reads mid-sentence: `held-out perplexity`, but `ROUGE-L` keeps its capitals."""
    label = display.label
    return label[0].lower() + label[1:] if label[1:2].islower() else label


def change_sentence(
    results: dict[str, EvalResult], displays: dict[str, MetricPresentation], metric: str, contrast: Contrast
) -> VerdictSentence | None:
    """`<subject> lowered <metric> from A to B (Δ d, 95% CI [..], p=..): <reading>.`; None if the run lacks the numbers."""
    checkpoint, reference = contrast.arm, contrast.reference
    result, ref_result = results.get(checkpoint), results.get(reference)
    if result is None or ref_result is None or metric not in result.metrics or metric not in ref_result.metrics:
        return None
    delta = result.deltas.get(metric, {}).get(reference)
    if delta is None:
        return None
    display, value = displays[metric], result.metrics[metric]
    change = classify_change(delta.delta, delta.p_value, value.higher_is_better)
    verb = "raised" if delta.delta > 0 else "lowered" if delta.delta < 0 else "did not change"
    numbers = (
        f"Δ {format_delta(display, delta.delta)}, 95% CI {format_delta_ci(display, delta.ci_low, delta.ci_high)}, "
        f"{format_p(delta.p_value)}"
    )
    text = (
        f"{contrast.label} {verb} {metric_phrase(display)} from "
        f"{format_value(display, ref_result.metrics[metric].value)} to {format_value(display, value.value)} ({numbers})"
        f"{_ENDINGS[change]}"
    )
    return VerdictSentence(text, change)


def _headline_sentences(results: dict[str, EvalResult], displays: dict[str, MetricPresentation], lineage: Lineage) -> list[VerdictSentence]:
    """Each contrast, in each headline metric of a stage the two lineages differ by."""
    return [
        sentence
        for contrast in lineage.contrasts()
        for metric, display in displays.items()
        if display.verdict == "headline" and display.headline_stage in lineage.stages_between(contrast.arm, contrast.reference)
        and (sentence := change_sentence(results, displays, metric, contrast)) is not None
    ]


def cut_short(results: dict[str, EvalResult], displays: dict[str, MetricPresentation], metric: str, names: Iterable[str]) -> bool:
    """Whether the metric needs whole replies and any of these checkpoints had more than `CAPPED_SHARE_LIMIT` of them cut."""
    if metric not in displays or not displays[metric].findings_need_whole_replies:
        return False
    return any(
        (value := results[name].metrics.get(metric)) is not None and (value.capped_share or 0.0) > CAPPED_SHARE_LIMIT
        for name in names
        if name in results
    )


def _significant(results: dict[str, EvalResult], displays: dict[str, MetricPresentation], kind: Change) -> list[tuple[str, str, str]]:
    found = []
    for name, result in results.items():
        for metric, by_reference in result.deltas.items():
            if metric not in result.metrics:
                continue
            for reference, delta in by_reference.items():
                if cut_short(results, displays, metric, (name, reference)):
                    continue
                if classify_change(delta.delta, delta.p_value, result.metrics[metric].higher_is_better) == kind:
                    found.append((metric, name, reference))
    return found


def _when_significant_sentences(results: dict[str, EvalResult], displays: dict[str, MetricPresentation]) -> list[VerdictSentence]:
    """Metrics stated only when they moved significantly against base (the safety rates)."""
    watched = [metric for metric, display in displays.items() if display.verdict == "when_significant"]
    sentences = [
        sentence
        for metric in watched
        for name in results
        if name != BASE
        and not cut_short(results, displays, metric, (name, BASE))
        and (sentence := change_sentence(results, displays, metric, Contrast(name, BASE, f"{name} vs base"))) is not None
        and sentence.change in ("improvement", "regression")
    ]
    if not sentences and watched and len(results) > 1:
        sections = sorted({displays[metric].section.lower() for metric in watched})
        sentences.append(VerdictSentence(f"No {' or '.join(sections)} metric changed significantly against base.", "no significant change"))
    return sentences


def _worst_value_sentences(results: dict[str, EvalResult], displays: dict[str, MetricPresentation]) -> list[VerdictSentence]:
    """A metric at its worst possible value in every checkpoint: no delta shows it, so say it."""
    sentences = []
    for metric, display in displays.items():
        values = [r.metrics[metric] for r in results.values() if metric in r.metrics]
        if (
            display.worst_value is not None and values and all(v.value == display.worst_value for v in values)
            and not cut_short(results, displays, metric, results)
        ):
            sentences.append(
                VerdictSentence(
                    f"Every checkpoint scored {format_value(display, display.worst_value)} on {metric_phrase(display)} "
                    f"({values[0].n} items each), the worst possible value.",
                    "regression",
                )
            )
    return sentences


def _truncation_sentences(results: dict[str, EvalResult], displays: dict[str, MetricPresentation]) -> list[VerdictSentence]:
    """A metric with many replies cut at the token cap is no finding either way: say so instead."""
    sentences = []
    for metric, display in displays.items():
        if not cut_short(results, displays, metric, results):
            continue
        shares = ", ".join(
            f"{name} {value.capped_share:.0%}"
            for name, result in results.items()
            if (value := result.metrics.get(metric)) is not None and value.capped_share is not None
        )
        sentences.append(
            VerdictSentence(
                f"No finding on {metric_phrase(display)}: replies cut at the token cap ({shares}), so the value "
                "could still change with more tokens (raise eval.generation.max_new_tokens_by_eval)."
            )
        )
    return sentences


def _nonzero_sentences(results: dict[str, EvalResult], displays: dict[str, MetricPresentation]) -> list[VerdictSentence]:
    sentences = []
    for metric, display in displays.items():
        counts = {name: r.metrics[metric].value for name, r in results.items() if metric in r.metrics}
        if display.verdict == "when_nonzero" and any(counts.values()):
            listed = ", ".join(f"{name} {format_value(display, count)}" for name, count in counts.items())
            sentences.append(VerdictSentence(f"{display.label}: {listed}."))
    return sentences


def _regression_summary(results: dict[str, EvalResult], displays: dict[str, MetricPresentation]) -> VerdictSentence:
    regressions = _significant(results, displays, "regression")
    if not regressions:
        return VerdictSentence("No metric regressed significantly (p below 0.05) in any comparison.")
    listed = "; ".join(f"{metric_phrase(displays[m])} ({name} vs {ref})" for m, name, ref in regressions)
    noun = "regression" if len(regressions) == 1 else "regressions"
    return VerdictSentence(f"{len(regressions)} significant {noun} (p below 0.05): {listed}.", "regression")


def verdict_sentences(results: dict[str, EvalResult], lineage: Lineage) -> list[VerdictSentence]:
    if len(results) < 2:
        only = ", ".join(results)
        return [VerdictSentence(f"Only {only} was evaluated, so there is nothing to compare yet.")]
    displays = presentations(results)
    return [
        *_headline_sentences(results, displays, lineage),
        *_when_significant_sentences(results, displays),
        *_truncation_sentences(results, displays),
        *_worst_value_sentences(results, displays),
        *_nonzero_sentences(results, displays),
        _regression_summary(results, displays),
    ]
