"""`training.report_to`: names checked against transformers' trackers, a missing package is a user error,
and with tensorboard a stage writes event files holding its train loss into `checkpoints/<arm>/logs/`.

Trains on the tiny Qwen3 stand-in (tests/qwen3_standin.py): three optimizer steps take a second or two.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from harness.run.config import REPORT_TO_PACKAGES, HarnessConfig, load_config
from harness.core.errors import HarnessError
from harness.stages.training import check_report_to
from tests.qwen3_standin import SAMPLE_DATA, build_qwen3_standin

REPO = Path(__file__).resolve().parents[1]
WINDOW = 32


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory) -> Path:
    return build_qwen3_standin(tmp_path_factory.mktemp("qwen3-standin"))


def stage_config(model_dir: Path, report_to: list[str]) -> HarnessConfig:
    stage = {"max_steps": 3, "batch_size": 2, "grad_accum": 1, "learning_rate": 1e-3, "warmup_ratio": 0.0, "logging_steps": 1}
    return HarnessConfig.model_validate(
        {
            "data": {"domain": {"pdf": "unused.pdf"}, "counseling": {"path": "unused.csv"}, "safety": {"sources": []}},
            "model": {"name": str(model_dir), "load_in_8bit": True},
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
            "training": {"bf16_autocast": False, "domain": stage, "report_to": report_to},
        }
    )


def train_tiny_domain_stage(model_dir: Path, out_dir: Path, report_to: list[str]):
    import torch

    from harness.models.loading import load_tokenizer
    from harness.stages.domain import train_domain

    config = stage_config(model_dir, report_to)
    tokenizer = load_tokenizer(str(model_dir), config.model)
    ids = tokenizer((SAMPLE_DATA / "counseling_conversations.jsonl").read_text(encoding="utf-8")[:6000], add_special_tokens=False)["input_ids"]
    windows = [ids[i : i + WINDOW] for i in range(0, len(ids) - WINDOW, WINDOW)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_domain(
            config,
            start_ref=str(model_dir),
            tokenizer=tokenizer,
            train_windows=windows[:-2],
            heldout_windows=windows[-2:],
            out_dir=out_dir,
        )
    finally:
        torch.set_num_threads(threads)


def test_tensorboard_event_files_in_the_checkpoint_hold_the_train_loss(standin_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out_dir = tmp_path / "checkpoints" / "domain"
    record = train_tiny_domain_stage(standin_dir, out_dir, ["tensorboard"])
    events = sorted((out_dir / "logs").glob("events.out.tfevents.*"))
    assert len(events) == 1, "one writer, in the checkpoint's logs folder, not in the trainer's scratch directory"
    accumulator = EventAccumulator(str(out_dir / "logs"))
    accumulator.Reload()
    logged = [(event.step, event.value) for event in accumulator.Scalars("train/loss")]
    assert [step for step, _ in logged] == [point.step for point in record.train_loss] == [1, 2, 3]
    assert [value for _, value in logged] == pytest.approx([point.loss for point in record.train_loss], rel=1e-6)


def test_without_report_to_no_logs_are_written(standin_dir, tmp_path):
    out_dir = tmp_path / "checkpoints" / "domain"
    train_tiny_domain_stage(standin_dir, out_dir, [])
    assert (out_dir / "adapter_model.safetensors").is_file()
    assert not (out_dir / "logs").exists()


def test_report_to_names_are_the_trackers_transformers_knows():
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    assert set(REPORT_TO_PACKAGES) == set(INTEGRATION_TO_CALLBACK)
    with pytest.raises(HarnessError, match=r"key `training.report_to`: unknown tracker tensorbord; transformers knows .*tensorboard"):
        load_config(REPO / "configs" / "tiny.yaml", ["training.report_to=[tensorbord]"])
    assert load_config(REPO / "configs" / "tiny.yaml", ["training.report_to=[tensorboard, wandb]"]).training.report_to == [
        "tensorboard",
        "wandb",
    ]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_a_tracker_whose_package_is_missing_fails_before_the_model_loads(standin_dir, tmp_path, monkeypatch):
    import harness.models.loading

    check_report_to(["tensorboard"])
    with pytest.raises(HarnessError, match=r"^training.report_to lists wandb, but the wandb package is not installed; `pip install wandb`"):
        check_report_to(["tensorboard", "wandb"])

    def no_loading(*args, **kwargs):
        raise AssertionError("the model must not be loaded when a tracker is missing")

    monkeypatch.setattr(harness.models.loading, "load_causal_lm", no_loading)
    monkeypatch.setattr("harness.stages.lora_model.load_causal_lm", no_loading)
    with pytest.raises(HarnessError, match="training.report_to"):
        train_tiny_domain_stage(standin_dir, tmp_path / "out", ["wandb"])
