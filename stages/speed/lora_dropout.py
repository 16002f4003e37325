"""LoRA dropout on the CPU with keep masks cut from 64-bit random draws, four 16-bit lanes each.

PEFT draws a Bernoulli mask for the input of every adapted layer. torch's CPU Bernoulli sampler
spends about 5 ns per element: dropout's forward and backward took 1.1 ms for a 2 x 160 x 576
input (the masks were 9% of an instruct step with adapters on q/k/v/o). Drawing a quarter as many
64-bit integers and comparing each 16-bit lane with a threshold takes it to 0.56 ms
(benchmarks/README.md). The drop probability is rounded to a multiple of 1/65536 (0.05 becomes
0.0500031) and kept values are scaled by one over the rounded keep probability, so the expected
input is unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

LANES = 65536
"""Distinct values of one 16-bit lane: the drop probability's resolution."""


class LaneDropout(torch.nn.Module):
    """Inverted dropout with probability `p` (in multiples of 1/65536) on the CPU; `F.dropout` elsewhere."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.dropped_lanes = min(round(p * LANES), LANES - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.dropped_lanes == 0:
            return x
        if x.device.type != "cpu":
            return torch.nn.functional.dropout(x, self.p, training=True)
        scale = LANES / (LANES - self.dropped_lanes)
        return torch.where(keep_mask(x.shape, self.dropped_lanes), x * scale, 0.0)


def keep_mask(shape: torch.Size, dropped_lanes: int) -> torch.Tensor:
    """A boolean CPU tensor of `shape`, each element False with probability dropped_lanes / 65536."""
    count = shape.numel()
    draws = torch.randint(-(2**63), 2**63 - 1, ((count + 3) // 4,), dtype=torch.int64)
    lanes = draws.view(torch.int16)[:count].view(shape)
    return lanes >= dropped_lanes - LANES // 2


def use_lane_dropout(model: Any) -> int:
    """Replace the `nn.Dropout` of every LoRA layer in `model` with `LaneDropout`; returns how many were replaced."""
    replaced = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for adapter, dropout in dropouts.items():
            if isinstance(dropout, torch.nn.Dropout):
                dropouts[adapter] = LaneDropout(dropout.p)
                replaced += 1
    return replaced
