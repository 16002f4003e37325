"""Stage runners on the embedded SmolLM2: a couple of optimizer steps each, in 8-bit, on tiny data."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from harness.run.config import HarnessConfig
from harness.data.conversations import Conversation
from harness.core.errors import HarnessError
from harness.run.manifest import CheckpointOrigin, Manifest, TrainingRecord, stage_manifest
from harness.models.loading import bf16_supported
from harness.stages.batching import IGNORE_INDEX, causal_lm_examples, pad_batch
from harness.stages.domain import train_domain
from harness.stages.heldout_loss import token_weighted_loss
from harness.stages.instruct import train_instruct
from harness.stages.training import use_bf16_autocast

SAMPLE_CONVERSATIONS = Path(__file__).resolve().parents[1] / "harness" / "sample_data" / "counseling_conversations.jsonl"
WINDOW = 48


def make_config(**training: Any) -> HarnessConfig:
    stage = {"max_steps": 2, "batch_size": 2, "grad_accum": 1, "learning_rate": 1e-3, "max_length": 128, "warmup_ratio": 0.0}
    return HarnessConfig.model_validate(
        {
            "seed": 3,
            "data": {
                "domain": {"pdf": "unused.pdf"},
                "counseling": {"path": "unused.csv"},
                "safety": {"sources": []},
            },
            "training": {"bf16_autocast": False, "domain": stage, "instruct": stage, **training},
        }
    )


def manifest_of(record: TrainingRecord, arm: str, stage: str) -> Manifest:
    """The manifest the pipeline files for a stage's record (see `harness.run.manifest.stage_manifest`)."""
    origin = CheckpointOrigin(
        arm=arm, stage=stage, parent=None, base_model="smollm2-135m-instruct", base_fingerprint="base-fp",
        start_fingerprint="base-fp", config_hash="cfg-hash", data_fingerprints={"domain_pdf": "pdf-hash"},
        training_data=["unused.pdf@sha256:pdf-hash"], seed=3,
    )
    return stage_manifest(origin, make_config(), record, None)


def sample_conversations(n: int) -> list[Conversation]:
    rows = [json.loads(line) for line in SAMPLE_CONVERSATIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Conversation(f"c{i}", f"q{i}", row["Context"], row["Response"]) for i, row in enumerate(rows[:n])]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Training steps with 2 OpenMP threads on a shared 2-core machine ran 10x slower (threads spin-wait)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def windows(embedded_tokenizer) -> list[list[int]]:
    text = " ".join(c.response for c in sample_conversations(12))
    ids = embedded_tokenizer(text, add_special_tokens=False)["input_ids"]
    return [ids[i : i + WINDOW] for i in range(0, len(ids) - WINDOW, WINDOW)]


def adapter_logits(start_ref: str, adapter_dir: Path | None, input_ids: list[int]) -> Any:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(start_ref, dtype=torch.float32)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([input_ids])).logits


