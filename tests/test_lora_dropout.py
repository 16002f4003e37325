"""LoRA dropout from packed random bits drops at the configured rate and keeps the expected input."""

from __future__ import annotations

import pytest
import torch

from harness.stages.speed.lora_dropout import LANES, LaneDropout, keep_mask, use_lane_dropout


def test_each_lane_drops_at_the_rounded_probability():
    torch.manual_seed(0)
    dropped_lanes = round(0.05 * LANES)
    mask = keep_mask(torch.Size([400, 1001]), dropped_lanes)
    drop_rate = dropped_lanes / LANES
    tolerance = 5 * (drop_rate * (1 - drop_rate) / (mask.numel() / 4)) ** 0.5
    per_lane = [(~mask.flatten()[lane::4]).float().mean().item() for lane in range(4)]
    assert all(abs(rate - drop_rate) < tolerance for rate in per_lane), per_lane


def test_masks_differ_from_draw_to_draw_and_follow_the_seed():
    torch.manual_seed(1)
    first, second = keep_mask(torch.Size([64, 64]), 3277), keep_mask(torch.Size([64, 64]), 3277)
    torch.manual_seed(1)
    assert torch.equal(keep_mask(torch.Size([64, 64]), 3277), first)
    assert not torch.equal(first, second)


def test_kept_values_are_scaled_so_the_mean_is_kept_and_gradients_follow_the_mask():
    torch.manual_seed(2)
    dropout = LaneDropout(0.3).train()
    x = torch.ones(300, 1000, requires_grad=True)
    out = dropout(x)
    keep_probability = 1 - dropout.dropped_lanes / LANES
    values = out.unique()
    assert len(values) == 2 and values[0] == 0
    assert values[1].item() == pytest.approx(1 / keep_probability)
    assert abs(out.mean().item() - 1) < 0.01
    out.sum().backward()
    torch.testing.assert_close(x.grad, out.detach())


def test_evaluation_and_zero_probability_pass_the_input_through():
    x = torch.randn(8, 16)
    assert LaneDropout(0.5).eval()(x) is x
    assert LaneDropout(0.0).train()(x) is x


def test_every_lora_dropout_of_a_peft_model_is_replaced():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=4, lora_dropout=0.1, target_modules=["q_proj", "v_proj"]))
    assert use_lane_dropout(model) == 4
    dropouts = [module for module in model.modules() if isinstance(module, LaneDropout)]
    assert len(dropouts) == 4 and all(dropout.p == 0.1 for dropout in dropouts)
    assert not any(type(module) is torch.nn.Dropout for module in model.modules())
