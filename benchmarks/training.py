"""Training throughput per stage and precision: `harness train` in a fresh process per setting, read back from its manifest.

Each setting runs in its own process so that its peak resident memory is its own. tokens/s is the
manifest's figure (input tokens seen over the training loop's wall time, held-out evaluations
excluded). Achieved GFLOP/s uses the usual dense-transformer count: a forward pass costs 2 FLOPs
per weight of every matmul (attention projections, MLP, LM head) plus 2·layers·T·hidden for the
causal attention scores and mixing at sequence length T; LoRA's backward pass computes activation
gradients only (the base is frozen), which costs about one more forward, so a training token
costs about two forward passes.

`frozen_int8_layer_ms` times one layer in isolation: the int8 base's training path against a
full-precision layer with the same weights, the comparison behind `stages/speed/int8_linear.py`.
`training_pieces_ms` does the same for the loss, attention and LoRA dropout, the comparisons behind
`stages/speed/blockwise_loss.py`, `stages/speed/short_attention.py` and `stages/speed/lora_dropout.py`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

from harness.run.layout import RunLayout

HARNESS = str(Path(sys.executable).parent / "harness")


BASE_PRECISIONS = {"int8": "int8", "nf4": "nf4", "fp32": "none"}
"""The frozen base's precision as the table shows it -> the `model.quantization` value that loads it."""


def train_stage(config: Path, stage: str, workdir: Path, *, base: str, bf16: bool, max_steps: int) -> dict[str, Any]:
    """Run one stage with these settings; the manifest's throughput, memory and loss figures."""
    arm = "domain" if stage == "domain" else "instruct-only"
    run_dir = workdir / f"{stage}-{base}-{'bf16' if bf16 else 'fp32'}"
    overrides = [
        f"arms=[{arm}]",
        f"model.quantization={BASE_PRECISIONS[base]}",
        f"training.bf16_autocast={str(bf16).lower()}",
        f"training.{stage}.max_steps={max_steps}",
    ]
    command = [HARNESS, "train", stage, "--config", str(config), "--output", str(run_dir), "--fresh"]
    for override in overrides:
        command += ["--set", override]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    manifest = json.loads(RunLayout(run_dir).manifest(arm).read_text(encoding="utf-8"))
    return {
        "stage": stage,
        "base": base,
        "compute": "bf16 autocast" if bf16 else "fp32",
        "tokens_per_s": manifest["tokens_per_s"],
        "peak_rss_mb": manifest["peak_rss_mb"],
        "final_heldout_loss": manifest["eval_loss"][-1]["loss"],
        "steps": max_steps,
    }


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One setting's repeated runs as one row: median tokens/s and peak RSS, with the tokens/s range."""
    speeds = [run["tokens_per_s"] for run in runs]
    return {
        **runs[0],
        "tokens_per_s": statistics.median(speeds),
        "tokens_per_s_range": [min(speeds), max(speeds)],
        "peak_rss_mb": statistics.median(run["peak_rss_mb"] for run in runs),
        "runs": len(runs),
    }


def interleaved_median_ms(steps: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median ms of each step after one untimed warm-up; the steps take turns, so drift in the machine's speed hits all alike."""
    for step in steps.values():
        step()
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1e3 for name, values in seconds.items()}


def frozen_int8_layer_ms(in_features: int, out_features: int, tokens: int, repeats: int) -> dict[str, float]:
    """Median ms of one forward and backward pass (input gradient only) through a frozen layer under bf16 autocast.

    Three ways to hold the same weights: bitsandbytes' int8 layer on its own training path, the same
    layer routed through `harness.stages.speed.int8_linear`, and a plain fp32 `nn.Linear` (which autocast runs in bf16).
    """
    import bitsandbytes as bnb
    import torch

    from harness.stages.speed.int8_linear import train_int8_in_autocast_dtype

    torch.manual_seed(0)
    linear = torch.nn.Linear(in_features, out_features, bias=False).requires_grad_(False)
    layers = {}
    for name in ("bitsandbytes int8", "harness int8"):
        int8 = bnb.nn.Linear8bitLt(in_features, out_features, bias=False, has_fp16_weights=False, threshold=6.0)
        int8.load_state_dict(linear.state_dict())
        layers[name] = int8.to("cpu").train()
    train_int8_in_autocast_dtype(layers["harness int8"])
    layers["fp32 nn.Linear"] = linear
    x = torch.randn(tokens, in_features)

    def step(layer: Any) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x.clone().requires_grad_(True))
        out.float().sum().backward()

    return interleaved_median_ms({name: partial(step, layer) for name, layer in layers.items()}, repeats)


