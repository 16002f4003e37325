"""Token-weighted held-out loss: summed negative log-likelihood over all scored tokens / their count.

A mean of per-batch means would weight a short final batch, or a short conversation, as much as a
full one; summing first makes the number independent of batch size and padding.
"""

from __future__ import annotations

import contextlib
from typing import Any

from harness.stages.batching import IGNORE_INDEX, TokenizedExample, pad_batch


def summed_nll(logits: Any, labels: Any) -> tuple[float, int]:
    """(sum of next-token NLL, number of scored tokens) for one batch; position t predicts label t+1."""
    import torch

    shifted_logits = logits[:, :-1, :].float()
    shifted_labels = labels[:, 1:]
    total = torch.nn.functional.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.size(-1)),
        shifted_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return float(total.detach()), int((shifted_labels != IGNORE_INDEX).sum())


def autocast_context(enabled: bool, device_type: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for forward passes when enabled; weights and optimizer state stay fp32."""
    import torch

    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16)


def token_weighted_loss(model: Any, examples: list[TokenizedExample], *, batch_size: int, pad_id: int, bf16: bool) -> float:
    """Mean NLL per scored token of `examples` under `model` (in eval mode, restored afterwards).

    A 4-bit (NF4) base is run with gradients enabled (and nothing kept): with bitsandbytes 0.50.2 on
    the CPU, one forward pass of a 4-bit layer under `no_grad` or `inference_mode` leaves every LoRA
    gradient of later training steps at zero (tests/test_stages.py), and this loss is measured before
    and during training on the model being trained.
    """
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        grad_mode = contextlib.nullcontext() if getattr(model, "is_loaded_in_4bit", False) else torch.inference_mode()
        with grad_mode, autocast_context(bf16, device.type):
            for start in range(0, len(examples), batch_size):
                batch = pad_batch(examples[start : start + batch_size], pad_id)
                logits = model(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                    use_cache=False,
                ).logits
                batch_total, batch_count = summed_nll(logits, batch["labels"].to(device))
                total += batch_total
                count += batch_count
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("no scored tokens: every example is shorter than two tokens or fully masked")
    return total / count
