"""Domain adaptation: continued causal-LM training of LoRA adapters on windows of the domain text.

Every token of a training window is a target. The held-out windows come from the contiguous
held-out region of the document, so the held-out loss curve measures adaptation to unseen text of
the domain, not recall of training text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.run.config import HarnessConfig
from harness.run.manifest import TrainingRecord
from harness.stages.batching import PadCollator, causal_lm_examples
from harness.stages.training import StageData, run_lora_stage


def train_domain(
    config: HarnessConfig,
    *,
    start_ref: str,
    tokenizer: Any,
    train_windows: list[list[int]],
    heldout_windows: list[list[int]],
    out_dir: Path,
) -> TrainingRecord:
    """Train the domain adapter on `start_ref`; write adapter and tokenizer into `out_dir`; return what training measured."""
    train = causal_lm_examples(train_windows)

    def make_trainer(model: Any, arguments: dict[str, Any], collator: PadCollator, callbacks: list[Any]) -> Any:
        from transformers import Trainer, TrainingArguments

        return Trainer(
            model=model,
            args=TrainingArguments(**arguments),
            train_dataset=train,
            data_collator=collator,
            processing_class=tokenizer,
            callbacks=callbacks,
        )

    return run_lora_stage(
        config,
        config.training.domain,
        StageData("domain", train, causal_lm_examples(heldout_windows), unit="window"),
        start_ref=start_ref,
        tokenizer=tokenizer,
        out_dir=Path(out_dir),
        make_trainer=make_trainer,
    )
