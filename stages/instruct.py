"""Instruction tuning: LoRA SFT on counseling conversations, loss on the assistant reply only.

TRL's `SFTTrainer` receives conversations already tokenized with their label mask (see
`harness.stages.sft_examples`): it keeps a `labels` column as given, so the mask that trains is the one the
tests check, whatever the chat template's support for assistant-token masks.

The loss is the model's masked cross-entropy (`Trainer.compute_loss`, computed block by block by
`harness.stages.speed.blockwise_loss`), as in the domain stage.
TRL 1.16's default swaps in a chunked LM head that also computes entropy and top-1 accuracy for its
logs; without Triton (on the CPU) that head runs as torch ops over every position and recomputes the
logits in an fp32 backward, which took a third of an instruct step here (benchmarks/README.md). On a
GPU the model's loss holds the full logits in memory (in the compute dtype), as the domain stage's does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.run.config import HarnessConfig
from harness.core.console import console
from harness.data.conversations import Conversation
from harness.run.manifest import TrainingRecord
from harness.stages.batching import PadCollator, TokenizedExample
from harness.stages.sft_examples import sft_examples
from harness.stages.training import StageData, run_lora_stage


def make_sft_trainer(
    model: Any,
    tokenizer: Any,
    train: list[TokenizedExample],
    arguments: dict[str, Any],
    collator: PadCollator,
    callbacks: list[Any],
    max_length: int,
) -> Any:
    """An `SFTTrainer` over pre-tokenized examples (ids + labels); no packing, no re-tokenization."""
    from datasets import Dataset
    from transformers import Trainer
    from trl import SFTConfig, SFTTrainer

    class ModelLossSFTTrainer(SFTTrainer):
        """`SFTTrainer` with the model's own masked cross-entropy as the loss (see the module docstring)."""

        compute_loss = Trainer.compute_loss

    return ModelLossSFTTrainer(
        model=model,
        args=SFTConfig(**arguments, max_length=max_length, packing=False, padding_free=False),
        train_dataset=Dataset.from_list([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in train]),
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def train_instruct(
    config: HarnessConfig,
    *,
    start_ref: str,
    tokenizer: Any,
    train: list[Conversation],
    test: list[Conversation],
    out_dir: Path,
) -> TrainingRecord:
    """Train the instruction adapter on `start_ref`; write adapter and tokenizer into `out_dir`; return what training measured."""
    settings = config.training.instruct
    system_prompt = config.data.counseling.system_prompt
    train_examples = sft_examples(tokenizer, train, system_prompt, settings.max_length, split="train")
    test_examples = sft_examples(tokenizer, test, system_prompt, settings.max_length, split="test")
    dropped = len(train) + len(test) - len(train_examples) - len(test_examples)
    if dropped:
        console.print(
            f"[yellow]instruct: {dropped} conversation(s) left out: their prompt alone fills "
            f"training.instruct.max_length={settings.max_length} tokens[/yellow]"
        )

    def make_trainer(model: Any, arguments: dict[str, Any], collator: PadCollator, callbacks: list[Any]) -> Any:
        return make_sft_trainer(model, tokenizer, train_examples, arguments, collator, callbacks, settings.max_length)

    return run_lora_stage(
        config,
        settings,
        StageData("instruct", train_examples, test_examples, unit="conversation"),
        start_ref=start_ref,
        tokenizer=tokenizer,
        out_dir=Path(out_dir),
        make_trainer=make_trainer,
    )
