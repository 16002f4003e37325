"""When a stage is reused and when it is retrained: the resume key, without training a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import pipeline
from harness.run.config import load_config
from harness.run.manifest import Manifest, TrainingRecord

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"


@pytest.fixture()
def trainings(monkeypatch) -> list[str]:
    """Stand-in for the trainer: records each arm it trains and returns a training record like a stage's."""
    trained: list[str] = []

    def fake_train(ctx, arm, start_ref, out_dir):
        trained.append(arm.name)
        (out_dir / "adapter_model.safetensors").write_bytes(f"{arm.name} {len(trained)}".encode())
        return TrainingRecord(
            trainable_params=1, total_params=2, wall_time_s=0.1, peak_rss_mb=1.0, train_tokens=4, tokens_per_s=40.0,
            bf16_autocast=False, world_size=1, train_loss=[], eval_loss=[],
        )

    monkeypatch.setattr(pipeline, "_train", fake_train)
    monkeypatch.setattr(pipeline, "start_model_for", lambda ctx, arm: (ctx.base_ref, None))
    monkeypatch.setattr(pipeline, "_stage_fingerprints", lambda ctx, arm_config, stage: {"domain_pdf": "pdf-1", "domain_split": ctx.split})
    monkeypatch.setattr(pipeline, "_stage_sources", lambda ctx, arm_config, stage: ["doc.pdf@sha256:pdf-1"])
    return trained


def _context(tmp_path: Path, overrides: list[str], split: str = "split-1") -> pipeline.RunContext:
    """A run context with no data loaded; the training split's fingerprint is `split`."""
    context = pipeline.RunContext(load_config(TINY, overrides), tmp_path, None, None, "base-ref", "base-fp")
    context.split = split
    return context


def train_domain_arm(context: pipeline.RunContext, **options) -> Manifest:
    return pipeline.train_arm(context, context.config.lineage.arm("domain"), **options)


def test_an_unchanged_stage_is_reused_and_fresh_retrains_it(tmp_path, trainings):
    train_domain_arm(_context(tmp_path, []))
    train_domain_arm(_context(tmp_path, []))
    assert trainings == ["domain"]
    train_domain_arm(_context(tmp_path, []), fresh=True)
    assert trainings == ["domain", "domain"]


@pytest.mark.parametrize(
    "change",
    [["lora.r=8"], ["training.domain.learning_rate=0.01"], ["training.bf16_autocast=false"], ["seed=1"], ["data.domain.stride=32"]],
)
def test_a_setting_that_changes_training_retrains(tmp_path, trainings, change):
    train_domain_arm(_context(tmp_path, []))
    train_domain_arm(_context(tmp_path, change))
    assert trainings == ["domain", "domain"]


def test_changed_data_retrains(tmp_path, trainings):
    train_domain_arm(_context(tmp_path, []))
    train_domain_arm(_context(tmp_path, [], split="split-2"))
    assert trainings == ["domain", "domain"]


@pytest.mark.parametrize("change", [["eval.limit=1"], ["training.instruct.learning_rate=0.01"], ["eval.generation.max_new_tokens=4"]])
def test_a_setting_this_stage_does_not_use_keeps_it(tmp_path, trainings, change):
    train_domain_arm(_context(tmp_path, []))
    train_domain_arm(_context(tmp_path, change))
    assert trainings == ["domain"]
