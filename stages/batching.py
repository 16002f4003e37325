"""Training examples as token ids with labels, and the padding that turns a list of them into a batch.

Padding is decided by each example's length, never by looking for the pad id: most chat models use
their end-of-turn token as the pad token, and that token also ends every reply the model must learn.
"""

from __future__ import annotations

from typing import Any, TypedDict

IGNORE_INDEX = -100
"""Label of a position that contributes no loss (prompt tokens and padding)."""


class TokenizedExample(TypedDict):
    input_ids: list[int]
    labels: list[int]


def causal_lm_examples(windows: list[list[int]]) -> list[TokenizedExample]:
    """Plain language modelling: every token of every window is a target."""
    return [{"input_ids": list(window), "labels": list(window)} for window in windows]


def count_label_tokens(example: TokenizedExample) -> int:
    """Tokens the model is scored on: labelled positions after the first (the first has no context)."""
    return sum(label != IGNORE_INDEX for label in example["labels"][1:])


def pad_batch(examples: list[TokenizedExample], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest example: ids with `pad_id`, labels with -100, attention mask 0."""
    import torch

    width = max(len(example["input_ids"]) for example in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        if len(example["labels"]) != len(example["input_ids"]):
            raise ValueError(f"example {row}: {len(example['labels'])} labels for {len(example['input_ids'])} tokens")
        length = len(example["input_ids"])
        input_ids[row, :length] = torch.tensor(example["input_ids"], dtype=torch.long)
        labels[row, :length] = torch.tensor(example["labels"], dtype=torch.long)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


class PadCollator:
    """`pad_batch` as a data collator for `Trainer`/`SFTTrainer` (a class, so it pickles for workers)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, examples: list[TokenizedExample]) -> dict[str, Any]:
        return pad_batch([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples], self.pad_id)
