"""An eval added in one file shows up everywhere in the report with no edit in `harness.reports`.

The toy eval below is registered from this test file alone, run through the real eval runner on the
embedded model, and its metric must appear, with the label, unit and section its registration
declares, in the summary table, the paired deltas, the charts and the verdict of both report formats.
"""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from harness.evals import registry
from harness.evals.registry import EvalOutput, EvalSpec, MetricSpec
from harness.run.results import MetricPresentation, SampleRecord

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
TOY = "prompt-words"
METRIC = "prompt_word_count"
LABEL = "Words per counseling prompt"


def count_prompt_words(ctx) -> EvalOutput:
    records = [
        SampleRecord(id=conv.id, eval=TOY, prompt=conv.prompt, values={METRIC: float(len(conv.prompt.split()))})
        for conv in ctx.counseling_test
    ]
    return EvalOutput(records, details={"unit": "whitespace-separated words"})


TOY_SPEC = EvalSpec(
    name=TOY,
    description="Words per held-out counseling prompt (a test eval).",
    metrics=(
        MetricSpec(
            METRIC, higher_is_better=None,
            presentation=MetricPresentation(label=LABEL, decimals=1, section="Toy section", verdict="when_nonzero"),
        ),
    ),
    run=count_prompt_words,
)


@pytest.fixture
def toy_run(tmp_path, monkeypatch, embedded_model_dir):
    import harness.evals  # noqa: F401  (the built-in evals, so the toy one sits among them)
    from harness.data.run_data import load_run_data
    from harness.evals.runner import add_deltas, evaluate_checkpoint
    from harness.models.checkpoints import resolve_checkpoint
    from harness.reports import render_report
    from harness.run.config import load_config

    monkeypatch.setitem(registry._REGISTRY, TOY, TOY_SPEC)
    config = load_config(TINY, [f"eval.suite=[{TOY}]"])
    run_dir = tmp_path / "run"
    data = load_run_data(config)
    names = []
    for ref in ("base", str(embedded_model_dir)):
        names.append(evaluate_checkpoint(config, resolve_checkpoint(ref, config, run_dir), data, run_dir).checkpoint.name)
    add_deltas(run_dir, config, names)
    markdown, page = (path.read_text(encoding="utf-8") for path in render_report(run_dir, ["md", "html"]))
    return markdown, page, names, len(data.counseling.test)


def test_a_registered_eval_appears_in_every_part_of_both_reports(toy_run):
    markdown, page, (base, other), n = toy_run
    summary = markdown.split("## Summary")[1].split("\n## ")[0]
    row = next(line for line in summary.splitlines() if line.startswith(f"| {LABEL}"))
    assert row.count(" [") == 2, "a value with its CI for each checkpoint, in the declared one-decimal format"
    assert f"{other} − {base}" in summary, "the paired delta against base"
    assert f'aria-label="{LABEL}"' in page, "a bar chart for the metric"
    verdict = markdown.split("## Verdict")[1].split("\n## ")[0]
    assert f"{LABEL}: {base} " in verdict, "the verdict lists a `when_nonzero` metric's values"
    assert html.escape(LABEL) in page and LABEL in markdown
    assert f"(n={n})" in page
