"""Greedy generation: the original recipe's one-prompt-at-a-time `model.generate` loop vs the harness's batched generator.

Both get the same chat-templated prompts, the same stop tokens and the same `max_new_tokens`;
tokens/s counts reply tokens only (up to the end-of-turn token), so padding work done by the
batched generator earns it nothing. Greedy decoding in fp32 must give identical text.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from harness.data.chat import strip_thinking
from harness.data.safety_prompts import SafetyPrompt
from harness.evals.generate import Generation, Generator


@dataclass(frozen=True)
class GenerationTiming:
    seconds: float
    new_tokens: int
    texts: list[str]

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds


def naive_loop(model: Any, tokenizer: Any, prompts: list[str], *, max_new_tokens: int, stop_ids: list[int]) -> GenerationTiming:
    """One `model.generate` call per prompt, as the original recipe did."""
    import torch

    texts, new_tokens = [], 0
    started = time.perf_counter()
    for prompt in prompts:
        inputs = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            output = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id
            )
        reply = output[0, inputs["input_ids"].shape[1] :].tolist()
        stop = next((i for i, token in enumerate(reply) if token in stop_ids), len(reply))
        new_tokens += stop
        texts.append(strip_thinking(tokenizer.decode(reply[:stop], skip_special_tokens=True)))
    return GenerationTiming(time.perf_counter() - started, new_tokens, texts)


def batched(generator: Generator, conversations: list[list[dict[str, str]]]) -> GenerationTiming:
    """The harness's generator with its disk cache off; pass a new one for every timing, since a generator
    serves what it has generated once from memory."""
    started = time.perf_counter()
    generations = generator.generate(conversations)
    seconds = time.perf_counter() - started
    return GenerationTiming(seconds, sum(g.n_new_tokens for g in generations), [g.text for g in generations])


def median_timing(runs: list[GenerationTiming]) -> GenerationTiming:
    """The run with the median time (all runs are greedy, so their texts agree)."""
    return sorted(runs, key=lambda run: run.seconds)[len(runs) // 2] if runs else GenerationTiming(float("nan"), 0, [])


def compare_generation(
    model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], *, max_new_tokens: int, batch_size: int | None, repeats: int
) -> dict[str, Any]:
    def generator(*, bf16: bool) -> Generator:
        return Generator(
            model, tokenizer, model_fingerprint="benchmark", max_new_tokens=max_new_tokens, batch_size=batch_size, autocast_bf16=bf16
        )

    fp32 = generator(bf16=False)
    prompts = [fp32.templated_prompt(c) for c in conversations]
    naive = median_timing([naive_loop(model, tokenizer, prompts, max_new_tokens=max_new_tokens, stop_ids=fp32.stop_token_ids) for _ in range(repeats)])
    harness = median_timing([batched(generator(bf16=False), conversations) for _ in range(repeats)])
    harness_bf16 = median_timing([batched(generator(bf16=True), conversations) for _ in range(repeats)])
    return {
        "prompts": len(prompts),
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size or "auto",
        "naive_tokens_per_s": naive.tokens_per_s,
        "batched_tokens_per_s": harness.tokens_per_s,
        "batched_bf16_tokens_per_s": harness_bf16.tokens_per_s,
        "speedup": harness.tokens_per_s / naive.tokens_per_s,
        "identical_texts": sum(a == b for a, b in zip(naive.texts, harness.texts, strict=True)),
        "bf16_identical_texts": sum(a == b for a, b in zip(harness.texts, harness_bf16.texts, strict=True)),
        "new_tokens": harness.new_tokens,
        "naive_seconds": naive.seconds,
        "batched_seconds": harness.seconds,
    }


TODAYS_BATCH = 16
"""The generation batch of the default config before `batch_size: auto`."""


def todays_generator(model: Any, tokenizer: Any, max_new_tokens: int) -> Generator:
    """The generator as it was before the in-place decoder: `model.generate` with its own cache, batches of 16."""
    from harness.evals.generate import TransformersBackend
    from harness.evals.greedy_decoding import greedy_generate

    backend = TransformersBackend(model, tokenizer, decode=greedy_generate)
    return Generator(None, tokenizer, backend=backend, model_fingerprint="benchmark", max_new_tokens=max_new_tokens, batch_size=TODAYS_BATCH)


def batch_shapes(
    generator: Generator, tokenizer: Any, conversations: list[list[dict[str, str]]], generations: list[Any]
) -> list[tuple[list[int], list[int]]]:
    """(each prompt's tokens, each reply's length with its stop token) of every batch `generator` forms for `conversations`."""
    prompts = {i: tokenizer(generator.templated_prompt(c), add_special_tokens=False)["input_ids"] for i, c in enumerate(conversations)}
    return [
        ([len(prompts[i]) for i in batch], [generations[i].n_new_tokens + (not generations[i].hit_token_cap) for i in batch])
        for batch in generator.batches(prompts)
    ]


def safety_metric_values(prompts: list[SafetyPrompt], generations: list[Generation]) -> dict[str, float]:
    """The safety eval's metric values for these replies, scored as the eval scores them."""
    from harness.evals.metrics import metric_value
    from harness.evals.safety import SPEC, score_generations

    records = score_generations(prompts, generations)
    values = {spec.name: metric_value(spec, records, resamples=100, seed=0) for spec in SPEC.metrics}
    return {name: value.value for name, value in values.items() if value is not None}


