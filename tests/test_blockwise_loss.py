"""The block-by-block training loss gives transformers' causal-LM loss and gradients."""

from __future__ import annotations

import pytest
import torch
from transformers.loss.loss_utils import ForCausalLMLoss

from harness.stages.speed.blockwise_loss import ROWS_PER_BLOCK, causal_lm_loss

VOCAB = 97


def logits_and_labels(dtype: torch.dtype, batch: int = 3, length: int = 2 * ROWS_PER_BLOCK + 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of a length that leaves a partial last block, and labels with prompt and padding positions ignored."""
    generator = torch.Generator().manual_seed(0)
    logits = (4 * torch.randn(batch, length, VOCAB, generator=generator)).to(dtype)
    labels = torch.randint(0, VOCAB, (batch, length), generator=generator)
    labels[0, :7] = -100
    labels[2, -4:] = -100
    return logits, labels


def loss_and_gradient(loss_function, logits: torch.Tensor, labels: torch.Tensor, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = logits.detach().clone().requires_grad_(True)
    loss = loss_function(leaf, labels, VOCAB, **kwargs)
    (3.0 * loss).backward()
    return loss.detach(), leaf.grad


@pytest.mark.parametrize("num_items_in_batch", [None, 50, torch.tensor(50)])
def test_fp32_loss_and_gradient_equal_transformers(num_items_in_batch):
    logits, labels = logits_and_labels(torch.float32)
    ours = loss_and_gradient(causal_lm_loss, logits, labels, num_items_in_batch=num_items_in_batch)
    theirs = loss_and_gradient(ForCausalLMLoss, logits, labels, num_items_in_batch=num_items_in_batch)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-6, atol=0)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-5, atol=1e-7)


def test_bf16_logits_give_the_fp32_loss_and_a_bf16_gradient():
    logits, labels = logits_and_labels(torch.bfloat16)
    ours_loss, ours_grad = loss_and_gradient(causal_lm_loss, logits, labels)
    theirs_loss, theirs_grad = loss_and_gradient(ForCausalLMLoss, logits, labels)
    assert ours_loss.dtype == torch.float32 and ours_grad.dtype == torch.bfloat16
    torch.testing.assert_close(ours_loss, theirs_loss, rtol=1e-6, atol=0)
    # Both gradients are rounded to bf16 (relative step 2**-8 = 3.9e-3) from fp32 values that agree
    # to rtol 1e-5: at most one bf16 step apart; no matmul is involved, so no CPU kernel changes this.
    torch.testing.assert_close(ours_grad.float(), theirs_grad.float(), rtol=1e-2, atol=1e-6)


def test_given_shift_labels_are_used_as_they_are():
    logits, labels = logits_and_labels(torch.float32)
    shifted = torch.nn.functional.pad(labels, (0, 1), value=-100)[..., 1:].contiguous()
    direct = causal_lm_loss(logits, torch.zeros_like(labels), VOCAB, shift_labels=shifted)
    torch.testing.assert_close(direct, causal_lm_loss(logits, labels, VOCAB))


def test_ignored_and_last_positions_get_no_gradient():
    logits, labels = logits_and_labels(torch.float32)
    _, gradient = loss_and_gradient(causal_lm_loss, logits, labels)
    assert gradient[0, :6].abs().max() == 0
    assert gradient[2, -5:].abs().max() == 0
    assert gradient[:, -1].abs().max() == 0
    assert gradient[1, :-1].abs().sum(dim=-1).min() > 0
