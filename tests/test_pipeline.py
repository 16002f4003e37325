"""`harness run-all` end to end on the tiny config: four arms, resume, every metric, a report."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.manifest import Manifest

REPO = Path(__file__).resolve().parents[1]
METRICS = {
    "heldout_perplexity",
    "heldout_bits_per_byte",
    "rouge1",
    "rouge2",
    "rougeL",
    "bertscore_f1",
    "refusal_rate_harmful",
    "over_refusal_rate_benign",
    "crisis_referral_rate",
    "unverified_hotlines",
}


def run_all(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from harness.cli import app; app()", "run-all", "--config", "configs/tiny.yaml", "--output", str(run_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, embedded_model_dir):
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    first = run_all(run_dir)
    assert first.returncode == 0, first.stderr[-3000:]
    return run_dir, first


def test_all_arms_have_complete_checkpoints(tiny_run):
    run_dir, _ = tiny_run
    for arm, parent in [("domain", None), ("instruct", "domain"), ("instruct-only", None)]:
        manifest = Manifest.load(run_dir / "checkpoints" / arm)
        assert manifest.parent == parent
        assert (run_dir / "checkpoints" / arm / "adapter_model.safetensors").is_file()
        assert manifest.train_loss and manifest.eval_loss and 0 < manifest.trainable_params < manifest.total_params
    assert Manifest.load(run_dir / "checkpoints" / "base").stage is None


def test_every_metric_for_every_checkpoint(tiny_run):
    run_dir, _ = tiny_run
    for name in ("base", "domain", "instruct", "instruct-only"):
        result = json.loads((run_dir / "results" / f"{name}.json").read_text())
        assert METRICS <= set(result["metrics"]), name
        if name != "base":
            assert "base" in result["deltas"]["heldout_perplexity"]
    instruct = json.loads((run_dir / "results" / "instruct.json").read_text())
    assert "instruct-only" in instruct["deltas"]["rougeL"]


def test_every_arm_is_scored_on_the_same_items(tiny_run):
    run_dir, _ = tiny_run
    ids = {}
    for name in ("base", "domain", "instruct", "instruct-only"):
        lines = (run_dir / "samples" / name / "safety.jsonl").read_text().splitlines()
        ids[name] = [json.loads(line)["id"] for line in lines]
    assert len({tuple(v) for v in ids.values()}) == 1


def test_report_is_written(tiny_run):
    run_dir, _ = tiny_run
    assert "instruct-only" in (run_dir / "report.md").read_text()
    assert (run_dir / "report.html").stat().st_size > 1000


def test_every_trained_checkpoint_has_a_model_card_holding_its_results(tiny_run):
    """Cards are written before the re-run below, which must still find every checkpoint up to date."""
    from huggingface_hub import ModelCard

    run_dir, _ = tiny_run
    for name in ("domain", "instruct", "instruct-only"):
        card = ModelCard.load(run_dir / "checkpoints" / name / "README.md")
        result = json.loads((run_dir / "results" / f"{name}.json").read_text())
        assert {e.metric_type: e.metric_value for e in card.data.eval_results} == {m: v["value"] for m, v in result["metrics"].items()}
        assert {e.dataset_type for e in card.data.eval_results} == {"domain_split", "counseling_split", "safety_prompts"}
        manifest = Manifest.load(run_dir / "checkpoints" / name)
        assert card.data.base_model == manifest.base_model and set(manifest.training_data) <= set(card.data.datasets)
    assert not (run_dir / "checkpoints" / "base" / "README.md").exists()


def test_instruct_adapter_loads_with_plain_peft(tiny_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run_dir, _ = tiny_run
    merged = next((run_dir / "merged").glob("domain-*"))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(merged), run_dir / "checkpoints" / "instruct")
    assert any("lora_A" in name for name, _ in model.named_parameters())


def test_second_run_skips_every_stage_and_eval(tiny_run):
    run_dir, _ = tiny_run
    before = {p: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").glob("*/adapter_model.safetensors")}
    second = run_all(run_dir)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("checkpoint is up to date, skipping") == 3
    assert second.stderr.count("results are up to date, skipping") == 4
    assert before == {p: p.stat().st_mtime_ns for p in before}


def harness_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from harness.cli import app; app()", *args], cwd=REPO, capture_output=True, text=True, timeout=1800
    )


def test_a_limited_eval_never_replaces_the_full_results(tiny_run):
    run_dir, _ = tiny_run
    kept = [run_dir / "results" / "base.json", run_dir / "samples" / "base" / "safety.jsonl"]
    before = [path.read_bytes() for path in kept]
    quick = harness_cli(
        "eval", "--config", "configs/tiny.yaml", "--output", str(run_dir), "--checkpoint", "base", "--suite", "safety", "--limit", "1"
    )
    assert quick.returncode == 0, quick.stderr[-3000:]
    assert [path.read_bytes() for path in kept] == before
    beside = run_dir / "partial" / "safety-limit1"
    limited = json.loads((beside / "results" / "base.json").read_text())
    assert set(limited["evals"]) == {"safety"} and limited["limit"] == 1
    assert str(beside) in " ".join(quick.stderr.split())
    assert harness_cli("report", str(beside)).returncode == 0


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _whole_again(path: Path, complete: bytes) -> bool:
    """The redone file is whole: JSON that parses, a log with every record, weights of the complete size."""
    if path.suffix == ".json":
        return bool(json.loads(path.read_text()))
    if path.suffix == ".jsonl":
        return [json.loads(line)["id"] for line in path.read_text().splitlines()] == [
            json.loads(line)["id"] for line in complete.decode().splitlines()
        ]
    return len(path.read_bytes()) == len(complete)


DAMAGES = {
    "results": ("results/domain.json", "results/domain.json", "damaged", "evaluating domain again"),
    "samples": ("samples/domain/safety.jsonl", "samples/domain/safety.jsonl", "damaged", "evaluating domain again"),
    "manifest": ("checkpoints/instruct-only/manifest.json", "checkpoints/instruct-only/manifest.json", "not a valid manifest",
                 "training instruct-only again"),
    "adapter": ("checkpoints/instruct-only/adapter_model.safetensors", "checkpoints/instruct-only", "adapter files do not match",
                "training instruct-only again"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_node_is_named_and_redone(tiny_run, damage):
    run_dir, _ = tiny_run
    relative, named, symptom, redo = DAMAGES[damage]
    damaged = run_dir / relative
    complete = damaged.read_bytes()
    _truncate(damaged)
    rerun = run_all(run_dir)
    assert rerun.returncode == 0 and "Traceback" not in rerun.stderr, rerun.stderr[-3000:]
    message = " ".join(rerun.stderr.split())
    assert f"{run_dir / named}: {symptom}" in message and redo in message, message[-2000:]
    assert _whole_again(damaged, complete)
    for name in ("base", "domain", "instruct", "instruct-only"):
        assert METRICS <= set(json.loads((run_dir / "results" / f"{name}.json").read_text())["metrics"]), name