def opt_in_bf16_cost(
    model: Any, tokenizer: Any, prompts: list[SafetyPrompt], conversations: list[list[dict[str, str]]], fp32: list[Generation], *, max_new_tokens: int
) -> dict[str, Any]:
    """What `eval.bf16_autocast` (the opt-in fast path) costs on the safety prompts: its tokens/s in one run of the
    in-place decoder, how many replies equal the fp32 ones (`fp32`), and each safety metric under both."""
    generator = Generator(model, tokenizer, model_fingerprint="benchmark", max_new_tokens=max_new_tokens, batch_size=None, autocast_bf16=True)
    started = time.perf_counter()
    bf16 = generator.generate(conversations)
    seconds = time.perf_counter() - started
    fp32_values, bf16_values = safety_metric_values(prompts, fp32), safety_metric_values(prompts, bf16)
    return {
        "tokens_per_s": sum(g.n_new_tokens for g in bf16) / seconds,
        "identical_replies": sum(a == b for a, b in zip(bf16, fp32, strict=True)),
        "metrics": {name: [fp32_values[name], bf16_values.get(name)] for name in fp32_values},
    }


def ceiling_now() -> tuple[float, float]:
    """This machine's fp32 matmul GFLOP/s and memory read GB/s right now. Its speed drifts by tens of percent over
    minutes (a 2048² matmul read 97 GFLOP/s at the start of one run and 132-151 in the hour around it), so each
    timed run is held against the ceiling measured just before it rather than one measured at the start."""
    from harness.models.throughput import matmul_gflops, memory_read_gbps

    return matmul_gflops("float32"), memory_read_gbps()


def roofline_shares(
    model_config: Any, shapes: list[tuple[list[int], list[int]]], seconds: list[float], ceilings: list[tuple[float, float]], *,
    weight_bytes: int, kv_bytes_per_position: int | None = None,
) -> list[float]:
    """Each run's share of the roofline of `shapes`, against the (GFLOP/s, GB/s) measured just before it."""
    from harness.models.throughput import generation_roofline_s

    return [
        generation_roofline_s(model_config, shapes, weight_bytes=weight_bytes, gbps=gbps, gflops=gflops, kv_bytes_per_position=kv_bytes_per_position) / run_s
        for run_s, (gflops, gbps) in zip(seconds, ceilings, strict=True)
    ]


