"""`harness rescore`: saved replies scored again with the current scorers, numbers, deltas and report rebuilt,
no model under test loaded; an eval that needs the model says which `harness eval` redoes it.

Runs on a copy of the report fixture (tests/fixtures/run_fixture). The default-suite tests replace the
refusal detector (the change a rescore is for) and leave out the similarity eval, whose BERTScore
encoder takes a minute to load on a busy 2-core machine; the slow test rescores everything for real.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import harness.evals  # noqa: F401  (registers the evals)
from harness.cli import app
from harness.evals import registry
from harness.evals.refusal import RefusalVerdict
from harness.pipeline import rescore_run
from harness.run.config import load_config
from harness.run.results import EvalResult, read_samples

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "run_fixture"
CHECKPOINTS = ("base", "domain", "instruct-only", "instruct")


def fixture_copy(tmp_path: Path, *, without: tuple[str, ...] = ()) -> Path:
    """The fixture run copied to tmp_path, with the evals in `without` removed from its results and samples."""
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    for name in CHECKPOINTS:
        path = run_dir / "results" / f"{name}.json"
        result = EvalResult.load(path)
        for eval_name in without:
            del result.evals[eval_name]
            for metric in registry.get_eval(eval_name).metrics:
                for table in (result.metrics, result.deltas, result.presentation):
                    table.pop(metric.name, None)
            (run_dir / "samples" / name / f"{eval_name}.jsonl").unlink()
        result.save(path)
    return run_dir


def results_of(run_dir: Path) -> dict[str, EvalResult]:
    return {name: EvalResult.load(run_dir / "results" / f"{name}.json") for name in CHECKPOINTS}


@pytest.fixture
def no_model_loads(monkeypatch):
    """Any attempt to load a causal LM fails the test."""
    import transformers

    import harness.evals.runner
    import harness.models.loading

    def refuse(*args, **kwargs):
        raise AssertionError("rescoring loaded a model under test")

    monkeypatch.setattr(harness.models.loading, "load_causal_lm", refuse)
    monkeypatch.setattr(harness.evals.runner, "load_causal_lm", refuse)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)


def refuses_everything(replies):
    return [RefusalVerdict("refusal", ["stricter_test_detector"]) for _ in replies]


def test_a_changed_detector_changes_results_deltas_and_report_without_a_model(tmp_path, monkeypatch, no_model_loads):
    run_dir = fixture_copy(tmp_path, without=("similarity",))
    before = results_of(run_dir)
    assert {before[name].metrics["refusal_rate_harmful"].value for name in CHECKPOINTS} == {0.70, 0.65, 0.85, 0.80}
    monkeypatch.setattr("harness.evals.safety.detect_refusals", refuses_everything)

    rescored = rescore_run(load_config(run_dir / "config.yaml"), run_dir)

    assert rescored.checkpoints == list(CHECKPOINTS) and rescored.stale == []
    after = results_of(run_dir)
    for name in CHECKPOINTS:
        for metric in ("refusal_rate_harmful", "over_refusal_rate_benign"):
            assert after[name].metrics[metric].value == 1.0
            assert after[name].metrics[metric].ci_low == after[name].metrics[metric].ci_high == 1.0
        if name != "base":
            delta = after[name].deltas["over_refusal_rate_benign"]["base"]
            assert (delta.delta, delta.p_value, delta.test) == (0.0, 1.0, "mcnemar_exact")
        for metric in ("heldout_perplexity", "heldout_bits_per_byte", "unverified_hotlines"):
            saved, now = before[name].metrics[metric], after[name].metrics[metric]
            assert (now.value, now.ci_low, now.ci_high) == (saved.value, saved.ci_low, saved.ci_high), (name, metric)
        assert after[name].evals["safety"].scorer_version == registry.get_eval("safety").scorer_version
        assert after[name].evals["perplexity"].scorer_version is None, "perplexity kept its saved items, so its saved version"
        records = read_samples(run_dir / "samples" / name / "safety.jsonl")
        assert {r.extra["refusal_rules"][0] for r in records} == {"stricter_test_detector"}
        assert all("hotlines" in r.extra for r in records), "what the detectors do not write is kept"
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    over_refusal_row = next(line for line in report.splitlines() if line.startswith("| Over-refusal rate (benign)"))
    assert over_refusal_row.count("100.0% [100.0%, 100.0%]") == len(CHECKPOINTS)


def test_an_eval_that_needs_the_model_names_the_eval_to_run_again(tmp_path, monkeypatch, no_model_loads):
    run_dir = fixture_copy(tmp_path, without=("similarity",))
    monkeypatch.setattr("harness.evals.safety.detect_refusals", refuses_everything)
    newer = dataclasses.replace(registry.get_eval("perplexity"), scorer_version=2)
    monkeypatch.setitem(registry._REGISTRY, "perplexity", newer)
    saved = results_of(run_dir)

    result = CliRunner().invoke(app, ["rescore", str(run_dir)], terminal_width=400)

    assert result.exit_code == 0, result.output
    for name in CHECKPOINTS:
        line = (
            f"{name}: perplexity was scored by scorer version 1 and the current one (2) needs the model; "
            f"re-run `harness eval --checkpoint {name} --suite perplexity`"
        )
        assert line in result.output
        assert results_of(run_dir)[name].metrics["heldout_perplexity"] == saved[name].metrics["heldout_perplexity"]
    assert results_of(run_dir)["instruct"].metrics["refusal_rate_harmful"].value == 1.0


def test_a_run_without_its_config_is_a_one_line_error(tmp_path):
    run_dir = fixture_copy(tmp_path)
    (run_dir / "config.yaml").unlink()
    result = CliRunner().invoke(app, ["rescore", str(run_dir)], terminal_width=400)
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {run_dir / 'config.yaml'}: not found; pass --config with the config the run was evaluated with"
    )


@pytest.mark.slow
def test_rescoring_with_unchanged_scorers_reproduces_the_saved_items(tmp_path, no_model_loads):
    """Every scorer for real (refusal classifier, BERTScore encoder): ROUGE, refusals and hotline counts the
    fixture planted come back item for item (its crisis labels are planted, and one reply that sends the user
    to an invented helpline the crisis check counts as a referral). About 2 minutes on a busy 2-core machine,
    most of it loading encoders."""
    run_dir = fixture_copy(tmp_path)
    saved = {name: {e: read_samples(run_dir / "samples" / name / f"{e}.jsonl") for e in ("similarity", "safety")} for name in CHECKPOINTS}

    rescore_run(load_config(run_dir / "config.yaml"), run_dir)

    for name in CHECKPOINTS:
        for eval_name, records in saved[name].items():
            again = read_samples(run_dir / "samples" / name / f"{eval_name}.jsonl")
            assert [r.id for r in again] == [r.id for r in records]
            for old, new in zip(records, again):
                kept = {k: v for k, v in old.values.items() if k not in ("bertscore_f1", "crisis_referral_rate")}
                assert {k: new.values[k] for k in kept} == pytest.approx(kept, abs=1e-12), (name, old.id)
        bertscore = json.loads((run_dir / "results" / f"{name}.json").read_text())["metrics"]["bertscore_f1"]
        assert 0.0 < bertscore["value"] < 1.0
