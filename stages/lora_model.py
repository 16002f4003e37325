"""The model a stage trains: the start checkpoint (8-bit when configured) wrapped with fresh LoRA adapters.

Only the LoRA matrices are trainable and they stay fp32; the frozen base is int8 (LLM.int8) or fp32.
Gradient checkpointing stays off: the activations of these model sizes and sequence lengths fit in
memory, and recomputing every forward pass in the backward pass costs about a third more compute.
"""

from __future__ import annotations

from typing import Any

from harness.run.config import HarnessConfig, LoraSettings
from harness.core.errors import HarnessError
from harness.models.loading import load_causal_lm
from harness.stages.speed import prepare_for_lora_training


def _linear_modules(model: Any) -> list[str]:
    import torch

    return [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear) and name]


def linear_layer_names(model: Any) -> list[str]:
    """Unique leaf names of the model's linear layers (`q_proj`, ..., `down_proj`), the valid LoRA targets."""
    return sorted({name.rsplit(".", 1)[-1] for name in _linear_modules(model)})


def check_target_modules(model: Any, lora: LoraSettings) -> None:
    """Fail before training when a LoRA target (a layer name or a dotted suffix of one) matches no linear layer."""
    linear = _linear_modules(model)
    missing = [target for target in lora.target_modules if not any(n == target or n.endswith(f".{target}") for n in linear)]
    if missing:
        raise HarnessError(
            f"lora.target_modules: {', '.join(missing)} not found in the model; its linear layers are "
            f"{', '.join(linear_layer_names(model))}"
        )


def lora_config(lora: LoraSettings) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def load_lora_model(config: HarnessConfig, start_ref: str) -> Any:
    """Start model (quantized as `model.quantization` says) with fresh LoRA adapters, ready to train.

    The CPU/speed pieces (`harness.stages.speed`) compute the same step as the stock modules, up to rounding.
    """
    model = load_causal_lm(start_ref, config.model)
    check_target_modules(model, config.lora)
    return prepare_for_lora_training(model, lora_config(config.lora), quantization=config.model.quantization)


def parameter_counts(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; int8 weights count one parameter per element."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