@pytest.mark.model
def test_domain_stage_writes_a_loadable_adapter_and_a_complete_manifest(
    embedded_model_dir, embedded_tokenizer, windows, tmp_path, capfd
):
    config = make_config()
    out_dir = tmp_path / "domain"
    record = train_domain(
        config,
        start_ref=str(embedded_model_dir),
        tokenizer=embedded_tokenizer,
        train_windows=windows[:4],
        heldout_windows=windows[4:6],
        out_dir=out_dir,
    )
    manifest = manifest_of(record, "domain", "domain")

    written = {p.name for p in out_dir.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json"} <= written
    assert "manifest.json" not in written, "the pipeline writes the manifest, last, from the stage's record"
    assert (manifest.arm, manifest.stage, manifest.base_fingerprint, manifest.seed) == ("domain", "domain", "base-fp", 3)
    assert manifest.data_fingerprints == {"domain_pdf": "pdf-hash"}
    assert manifest.load_in_8bit is True and manifest.bf16_autocast is False
    assert manifest.lora["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert 0 < manifest.trainable_params < manifest.total_params / 50
    assert [p.step for p in manifest.train_loss] == [1, 2]
    assert [p.step for p in manifest.eval_loss] == [0, 2]
    assert all(p.loss > 0 for p in manifest.train_loss + manifest.eval_loss)
    assert manifest.train_tokens == 2 * 2 * WINDOW
    assert manifest.tokens_per_s > 0 and manifest.wall_time_s > 0 and manifest.peak_rss_mb > 100
    assert {"torch", "transformers", "peft", "trl", "bitsandbytes", "harness"} <= set(manifest.versions)
    assert manifest.hardware["cpu_count"] >= 1 and manifest.hardware["torch_threads"] >= 1
    assert dt.datetime.fromisoformat(manifest.created).tzinfo is not None
    assert "{'loss'" not in capfd.readouterr().out

    probe = windows[6]
    trained = adapter_logits(str(embedded_model_dir), out_dir, probe)
    base = adapter_logits(str(embedded_model_dir), None, probe)
    assert trained.shape == base.shape
    assert (trained - base).abs().max().item() > 1e-4


@pytest.mark.model
def test_instruct_stage_trains_on_conversations_and_records_the_start_loss(embedded_model_dir, embedded_tokenizer, tmp_path):
    from harness.stages.sft_examples import sft_examples

    config = make_config()
    train, test = sample_conversations(6)[:4], sample_conversations(6)[4:]
    out_dir = tmp_path / "instruct"
    record = train_instruct(
        config,
        start_ref=str(embedded_model_dir),
        tokenizer=embedded_tokenizer,
        train=train,
        test=test,
        out_dir=out_dir,
    )

    examples = sft_examples(embedded_tokenizer, train, config.data.counseling.system_prompt, 128, split="train")
    assert len(examples) == len(train)
    assert record.train_tokens == sum(len(e["input_ids"]) for e in examples)
    assert [p.step for p in record.eval_loss] == [0, 2]
    trained = adapter_logits(str(embedded_model_dir), out_dir, examples[0]["input_ids"])
    base = adapter_logits(str(embedded_model_dir), None, examples[0]["input_ids"])
    assert (trained - base).abs().max().item() > 1e-4


@pytest.mark.model
def test_unknown_lora_target_names_the_model_linear_layers(embedded_model_dir, embedded_tokenizer, windows, tmp_path):
    config = make_config()
    config.lora.target_modules = ["q_proj", "qkv_fused"]
    with pytest.raises(HarnessError, match="qkv_fused") as caught:
        train_domain(
            config,
            start_ref=str(embedded_model_dir),
            tokenizer=embedded_tokenizer,
            train_windows=windows[:4],
            heldout_windows=windows[4:6],
            out_dir=tmp_path / "out",
        )
    message = str(caught.value)
    assert "lora.target_modules" in message
    assert all(name in message for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))
    assert "q_proj, qkv_fused" not in message


def test_fewer_windows_than_one_batch_is_an_error_naming_both_numbers(tmp_path):
    with pytest.raises(HarnessError, match=r"1 training window.*training\.domain\.batch_size is 2"):
        train_domain(
            make_config(),
            start_ref="unused",
            tokenizer=None,
            train_windows=[[1, 2, 3]],
            heldout_windows=[[4, 5, 6]],
            out_dir=tmp_path / "out",
        )
    assert not (tmp_path / "out").exists()
    with pytest.raises(HarnessError, match="training split has no windows"):
        train_domain(
            make_config(),
            start_ref="unused",
            tokenizer=None,
            train_windows=[],
            heldout_windows=[[4, 5, 6]],
            out_dir=tmp_path / "out",
        )


def test_empty_heldout_split_is_an_error(tmp_path):
    with pytest.raises(HarnessError, match="held-out split has no windows"):
        train_domain(
            make_config(),
            start_ref="unused",
            tokenizer=None,
            train_windows=[[1, 2, 3], [4, 5, 6]],
            heldout_windows=[],
            out_dir=tmp_path / "out",
        )


@pytest.mark.model
def test_empty_test_conversations_are_an_error(embedded_tokenizer, tmp_path):
    with pytest.raises(HarnessError, match="held-out split has no conversations"):
        train_instruct(
            make_config(),
            start_ref="unused",
            tokenizer=embedded_tokenizer,
            train=sample_conversations(2),
            test=[],
            out_dir=tmp_path / "out",
        )


def test_bf16_setting_auto_follows_the_hardware():
    assert use_bf16_autocast(True) is True
    assert use_bf16_autocast(False) is False
    assert use_bf16_autocast("auto") is bf16_supported()


def test_padding_is_masked_by_length_even_when_pad_is_a_real_token():
    pad = 2
    batch = pad_batch([{"input_ids": [5, 2], "labels": [-100, 2]}, {"input_ids": [7, 8, 9, 2], "labels": [7, 8, 9, 2]}], pad)
    assert batch["input_ids"].tolist() == [[5, 2, pad, pad], [7, 8, 9, 2]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 2, IGNORE_INDEX, IGNORE_INDEX], [7, 8, 9, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


@pytest.mark.model
def test_heldout_loss_is_token_weighted_and_ignores_padding(embedded_model_dir, windows):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(embedded_model_dir), dtype=torch.float32).eval()
    texts = [windows[0], windows[1][:9], windows[2][:30]]
    with torch.no_grad():
        per_text = [float(model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss) for ids in texts]
    expected = sum(loss * (len(ids) - 1) for loss, ids in zip(per_text, texts)) / sum(len(ids) - 1 for ids in texts)
    measured = token_weighted_loss(model, causal_lm_examples(texts), batch_size=2, pad_id=2, bf16=False)
    assert measured == pytest.approx(expected, rel=1e-4)
    assert measured != pytest.approx(sum(per_text) / len(per_text), rel=1e-3)
