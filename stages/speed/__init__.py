"""Pieces that make a training step cheaper without changing what it computes (up to rounding).

The stage runner calls `prepare_for_lora_training` only; each piece is its own module with its own
tests and benchmark row (benchmarks/training.py), apart from the recipes in `harness.stages`.
"""

from __future__ import annotations

from typing import Any

from harness.stages.speed.blockwise_loss import causal_lm_loss
from harness.stages.speed.cpu_heap import keep_freed_memory_in_heap
from harness.stages.speed.int8_linear import train_int8_in_autocast_dtype
from harness.stages.speed.lora_dropout import use_lane_dropout
from harness.stages.speed.short_attention import use_short_sequence_attention


def prepare_for_lora_training(model: Any, peft_config: Any, *, quantization: str) -> Any:
    """`model` with LoRA adapters from `peft_config`, made cheaper to train by each piece here.

    The int8 base layers train in the autocast dtype (int8_linear), the loss is computed a block of
    positions at a time (blockwise_loss), short sequences skip SDPA's flash kernel (short_attention)
    and LoRA dropout masks come from packed random bits (lora_dropout). On the CPU the process also
    keeps freed memory in its heap (cpu_heap).
    """
    from peft import get_peft_model, prepare_model_for_kbit_training

    if model.device.type == "cpu":
        keep_freed_memory_in_heap()
    if quantization != "none":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if quantization == "int8":
        train_int8_in_autocast_dtype(model)
    model.config.use_cache = False
    model.loss_function = causal_lm_loss
    if model.config._attn_implementation == "sdpa":
        use_short_sequence_attention(model)
    peft_model = get_peft_model(model, peft_config)
    use_lane_dropout(peft_model)
    return peft_model
