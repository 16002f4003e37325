"""Training throughput per stage and precision: `harness train` in a fresh process per setting, read back from its manifest.

Each setting runs in its own process so that its peak resident memory is its own. tokens/s is the
manifest's figure (input tokens seen over the training loop's wall time, held-out evaluations
excluded). Achieved GFLOP/s uses the usual dense-transformer count: a forward pass costs 2 FLOPs
per weight of every matmul (attention projections, MLP, LM head) plus 2·layers·T·hidden for the
causal attention scores and mixing at sequence length T; LoRA's backward pass computes activation
gradients only (the base is frozen), which costs about one more forward, so a training token
costs about two forward passes.

`frozen_int8_layer_ms` times one layer in isolation: the int8 base's training path against a
full-precision layer with the same weights, the comparison behind `stages/int8_linear.py`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HARNESS = str(Path(sys.executable).parent / "harness")


def forward_flops_per_token(model_config: Any, seq_len: int) -> float:
    """FLOPs of one token's forward pass through a Llama/Qwen-style decoder at sequence length `seq_len`."""
    hidden = model_config.hidden_size
    heads = model_config.num_attention_heads
    head_dim = getattr(model_config, "head_dim", None) or hidden // heads
    kv_dim = model_config.num_key_value_heads * head_dim
    per_layer = hidden * heads * head_dim * 2 + hidden * kv_dim * 2 + 3 * hidden * model_config.intermediate_size
    matmul_weights = model_config.num_hidden_layers * per_layer + hidden * model_config.vocab_size
    return 2 * matmul_weights + 2 * model_config.num_hidden_layers * seq_len * heads * head_dim


def train_stage(config: Path, stage: str, workdir: Path, *, load_in_8bit: bool, bf16: bool, max_steps: int) -> dict[str, Any]:
    """Run one stage with these settings; the manifest's throughput, memory and loss figures."""
    arm = "domain" if stage == "domain" else "instruct-only"
    run_dir = workdir / f"{stage}-{'int8' if load_in_8bit else 'fp32'}-{'bf16' if bf16 else 'fp32'}"
    overrides = [
        f"arms=[{arm}]",
        f"model.load_in_8bit={str(load_in_8bit).lower()}",
        f"training.bf16_autocast={str(bf16).lower()}",
        f"training.{stage}.max_steps={max_steps}",
    ]
    command = [HARNESS, "train", stage, "--config", str(config), "--output", str(run_dir), "--fresh"]
    for override in overrides:
        command += ["--set", override]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    manifest = json.loads((run_dir / "checkpoints" / arm / "manifest.json").read_text(encoding="utf-8"))
    return {
        "stage": stage,
        "base": "int8" if load_in_8bit else "fp32",
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


def frozen_int8_layer_ms(in_features: int, out_features: int, tokens: int, repeats: int) -> dict[str, float]:
    """Median ms of one forward and backward pass (input gradient only) through a frozen layer under bf16 autocast.

    Three ways to hold the same weights: bitsandbytes' int8 layer on its own training path, the same
    layer routed through `stages.int8_linear`, and a plain fp32 `nn.Linear` (which autocast runs in bf16).
    """
    import bitsandbytes as bnb
    import torch

    from stages.int8_linear import train_int8_in_autocast_dtype

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

    def step(layer: Any) -> float:
        inputs = x.clone().requires_grad_(True)
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(inputs)
        out.float().sum().backward()
        return time.perf_counter() - started

    for layer in layers.values():
        step(layer)
    seconds: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(repeats):
        for name, layer in layers.items():
            seconds[name].append(step(layer))
    return {name: statistics.median(values) * 1e3 for name, values in seconds.items()}