def training_pieces_ms(model_config: Any, *, batch: int, short_length: int, long_length: int, dropout: float, repeats: int) -> list[dict[str, Any]]:
    """Forward and backward of the three pieces of a training step the harness replaces, stock piece vs the harness's.

    The loss over bf16 logits (transformers' `ForCausalLMLoss` vs `harness.stages.speed.blockwise_loss`), attention
    at a short padded length and a long causal one (SDPA vs `harness.stages.speed.short_attention`'s plain path),
    and one LoRA dropout mask (`nn.Dropout` vs `harness.stages.speed.lora_dropout`).
    """
    import torch
    from transformers.loss.loss_utils import ForCausalLMLoss

    from harness.models.throughput import head_dim
    from harness.stages.speed.blockwise_loss import causal_lm_loss
    from harness.stages.speed.lora_dropout import LaneDropout
    from harness.stages.speed.short_attention import plain_causal_attention

    torch.manual_seed(0)
    vocab = model_config.vocab_size
    logits = torch.randn(batch, long_length, vocab).mul_(4).to(torch.bfloat16)
    labels = torch.randint(0, vocab, (batch, long_length))

    def loss_step(loss_function: Callable[..., Any]) -> None:
        loss_function(logits.clone().requires_grad_(True), labels, vocab).backward()

    heads, head_size = model_config.num_attention_heads, head_dim(model_config)
    scale = head_size**-0.5

    def attention_inputs(length: int) -> list[torch.Tensor]:
        kv_heads = model_config.num_key_value_heads
        return [torch.randn(batch, n, length, head_size, dtype=torch.bfloat16) for n in (heads, kv_heads, kv_heads)]

    def sdpa(q: Any, k: Any, v: Any, mask: Any) -> Any:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, scale=scale, enable_gqa=True)

    def attention_step(attention: Callable[..., Any], inputs: list[torch.Tensor], mask: Any) -> None:
        leaves = [tensor.clone().requires_grad_(True) for tensor in inputs]
        attention(*leaves, mask).float().sum().backward()

    padded = torch.ones(batch, 1, short_length, short_length, dtype=torch.bool).tril()
    padded[-1, :, :, -short_length // 8 :] = False
    hidden = torch.randn(batch, short_length, model_config.hidden_size)

    def dropout_step(module: torch.nn.Module) -> None:
        module(hidden.clone().requires_grad_(True)).sum().backward()

    pieces = [
        ("loss", f"{batch}x{long_length} positions x {vocab} logits, bf16",
         {"transformers ForCausalLMLoss": partial(loss_step, ForCausalLMLoss), "harness blockwise": partial(loss_step, causal_lm_loss)}),
    ]
    for length, mask, kind in ((short_length, padded, "padded"), (long_length, None, "causal")):
        inputs = attention_inputs(length)
        pieces.append((
            "attention", f"{batch}x{length} tokens, {kind}, bf16",
            {"SDPA": partial(attention_step, sdpa, inputs, mask),
             "harness plain": partial(attention_step, partial(plain_causal_attention, scaling=scale), inputs, mask)},
        ))
    pieces.append((
        "LoRA dropout", f"{batch}x{short_length}x{model_config.hidden_size}, p={dropout}",
        {"nn.Dropout": partial(dropout_step, torch.nn.Dropout(dropout).train()), "harness LaneDropout": partial(dropout_step, LaneDropout(dropout).train())},
    ))
    rows = []
    for piece, shape, steps in pieces:
        (stock, stock_ms), (harness, harness_ms) = interleaved_median_ms(steps, repeats).items()
        rows.append({"piece": piece, "shape": shape, "stock": stock, "stock_ms": stock_ms, "harness": harness, "harness_ms": harness_ms})
    return rows