def safety_workload(
    model: Any, tokenizer: Any, prompts: list[SafetyPrompt], conversations: list[list[dict[str, str]]], *, max_new_tokens: int, repeats: int,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Today's generator vs the in-place decoder at `batch_size: auto`, run in turns (which goes first alternates),
    so that drift in the machine's speed hits both; each run against the roofline of the batches it formed at the
    ceiling measured just before it (`ceiling_now`), without and with attention's reads of the KV cache
    (`generation_roofline_s`). Then one run of the opt-in bf16 path, with the replies and metric values it
    changes (`opt_in_bf16_cost`)."""
    from harness.models.cpu_kernels import compiled_kernels
    from harness.models.linear_kernel import linear_gemm
    from harness.models.throughput import kv_cache_bytes_per_position

    kernels_built = compiled_kernels() is not None  # built before the timed runs: a machine's first decode pays it once
    new_generator: dict[str, Callable[[], Generator]] = {
        "today": lambda: todays_generator(model, tokenizer, max_new_tokens),
        "auto": lambda: Generator(model, tokenizer, model_fingerprint="benchmark", max_new_tokens=max_new_tokens, batch_size=None),
    }
    generators: dict[str, Generator] = {}
    runs: dict[str, list[GenerationTiming]] = {name: [] for name in new_generator}
    ceilings: dict[str, list[tuple[float, float]]] = {name: [] for name in new_generator}
    generations: dict[str, list[Any]] = {}
    for repeat in range(repeats):
        for name in sorted(new_generator, reverse=repeat % 2 == 1):
            generators[name] = new_generator[name]()
            ceilings[name].append(ceiling_now())
            started = time.perf_counter()
            generations[name] = generators[name].generate(conversations)
            seconds = time.perf_counter() - started
            runs[name].append(GenerationTiming(seconds, sum(g.n_new_tokens for g in generations[name]), [g.text for g in generations[name]]))
            log(f"{max_new_tokens} new tokens, {name}: {runs[name][-1].tokens_per_s:.1f} tokens/s ({seconds:.1f} s), "
                "ceiling {:.0f} GFLOP/s, {:.1f} GB/s".format(*ceilings[name][-1]))
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    kv_bytes = kv_cache_bytes_per_position(model.config.get_text_config(), model.dtype.itemsize)
    row: dict[str, Any] = {"prompts": len(conversations), "max_new_tokens": max_new_tokens, "repeats": repeats, "compiled_cpu_kernels": kernels_built,
                           "linear_gemm": linear_gemm()}
    for name, generator in generators.items():
        shapes = batch_shapes(generator, tokenizer, conversations, generations[name])
        seconds = [run.seconds for run in runs[name]]
        shares = roofline_shares(model.config, shapes, seconds, ceilings[name], weight_bytes=weight_bytes)
        with_attention = roofline_shares(model.config, shapes, seconds, ceilings[name], weight_bytes=weight_bytes, kv_bytes_per_position=kv_bytes)
        row[name] = {
            "batches": [len(lengths) for _, lengths in shapes],
            "tokens_per_s": median_timing(runs[name]).tokens_per_s,
            "tokens_per_s_range": [min(r.tokens_per_s for r in runs[name]), max(r.tokens_per_s for r in runs[name])],
            "ceilings": ceilings[name],
            "roofline_tokens_per_s": statistics.median(run.tokens_per_s / share for run, share in zip(runs[name], shares, strict=True)),
            "roofline_shares": shares,
            "roofline_share": statistics.median(shares),
            "roofline_share_with_attention": statistics.median(with_attention),
        }
    row["new_tokens"] = runs["auto"][0].new_tokens
    row["paired_speedups"] = [new.tokens_per_s / old.tokens_per_s for new, old in zip(runs["auto"], runs["today"], strict=True)]
    row["identical_replies"] = sum(a == b for a, b in zip(generations["auto"], generations["today"], strict=True))
    row["bf16_autocast"] = opt_in_bf16_cost(model, tokenizer, prompts, conversations, generations["auto"], max_new_tokens=max_new_tokens)
    log(f"{max_new_tokens} new tokens, bf16 autocast: {row['bf16_autocast']['tokens_per_s']:.1f} tokens/s")
    return row
