"""How fast this machine can train a model or generate with it, from first principles: its measured matmul rate
and memory bandwidth, and the model's FLOPs.

Shared by the benchmark (which reports training and generation as shares of these ceilings) and
`run-all --dry-run` (which estimates a plan's training time before anything ran).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

RECORDED_TRAINING_SHARE = 0.45
"""Share of the matmul ceiling the stages reach in the default setting (int8 base, bf16 autocast): domain 50%,
instruct 44% in the recorded benchmark (benchmarks/README.md, 2026-11-25); other settings differ."""


ROOFLINE_REPEATS = 20
"""Timed matmuls per dtype: enough that a moment of other load on the machine does not move the median."""


def matmul_gflops(dtype_name: str, *, size: int = 2048, repeats: int = ROOFLINE_REPEATS, decode_gemms: bool = True) -> float:
    """Median GFLOP/s of a `size`-square matmul in `dtype_name` ("float32" or "bfloat16") on the CPU, through the
    fastest of the kernels `matmul_kernel_gflops` times."""
    return max(matmul_kernel_gflops(dtype_name, size=size, repeats=repeats, decode_gemms=decode_gemms).values())


def matmul_kernel_gflops(dtype_name: str, *, size: int = 2048, repeats: int = ROOFLINE_REPEATS, decode_gemms: bool = True) -> dict[str, float]:
    """Median GFLOP/s of a `size`-square matmul in `dtype_name` per kernel the harness multiplies with:
    `torch.matmul` (MKL for fp32, oneDNN for bf16) and, for fp32, the GEMMs the decoder's linear layers use on packed
    weights (harness/models/linear_kernel.py): oneDNN's and, where it is built, the compiled panel GEMM. A ceiling is
    the fastest of them: on an AVX-512 AMD host oneDNN's fp32 read 214 GFLOP/s where MKL's read 177 and the panel
    GEMM's 170-196. Without `decode_gemms` only `torch.matmul` is timed, the kernel training multiplies with
    (and nothing is compiled)."""
    import torch

    from harness.models.linear_kernel import onednn_available, onednn_linear, packed_weight, panel_kernel, panel_linear, panel_packed

    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    kernels = {"torch.matmul": lambda: torch.matmul(a, b)}
    if dtype == torch.float32 and decode_gemms and onednn_available():
        packed = packed_weight(b)
        kernels["oneDNN"] = lambda: onednn_linear(a, packed)
    if dtype == torch.float32 and decode_gemms and panel_kernel() is not None:
        panels = panel_packed(b)
        kernels["panel GEMM"] = lambda: panel_linear(a, panels, None, size)
    return {name: 2 * size**3 / _median_seconds(kernel, repeats) / 1e9 for name, kernel in kernels.items()}


def _median_seconds(work: Any, repeats: int) -> float:
    """Median wall time of `work()` over `repeats` calls after one untimed call."""
    work()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def head_dim(model_config: Any) -> int:
    """Width of one attention head: the config's own, else the hidden size split evenly over the heads."""
    return getattr(model_config, "head_dim", None) or model_config.hidden_size // model_config.num_attention_heads


def attention_flops_per_position(model_config: Any) -> float:
    """FLOPs one token spends on one position of its context, over all layers: 2 for the score and 2 for the
    weighted value, per query head dimension."""
    return 4 * model_config.num_hidden_layers * model_config.num_attention_heads * head_dim(model_config)


def forward_flops_per_token(model_config: Any, seq_len: int) -> float:
    """FLOPs of one token's forward pass through a Llama/Qwen-style decoder at sequence length `seq_len` (causal:
    a token attends to half the sequence on average)."""
    hidden, size = model_config.hidden_size, head_dim(model_config)
    q_dim, kv_dim = model_config.num_attention_heads * size, model_config.num_key_value_heads * size
    per_layer = hidden * q_dim * 2 + hidden * kv_dim * 2 + 3 * hidden * model_config.intermediate_size
    matmul_weights = model_config.num_hidden_layers * per_layer
    return 2 * matmul_weights + output_head_flops(model_config) + attention_flops_per_position(model_config) * seq_len / 2


def output_head_flops(model_config: Any) -> float:
    """FLOPs of one position's logits: the output projection from the hidden state to every vocabulary entry."""
    return 2 * model_config.hidden_size * model_config.vocab_size


def estimated_tokens_per_s(model_config: Any, seq_len: int, gflops: float) -> float:
    """Training tokens/s at the recorded share of the ceiling; a LoRA step on a frozen base costs about two
    forward passes (the forward and the input-gradient half of the backward)."""
    return RECORDED_TRAINING_SHARE * gflops * 1e9 / (2 * forward_flops_per_token(model_config, seq_len))


def memory_read_gbps(*, megabytes: int = 1024, repeats: int = ROOFLINE_REPEATS) -> float:
    """Median GB/s of summing a `megabytes` fp32 tensor: how fast a decode step can stream weights from memory
    (a tensor well beyond the CPU's caches, as a model's weights are)."""
    import torch

    data = torch.ones(megabytes * 2**20 // 4)
    return data.numel() * 4 / _median_seconds(data.sum, repeats) / 1e9


def kv_cache_bytes_per_position(model_config: Any, element_size: int) -> int:
    """Bytes of keys and values one context position holds over all layers."""
    return 2 * model_config.num_hidden_layers * model_config.num_key_value_heads * head_dim(model_config) * element_size


def generation_roofline_s(
    model_config: Any, batches: list[tuple[list[int], list[int]]], *, weight_bytes: int, gbps: float, gflops: float,
    kv_bytes_per_position: int | None = None,
) -> float:
    """The least time greedy generation of `batches` takes on this machine: every forward pass reads the weights
    once (`weight_bytes` at `gbps`) and does 2 FLOPs per matmul weight for each token it computes at `gflops`:
    the prompt's tokens in the prefill, then one per running reply per step. The prefill needs logits for each
    prompt's last position only (as both decoders ask for), so the output projection counts once per prompt
    there. A batch is (each prompt's tokens, each reply's length with its stop token).

    Without `kv_bytes_per_position` attention is left out, as issue 22 defines the roofline. With it, each decode
    step of a running row also reads its keys and values over its context (its prompt and reply so far, padding
    not counted) at `gbps` and does attention's FLOPs over it. Exact attention cannot avoid either, and at 256 new
    tokens it took a fifth of a 76-row decode step in the profile recorded in benchmarks/README.md."""
    head_flops = output_head_flops(model_config)
    layers_flops = forward_flops_per_token(model_config, 0) - head_flops
    read_s = weight_bytes / (gbps * 1e9)
    seconds = 0.0
    for prompt_lengths, reply_lengths in batches:
        decode_steps = max(reply_lengths) - 1
        decoded = sum(length - 1 for length in reply_lengths)
        flops = (sum(prompt_lengths) + decoded) * layers_flops + (len(prompt_lengths) + decoded) * head_flops
        seconds += (1 + decode_steps) * read_s + flops / (gflops * 1e9)
        if kv_bytes_per_position is not None:
            context = sum(prompt * (length - 1) + length * (length - 1) // 2 for prompt, length in zip(prompt_lengths, reply_lengths, strict=True))
            seconds += context * (kv_bytes_per_position / (gbps * 1e9) + attention_flops_per_position(model_config) / (gflops * 1e9))
    return seconds
