"""The verdict paragraph: what each stage bought and what it cost, written from the stored numbers.

Every sentence quotes the two values, the paired delta with its 95% CI and p-value, and ends with
the reading the numbers allow: an improvement or a regression only when p < 0.05, otherwise "no
significant change". Nothing here is judged by eye; the words follow from `reports.compare`.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.results import EvalResult
from reports.compare import Change, classify_change
from reports.format import format_delta, format_delta_ci, format_p, format_value, metric_display

SAFETY_RATES = ("refusal_rate_harmful", "over_refusal_rate_benign", "crisis_referral_rate")

COMPARISON_SUBJECTS = {
    ("domain", "base"): "Domain adaptation (domain vs base)",
    ("instruct", "base"): "The full pipeline (instruct vs base)",
    ("instruct-only", "base"): "Instruction tuning alone (instruct-only vs base)",
    ("instruct", "instruct-only"): "The domain stage before SFT (instruct vs instruct-only)",
}
HEADLINE_COMPARISONS = (
    ("heldout_perplexity", "domain", "base"),
    ("heldout_perplexity", "instruct", "instruct-only"),
    ("rougeL", "instruct", "base"),
    ("rougeL", "instruct-only", "base"),
    ("rougeL", "instruct", "instruct-only"),
    ("bertscore_f1", "instruct", "base"),
)
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


def metric_phrase(metric: str) -> str:
    """The metric's label as it reads mid-sentence: `held-out perplexity`, but `ROUGE-L` keeps its capitals."""
    label = metric_display(metric).label
    return label[0].lower() + label[1:] if label[1:2].islower() else label


def comparison_subject(checkpoint: str, reference: str) -> str:
    return COMPARISON_SUBJECTS.get((checkpoint, reference), f"{checkpoint} vs {reference}")


def change_sentence(results: dict[str, EvalResult], metric: str, checkpoint: str, reference: str) -> VerdictSentence | None:
    """`<subject> lowered <metric> from A to B (Δ d, 95% CI [..], p=..): <reading>.`; None if the run lacks the numbers."""
    result, ref_result = results.get(checkpoint), results.get(reference)
    if result is None or ref_result is None or metric not in result.metrics or metric not in ref_result.metrics:
        return None
    delta = result.deltas.get(metric, {}).get(reference)
    if delta is None:
        return None
    value = result.metrics[metric]
    change = classify_change(delta.delta, delta.p_value, value.higher_is_better)
    verb = "raised" if delta.delta > 0 else "lowered" if delta.delta < 0 else "did not change"
    numbers = (
        f"Δ {format_delta(metric, delta.delta)}, 95% CI {format_delta_ci(metric, delta.ci_low, delta.ci_high)}, "
        f"{format_p(delta.p_value)}"
    )
    text = (
        f"{comparison_subject(checkpoint, reference)} {verb} {metric_phrase(metric)} from "
        f"{format_value(metric, ref_result.metrics[metric].value)} to {format_value(metric, value.value)} ({numbers})"
        f"{_ENDINGS[change]}"
    )
    return VerdictSentence(text, change)


def _significant(results: dict[str, EvalResult], kind: Change) -> list[tuple[str, str, str]]:
    found = []
    for name, result in results.items():
        for metric, by_reference in result.deltas.items():
            if metric not in result.metrics:
                continue
            for reference, delta in by_reference.items():
                if classify_change(delta.delta, delta.p_value, result.metrics[metric].higher_is_better) == kind:
                    found.append((metric, name, reference))
    return found


def _safety_sentences(results: dict[str, EvalResult]) -> list[VerdictSentence]:
    sentences = [
        sentence
        for metric in SAFETY_RATES
        for name in results
        if name != "base"
        and (sentence := change_sentence(results, metric, name, "base")) is not None
        and sentence.change in ("improvement", "regression")
    ]
    if not sentences and any(m in r.metrics for r in results.values() for m in SAFETY_RATES) and len(results) > 1:
        sentences.append(VerdictSentence("No safety rate changed significantly against base.", "no significant change"))
    return sentences


WORST_RATE = {"refusal_rate_harmful": 0.0, "over_refusal_rate_benign": 1.0, "crisis_referral_rate": 0.0}


def _floor_sentences(results: dict[str, EvalResult]) -> list[VerdictSentence]:
    """A safety rate at its worst possible value in every checkpoint: no delta shows it, so say it."""
    sentences = []
    for metric, worst in WORST_RATE.items():
        values = [r.metrics[metric] for r in results.values() if metric in r.metrics]
        if values and all(v.value == worst for v in values):
            sentences.append(
                VerdictSentence(
                    f"Every checkpoint scored {format_value(metric, worst)} on {metric_phrase(metric)} "
                    f"({values[0].n} prompts each), the worst possible value.",
                    "regression",
                )
            )
    return sentences


def _hotline_sentence(results: dict[str, EvalResult]) -> VerdictSentence | None:
    counts = {name: r.metrics["unverified_hotlines"].value for name, r in results.items() if "unverified_hotlines" in r.metrics}
    if not any(counts.values()):
        return None
    listed = ", ".join(f"{name} {format_value('unverified_hotlines', count)}" for name, count in counts.items())
    return VerdictSentence(f"Hotline numbers not in the verified table (possibly invented): {listed}.")


def _regression_summary(results: dict[str, EvalResult]) -> VerdictSentence:
    regressions = _significant(results, "regression")
    if not regressions:
        return VerdictSentence("No metric regressed significantly (p below 0.05) in any comparison.")
    listed = "; ".join(f"{metric_phrase(m)} ({name} vs {ref})" for m, name, ref in regressions)
    noun = "regression" if len(regressions) == 1 else "regressions"
    return VerdictSentence(f"{len(regressions)} significant {noun} (p below 0.05): {listed}.", "regression")


def verdict_sentences(results: dict[str, EvalResult]) -> list[VerdictSentence]:
    if len(results) < 2:
        only = ", ".join(results)
        return [VerdictSentence(f"Only {only} was evaluated, so there is nothing to compare yet.")]
    sentences = [s for m, c, r in HEADLINE_COMPARISONS if (s := change_sentence(results, m, c, r)) is not None]
    sentences += _safety_sentences(results)
    sentences += _floor_sentences(results)
    if (hotlines := _hotline_sentence(results)) is not None:
        sentences.append(hotlines)
    sentences.append(_regression_summary(results))
    return sentences
