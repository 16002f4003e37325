"""SFT label masks on real conversations tokenized with the embedded SmolLM2 tokenizer.

The loss must fall on the assistant reply and its end-of-turn token only: every system, user and
template token is -100, and SFTTrainer must train on exactly these labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.data.conversations import Conversation
from harness.core.errors import HarnessError
from harness.stages.batching import IGNORE_INDEX
from harness.stages.sft_examples import sft_examples, tokenize_conversation

pytestmark = pytest.mark.model

SAMPLE_CONVERSATIONS = Path(__file__).resolve().parents[1] / "harness" / "sample_data" / "counseling_conversations.jsonl"
SYSTEM = "You are a calm, careful listener."


@pytest.fixture(scope="module")
def conversations() -> list[Conversation]:
    rows = [json.loads(line) for line in SAMPLE_CONVERSATIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Conversation(f"c{i}", f"q{i}", row["Context"], row["Response"]) for i, row in enumerate(rows)]


def reply_start(labels: list[int]) -> int:
    return next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)


def test_only_the_reply_and_its_end_of_turn_carry_labels(embedded_tokenizer, conversations):
    for conv in conversations:
        example = tokenize_conversation(embedded_tokenizer, conv, SYSTEM, max_length=4096)
        ids, labels = example["input_ids"], example["labels"]
        start = reply_start(labels)

        assert len(ids) == len(labels)
        assert all(label == IGNORE_INDEX for label in labels[:start])
        assert labels[start:] == ids[start:]
        prompt_text = embedded_tokenizer.decode(ids[:start])
        assert prompt_text.startswith("<|im_start|>system\n" + SYSTEM)
        assert conv.prompt.strip() in prompt_text
        assert prompt_text.endswith("<|im_start|>assistant\n")
        assert embedded_tokenizer.decode(ids[start:]) == conv.response.strip() + "<|im_end|>"


def test_prompt_tokens_are_the_generation_prompt_tokens(embedded_tokenizer, conversations):
    conv = conversations[0]
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": conv.prompt}]
    generation_prompt = embedded_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected = embedded_tokenizer(generation_prompt, add_special_tokens=False)["input_ids"]
    example = tokenize_conversation(embedded_tokenizer, conv, SYSTEM, max_length=4096)
    assert example["input_ids"][: reply_start(example["labels"])] == expected


def test_truncation_cuts_the_reply_and_drops_prompts_that_fill_the_window(embedded_tokenizer, conversations):
    conv = conversations[1]
    full = tokenize_conversation(embedded_tokenizer, conv, SYSTEM, max_length=4096)
    prompt_length = reply_start(full["labels"])

    cut = tokenize_conversation(embedded_tokenizer, conv, SYSTEM, max_length=prompt_length + 5)
    assert cut["input_ids"] == full["input_ids"][: prompt_length + 5]
    assert sum(label != IGNORE_INDEX for label in cut["labels"]) == 5
    assert tokenize_conversation(embedded_tokenizer, conv, SYSTEM, max_length=prompt_length) is None

    with pytest.raises(HarnessError, match="training.instruct.max_length=8"):
        sft_examples(embedded_tokenizer, conversations[:3], SYSTEM, 8, split="train")


@pytest.fixture(scope="module")
def sft_trainer(embedded_model_dir, embedded_tokenizer, conversations, tmp_path_factory):
    from harness.run.config import HarnessConfig, StageTraining
    from harness.stages.batching import PadCollator
    from harness.stages.instruct import make_sft_trainer
    from harness.stages.lora_model import load_lora_model
    from harness.stages.training import trainer_arguments

    config = HarnessConfig.model_validate(
        {
            "model": {"load_in_8bit": False},
            "data": {"domain": {"pdf": "unused.pdf"}, "counseling": {"path": "unused.csv"}, "safety": {"sources": []}},
        }
    )
    examples = sft_examples(embedded_tokenizer, conversations[:4], SYSTEM, 96, split="train")
    settings = StageTraining(batch_size=4, grad_accum=1, max_steps=1)
    arguments = trainer_arguments(settings, seed=0, bf16=False, output_dir=tmp_path_factory.mktemp("sft"), report_to=[])
    trainer = make_sft_trainer(
        load_lora_model(config, str(embedded_model_dir)),
        embedded_tokenizer,
        examples,
        arguments,
        PadCollator(embedded_tokenizer.pad_token_id),
        [],
        96,
    )
    return trainer, examples


def test_sft_trainer_trains_on_exactly_these_labels(sft_trainer):
    trainer, examples = sft_trainer
    assert trainer.args.gradient_checkpointing is False, "SFTConfig's default recomputes every forward pass"
    prepared = trainer.train_dataset
    assert sorted(prepared[i]["labels"] for i in range(len(prepared))) == sorted(e["labels"] for e in examples)
    batch = next(iter(trainer.get_train_dataloader()))
    for row_ids, row_labels, row_mask in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), batch["attention_mask"].tolist()):
        length = sum(row_mask)
        original = next(e for e in examples if e["input_ids"] == row_ids[:length])
        assert row_labels[:length] == original["labels"]
        assert all(label == IGNORE_INDEX for label in row_labels[length:])


def test_sft_training_loss_is_the_mean_nll_of_the_reply_tokens(sft_trainer, embedded_tokenizer):
    """The trainer's loss is the held-out scorer's token-weighted NLL on the same batch, also when the
    trainer divides by the token count of a whole accumulated batch (`num_items_in_batch`)."""
    import torch

    from harness.stages.batching import count_label_tokens
    from harness.stages.heldout_loss import token_weighted_loss

    trainer, examples = sft_trainer
    model = trainer.model
    batch = {key: value.to(model.device) for key, value in trainer.data_collator(examples).items()}
    scored = sum(count_label_tokens(example) for example in examples)
    expected = token_weighted_loss(model, examples, batch_size=4, pad_id=embedded_tokenizer.pad_token_id, bf16=False)
    model.eval()
    try:
        with torch.no_grad():
            loss = trainer.compute_loss(model, dict(batch))
            accumulated = trainer.compute_loss(model, dict(batch), num_items_in_batch=torch.tensor(2 * scored))
    finally:
        model.train()
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert accumulated.item() == pytest.approx(expected / 2, rel=1e-5)


def test_the_stage_model_trains_with_the_harness_loss_attention_and_dropout(sft_trainer):
    from harness.stages.speed.blockwise_loss import causal_lm_loss
    from harness.stages.speed.lora_dropout import LaneDropout
    from harness.stages.speed.short_attention import ATTENTION_NAME

    base = sft_trainer[0].model.get_base_model()
    assert base.loss_function is causal_lm_loss
    assert base.config._attn_implementation == ATTENTION_NAME
    dropouts = [module for name, module in base.named_modules() if ".lora_dropout." in name]
    assert dropouts and all(isinstance(module, LaneDropout) for module in dropouts)
