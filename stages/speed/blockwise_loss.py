"""The training loss: next-token cross-entropy computed a few rows of logits at a time.

transformers' own causal-LM loss first copies every logit to fp32 ([tokens, vocabulary]: 100 MB
for a 2 x 256 micro-batch over SmolLM2's 49k vocabulary), `log_softmax` writes a second tensor of
that size, and its backward pass a third and a fourth. On the CPU those large, freshly allocated
tensors cost more than the arithmetic: the loss took 157 ms of forward and backward per 2 x 256
micro-batch against 66 ms block by block (benchmarks/README.md). Each block of rows is still upcast
to fp32 for its log-sum-exp and its gradient, so the loss and gradients are the same to fp32
rounding; only the gradient handed back to the LM head is stored in the logits' dtype, as the
upcast's own backward pass would have done.
"""

from __future__ import annotations

from typing import Any

import torch

ROWS_PER_BLOCK = 16
"""Positions per block: 16 x 49k fp32 values (3 MB) stay in the CPU's cache between the passes over them."""


class BlockwiseCrossEntropy(torch.autograd.Function):
    """Per-position cross-entropy of `logits` [positions, vocabulary] against `targets`; 0 where the target is ignored."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, targets: torch.Tensor, ignore_index: int) -> torch.Tensor:
        scored = targets != ignore_index
        safe_targets = targets.masked_fill(~scored, 0)
        log_normalizers = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
        for start in range(0, logits.shape[0], ROWS_PER_BLOCK):
            rows = slice(start, start + ROWS_PER_BLOCK)
            log_normalizers[rows] = torch.logsumexp(logits[rows].float(), dim=-1)
        target_logits = logits.gather(1, safe_targets.unsqueeze(1)).squeeze(1).float()
        ctx.save_for_backward(logits, safe_targets, scored, log_normalizers)
        return torch.where(scored, log_normalizers - target_logits, 0.0)

    @staticmethod
    def backward(ctx: Any, grad_losses: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        logits, safe_targets, scored, log_normalizers = ctx.saved_tensors
        row_scales = torch.where(scored, grad_losses, 0.0).unsqueeze(1)
        grad_logits = torch.empty_like(logits)
        minus_one = torch.full((ROWS_PER_BLOCK, 1), -1.0, device=logits.device)
        for start in range(0, logits.shape[0], ROWS_PER_BLOCK):
            rows = slice(start, start + ROWS_PER_BLOCK)
            probabilities = (logits[rows].float() - log_normalizers[rows].unsqueeze(1)).exp_()
            count = probabilities.shape[0]
            probabilities.scatter_add_(1, safe_targets[rows].unsqueeze(1), minus_one[:count])
            grad_logits[rows] = probabilities.mul_(row_scales[rows])
        return grad_logits, None, None


def causal_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    vocab_size: int,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
    shift_labels: torch.Tensor | None = None,
    **_: Any,
) -> torch.Tensor:
    """A drop-in for transformers' `ForCausalLMLoss` (set as `model.loss_function`): position t predicts label t+1.

    The mean is over scored tokens, or the sum divided by `num_items_in_batch` when the trainer
    passes the token count of the whole accumulated batch.
    """
    if shift_labels is None:
        shift_labels = torch.nn.functional.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    targets = shift_labels.reshape(-1).to(logits.device)
    total = BlockwiseCrossEntropy.apply(logits.reshape(-1, vocab_size), targets, ignore_index).sum()
    if num_items_in_batch is None:
        return total / (targets != ignore_index).sum()
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch
