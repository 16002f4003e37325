"""The model a stage trains: the start checkpoint (8-bit when configured) wrapped with fresh LoRA adapters.

Only the LoRA matrices are trainable and they stay fp32; the frozen base is int8 (LLM.int8) or fp32.
Gradient checkpointing stays off: the activations of these model sizes and sequence lengths fit in
memory, and recomputing every forward pass in the backward pass costs about a third more compute.
"""

from __future__ import annotations

from typing import Any

from harness.config import HarnessConfig, LoraSettings
from harness.errors import HarnessError
from harness.models import load_causal_lm
from stages.blockwise_loss import causal_lm_loss
from stages.cpu_heap import keep_freed_memory_in_heap
from stages.int8_linear import train_int8_in_autocast_dtype
from stages.lora_dropout import use_lane_dropout
from stages.short_attention import use_short_sequence_attention


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
    """Start model (int8 when `model.load_in_8bit`) prepared for k-bit training, with LoRA adapters added.

    Four replacements make a CPU training step cheaper, each computing the same thing up to rounding
    (dropout: masks from the same distribution): the int8 base layers train in the autocast dtype
    (stages/int8_linear.py), the loss is computed a block of positions at a time
    (stages/blockwise_loss.py), short sequences skip SDPA's flash kernel (stages/short_attention.py)
    and LoRA dropout masks come from packed random bits (stages/lora_dropout.py). On the CPU the
    process also keeps freed memory in its heap (stages/cpu_heap.py).
    """
    from peft import get_peft_model, prepare_model_for_kbit_training

    model = load_causal_lm(start_ref, config.model)
    check_target_modules(model, config.lora)
    if model.device.type == "cpu":
        keep_freed_memory_in_heap()
    if config.model.load_in_8bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        train_int8_in_autocast_dtype(model)
    model.config.use_cache = False
    model.loss_function = causal_lm_loss
    if model.config._attn_implementation == "sdpa":
        use_short_sequence_attention(model)
    peft_model = get_peft_model(model, lora_config(config.lora))
    use_lane_dropout(peft_model)
    return peft_model


def parameter_counts(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; int8 weights count one parameter per element."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
