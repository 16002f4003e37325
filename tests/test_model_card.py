"""Model cards: a hub-format README.md in every trained checkpoint directory, read back with huggingface_hub.

The saved-results tests use a copy of the report fixture run (`run_dir`); tests/test_pipeline.py checks the
cards of a real tiny run. The end-to-end tests here (slow) run the tiny settings on a corpus of both shared PDFs
plus a text file (they read ../shared/data and skip without it).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from harness.models.checkpoints import adapter_fingerprint, read_checkpoint
from harness.reports import render_report
from harness.run.layout import MODEL_CARD_FILE, RunLayout
from harness.run.manifest import Manifest
from harness.run.results import EvalResult

REPO = Path(__file__).resolve().parents[1]
TRAINED = ["domain", "instruct-only", "instruct"]


def read_back(run_dir: Path, name: str) -> tuple[ModelCard, EvalResult]:
    card = ModelCard.load(RunLayout(run_dir).model_card(name))
    return card, EvalResult.load(RunLayout(run_dir).result(name))


def card_values(card: ModelCard) -> dict[str, float]:
    return {entry.metric_type: entry.metric_value for entry in card.data.eval_results}


def same_numbers(found: dict[str, float], expected: dict[str, float]) -> bool:
    """Equal key sets and values, NaN equal to NaN (a stored NaN must read back as NaN)."""
    return found.keys() == expected.keys() and all(
        found[k] == expected[k] or (math.isnan(found[k]) and math.isnan(expected[k])) for k in expected
    )


def test_every_trained_checkpoint_gets_a_card_whose_eval_results_are_the_results_file(run_dir):
    written = render_report(run_dir)
    assert sorted(p.relative_to(run_dir).as_posix() for p in written if p.name == MODEL_CARD_FILE) == sorted(
        f"checkpoints/{name}/README.md" for name in TRAINED
    )
    assert not RunLayout(run_dir).model_card("base").exists(), "base has no weights of its own"
    for name in TRAINED:
        card, result = read_back(run_dir, name)
        assert card_values(card) == {metric: value.value for metric, value in result.metrics.items()}
        assert {e.metric_name for e in card.data.eval_results} == {result.presentation[m].label for m in result.metrics}
        manifest = Manifest.load(RunLayout(run_dir).checkpoint(name))
        assert card.data.base_model == manifest.base_model and card.data.library_name == "peft"
        assert card.data.license is None and "\n# license: (not set)" in RunLayout(run_dir).model_card(name).read_text()
        assert {"peft", "lora", f"{manifest.stage}-stage"} <= set(card.data.tags)
        assert card.data.model_name == f"fixture/{name}"


def test_the_body_states_lineage_settings_deltas_and_the_limits_of_the_safety_numbers(run_dir):
    render_report(run_dir)
    card, result = read_back(run_dir, "instruct")
    text = card.text
    assert "trained on top of domain" in text and "| 1 | domain | domain |" in text
    assert "| lora.r | 8 |" in text and "| Optimizer steps | 20 |" in text
    assert "| Held-out perplexity | 19.13 | [18.05, 20.23] | 21 |" in text
    assert "| Held-out perplexity ↓ | instruct − base | -6.16** | [-6.85, -5.56] | p=0.002 | paired_bootstrap | 21 |" in text
    assert sum(len(references) for references in result.deltas.values()) == text.count("| instruct − ")
    assert "| Refusal rate (harmful) | 80.0% | [60.0%, 95.0%] | unknown: these results do not record" in text
    assert "| **heldout_ngram_overlap** | **0.0031** |" in text, "the run's data splits and leakage checks"
    assert "converted from SmolLM2-135M-Instruct.Q4_1.gguf" in text, "the embedded base is not the hub's weights"


def test_recorded_datasets_cap_shares_and_detector_agreement_reach_the_card(run_dir):
    path = RunLayout(run_dir).result("domain")
    data = json.loads(path.read_text())
    for metric, presentation in data["presentation"].items():
        presentation["dataset"] = "safety_prompts" if metric in {"refusal_rate_harmful", "crisis_referral_rate"} else None
    data["metrics"]["refusal_rate_harmful"]["capped_share"] = 0.35
    data["metrics"]["crisis_referral_rate"]["capped_share"] = 0.05
    data["evals"]["safety"]["details"]["refusal_detector_agreement"] = {"xstest": {"detector": 0.976, "n": 450}}
    path.write_text(json.dumps(data))
    manifest = Manifest.load(RunLayout(run_dir).checkpoint("base"))
    manifest.data_fingerprints["safety_prompts"] = "ab12" * 16
    manifest.save(RunLayout(run_dir).checkpoint("base"))
    render_report(run_dir)
    card, _ = read_back(run_dir, "domain")
    datasets = {e.metric_type: (e.dataset_type, e.dataset_name, e.task_name) for e in card.data.eval_results}
    assert datasets["refusal_rate_harmful"] == ("safety_prompts", "safety prompts (sha256 ab12ab12ab12)", "Safety")
    assert datasets["heldout_perplexity"][0] == "harness-eval"
    assert "| Refusal rate (harmful) | 65.0% | [45.0%, 85.0%] | no: 35% of replies were cut at the token cap, above 20%" in card.text
    assert "| Crisis referral rate | 75.0% | [55.0%, 90.0%] | yes (5% of replies cut at the token cap) |" in card.text
    assert "| safety | refusal_detector_agreement.xstest.detector | 0.976 |" in card.text


def test_a_card_does_not_change_the_checkpoint_fingerprint_or_completeness(tmp_path):
    checkpoint = RunLayout(tmp_path).checkpoint("domain")
    checkpoint.mkdir(parents=True)
    (checkpoint / "adapter_config.json").write_text(json.dumps({"r": 4, "target_modules": ["q_proj", "v_proj"]}))
    (checkpoint / "adapter_model.safetensors").write_bytes(b"weights")
    before = adapter_fingerprint(checkpoint)
    Manifest(arm="domain", stage="domain", parent=None, base_model="m", base_fingerprint="b", config_hash="c", seed=0,
             adapter_fingerprint=before).save(checkpoint)
    (checkpoint / MODEL_CARD_FILE).write_text("---\nlibrary_name: peft\n---\n# a card, rewritten after every report\n")
    assert adapter_fingerprint(checkpoint) == before
    manifest, damage = read_checkpoint(checkpoint)
    assert damage is None and manifest.adapter_fingerprint == before


# ---- end to end: a corpus of both shared PDFs and a text file, on the tiny settings ----

NOTES = (
    "Keeping a Sleep Diary\n\n"
    "A sleep diary records when you went to bed, when you woke and how rested you felt. After two weeks the entries "
    "show patterns that memory misses, such as poor nights after late screens. Bring it to appointments.\n\n"
    "Talking to Someone You Trust\n\n"
    "Saying how you feel out loud to a friend can make a heavy week lighter. They do not need to fix anything; "
    "listening is enough. If low mood lasts more than two weeks, speak to a doctor or a counselor as well.\n"
)


def harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, shared_data, embedded_model_dir):
    root = tmp_path_factory.mktemp("corpus-run")
    (root / "notes.txt").write_text(NOTES, encoding="utf-8")
    settings = [
        "--config", str(REPO / "configs" / "tiny.yaml"),
        "--set", f"data.domain.documents=[{shared_data / 'domain'}, {root / 'notes.txt'}]",
        "--set", "data.domain.heldout_fraction=0.02",
    ]
    first = harness("run-all", *settings, "--output", str(root / "run"))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return root / "run", settings


@pytest.mark.slow
def test_a_run_on_two_pdfs_and_a_text_file_scores_every_document_and_writes_cards(corpus_run):
    run_dir, _ = corpus_run
    inspected = json.loads(RunLayout(run_dir).run_json.read_text())["data_inspect"]["domain"]
    documents = [(d["document"], d["split"]) for d in inspected["documents"]]
    assert documents == [
        ("nimh_bipolar_disorder_22-MH-8088.pdf", "train+heldout"),
        ("surgeon_general_protecting_youth_mental_health_2021.pdf", "train+heldout"),
        ("notes.txt", "train+heldout"),
    ]
    scored = {json.loads(line)["extra"]["document"] for line in RunLayout(run_dir).samples("domain", "perplexity").open()}
    assert scored == {name for name, _ in documents}, "every document's held-out sections are scored"
    for name in ("domain", "instruct-only", "instruct"):
        card, result = read_back(run_dir, name)
        assert same_numbers(card_values(card), {metric: value.value for metric, value in result.metrics.items()})
        manifest = Manifest.load(RunLayout(run_dir).checkpoint(name))
        assert manifest.training_data and all("@sha256:" in source for source in manifest.training_data)
        assert set(manifest.training_data) <= set(card.data.datasets)
        assert {e.dataset_type for e in card.data.eval_results} == {"domain_split", "counseling_split", "safety_prompts"}
    domain_manifest = Manifest.load(RunLayout(run_dir).checkpoint("domain"))
    assert (domain_manifest.training["window_tokens"], domain_manifest.training["max_steps"]) == (64, 2)
    assert "max_length" not in domain_manifest.training, "the SFT example limit does not apply to domain windows"
    domain_card, _ = read_back(run_dir, "domain")
    assert "| training.window_tokens | 64 |" in domain_card.text
    assert set(domain_card.data.datasets) == {f"{d['document']}@sha256:{d['sha256']}" for d in inspected["documents"]}


@pytest.mark.slow
def test_data_inspect_shows_every_document_and_a_rerun_trains_nothing_again(corpus_run):
    run_dir, settings = corpus_run
    inspect = harness("data", "inspect", *settings, "--json")
    assert inspect.returncode == 0, inspect.stderr[-2000:]
    report = json.loads(inspect.stdout)
    assert [d["document"] for d in report["domain"]["documents"]] == [
        "nimh_bipolar_disorder_22-MH-8088.pdf", "surgeon_general_protecting_youth_mental_health_2021.pdf", "notes.txt",
    ]
    assert report["domain"]["pages"] == 8 + 53 + 1
    cards = {p: p.read_text() for p in RunLayout(run_dir).checkpoints_dir.glob(f"*/{MODEL_CARD_FILE}")}
    adapters = {p: p.stat().st_mtime_ns for p in RunLayout(run_dir).checkpoints_dir.glob("*/adapter_model.safetensors")}
    assert len(cards) == len(adapters) == 3
    again = harness("run-all", *settings, "--output", str(run_dir))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stderr.count("checkpoint is up to date, skipping") == 3, "a card beside the adapter must not look like damage"
    assert again.stderr.count("results are up to date, skipping") == 4
    assert {p: p.stat().st_mtime_ns for p in adapters} == adapters
    assert {p: p.read_text() for p in cards} == cards, "a card is a function of the saved files"
