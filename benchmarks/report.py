"""The benchmark's Markdown tables (printed, and kept in benchmarks/README.md) and its target checks."""

from __future__ import annotations

import statistics
from typing import Any

from rich.console import Console
from rich.markdown import Markdown

from harness.models.throughput import ROOFLINE_REPEATS


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(row) + " |" for row in rows], ""]


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, holds) for each target whose section ran."""
    checks = []
    if gen := results.get("generation"):
        checks.append((
            f"batched generation >= 4x the naive loop at batch {gen['batch_size']}, identical greedy text",
            f"{gen['speedup']:.2f}x, {gen['identical_texts']}/{gen['prompts']} identical",
            gen["speedup"] >= 4 and gen["identical_texts"] == gen["prompts"],
        ))
    for row in results.get("safety_generation", []):
        auto, speedup = row["auto"], statistics.median(row["paired_speedups"])
        checks.append((
            f"safety prompts at {row['max_new_tokens']} new tokens: >= 2x today's tokens/s, >= 60% of the roofline for "
            "its batches, identical replies",
            f"{speedup:.2f}x, {auto['roofline_share']:.0%} of roofline, {row['identical_replies']}/{row['prompts']} identical",
            speedup >= 2 and auto["roofline_share"] >= 0.6 and row["identical_replies"] == row["prompts"],
        ))
    if phase := results.get("eval_phase"):
        checks.append((
            "one checkpoint's eval phase >= 2x faster than before, identical metric values",
            f"{phase['median_speedup']:.2f}x, metrics {'identical' if phase['identical_metrics'] else '**differ**'}",
            phase["median_speedup"] >= 2 and phase["identical_metrics"],
        ))
    if ppl := results.get("perplexity"):
        checks.append((
            "perplexity within 1% of lm-eval's and at least as fast (disjoint windows, as lm-eval scores)",
            f"{ppl['relative_difference']:.1e} relative, {ppl['speedup']:.2f}x lm-eval's speed "
            f"(strided, the default: {ppl['strided_tokens_per_s'] / ppl['lm_eval_tokens_per_s']:.2f}x)",
            ppl["relative_difference"] <= 0.01 and ppl["speedup"] >= 1,
        ))
    if e2e := results.get("end_to_end"):
        checks.append((
            "second run-all with nothing changed < 10% of the first",
            f"{e2e['second_s']:.1f} s / {e2e['first_s']:.1f} s = {e2e['ratio']:.1%}",
            e2e["ratio"] < 0.10,
        ))
    if train := results.get("training", {}).get("stages"):
        default = [row for row in train if row["base"] == "int8" and row["compute"] == "bf16 autocast"]
        best = max(train, key=lambda row: row["roofline_share"])
        checks.append((
            "training >= 40% of the matmul roofline for its dtype, in the stages' default setting (8-bit base, bf16 autocast)",
            ", ".join(f"{row['stage']} {row['roofline_share']:.0%}" for row in default)
            + f"; best setting {best['roofline_share']:.0%} ({best['stage']}, {best['base']} base, {best['compute']})",
            all(row["roofline_share"] >= 0.40 for row in default),
        ))
    if memory := results.get("memory"):
        by_base = {row["base"]: row for row in memory}
        share = by_base["int8"]["resident_mb"] / by_base["fp32"]["resident_mb"]
        first = by_base["int8"]["first_load_mb"] / by_base["fp32"]["first_load_mb"]
        checks.append((
            "8-bit base < half the resident memory of the fp32 base",
            f"{share:.2f}x (first load in a fresh process, one-time costs included: {first:.2f}x)",
            share < 0.5,
        ))
    return checks


def _kernels_label(run: dict[str, Any], lead: str) -> str:
    """Which decode kernels the new path had: the compiled CPU kernels or torch's own ops, and the linear layers'
    GEMM where recorded; recordings from before the norm, rotary and argmax kernels name the compiled attention alone."""
    gemm = f", linear layers: {run['linear_gemm']}" if "linear_gemm" in run else ""
    if "compiled_cpu_kernels" in run:
        return lead + ("compiled CPU kernels" if run["compiled_cpu_kernels"] else "torch's own ops, the CPU kernels did not build") + gemm
    if "decode_attention_kernel" in run:
        return lead + ("compiled decode attention" if run["decode_attention_kernel"] else "SDPA")
    return ""


def _metric_changes(metrics: dict[str, list[float | None]]) -> str:
    """`name a -> b` per safety metric, shown as the reports show it, in bold where the opt-in path moved it."""
    from harness.evals.safety import SPEC
    from harness.reports.format import format_value

    shown = {spec.name: spec.presentation for spec in SPEC.metrics}
    parts = []
    for name, (before, after) in metrics.items():
        text = f"{name} {format_value(shown[name], before)} -> {format_value(shown[name], after)}"
        parts.append(text if before == after else f"**{text}**")
    return "; ".join(parts)


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        f"Recorded {results['date']} on {machine['cpu']}, {machine['cores']} torch threads, flags {' '.join(machine['flags'])}.",
        "Versions: " + ", ".join(f"{name} {version}" for name, version in machine["versions"].items()) + ".",
        "",
    ]
    if roof := results.get("roofline"):
        bf16_size = results.get("bf16_matmul_size", 2048)
        emulated = "" if bf16_size == 2048 else f"; bf16 on {bf16_size}², emulated: this CPU has no native bf16"
        lines += [f"**Matmul roofline** (2048² matmul{emulated}, median of {ROOFLINE_REPEATS})", ""]
        lines += _table(["dtype", "GFLOP/s"], [[name, f"{value:.0f}"] for name, value in roof.items()])
    if gen := results.get("generation"):
        lines += [f"**Generation** ({gen['prompts']} prompts, greedy, up to {gen['max_new_tokens']} new tokens, {gen['new_tokens']} generated)", ""]
        lines += _table(
            ["generator", "tokens/s", "vs naive", "text identical to naive"],
            [
                ["naive loop (one `generate` per prompt, fp32)", f"{gen['naive_tokens_per_s']:.1f}", "1.00x", "-"],
                [f"harness, batch {gen['batch_size']}, fp32", f"{gen['batched_tokens_per_s']:.1f}", f"{gen['speedup']:.2f}x",
                 f"{gen['identical_texts']}/{gen['prompts']}"],
                [f"harness, batch {gen['batch_size']}, bf16 autocast", f"{gen['batched_bf16_tokens_per_s']:.1f}",
                 f"{gen['batched_bf16_tokens_per_s'] / gen['naive_tokens_per_s']:.2f}x",
                 f"{gen['bf16_identical_texts']}/{gen['prompts']} (vs fp32 batched)"],
            ],
        )
    if rows := results.get("safety_generation"):
        ceilings = [ceiling for row in rows for name in ("today", "auto") for ceiling in row[name]["ceilings"]]
        gflops, gbps = [gflops for gflops, _ in ceilings], [gbps for _, gbps in ceilings]
        lines += [
            f"**Safety prompts** ({rows[0]['prompts']} prompts, greedy, fp32; today's generator and the in-place decoder in turns, "
            f"median of {rows[0]['repeats']}; roofline: weights read once per forward pass at the memory read bandwidth "
            "plus 2 FLOPs per weight per computed token at the fp32 2048² matmul rate (the fastest of the GEMMs timed), prefill included (logits for each prompt's "
            "last position only), each run against "
            f"both measured just before it ({min(gflops):.0f}-{max(gflops):.0f} GFLOP/s, {min(gbps):.1f}-{max(gbps):.1f} GB/s); "
            "with attention: also each running row's keys and values over its context read once per step, and attention's FLOPs)",
            "",
        ]
        table = []
        for row in rows:
            in_place = "in-place KV cache, finished rows leave" + _kernels_label(row, ", ")
            for name, label in (("today", "`model.generate`, DynamicCache"), ("auto", in_place)):
                path = row[name]
                table.append([
                    str(row["max_new_tokens"]), label, "+".join(map(str, path["batches"])), f"{path['tokens_per_s']:.0f}",
                    "{:.0f}-{:.0f}".format(*path["tokens_per_s_range"]), f"{path['roofline_tokens_per_s']:.0f}",
                    f"{path['roofline_share']:.0%} ({min(path['roofline_shares']):.0%}-{max(path['roofline_shares']):.0%})",
                    f"{path['roofline_share_with_attention']:.0%}",
                    "1.00x" if name == "today" else " ".join(f"{x:.2f}x" for x in row["paired_speedups"]),
                    f"{row['identical_replies']}/{row['prompts']}" if name == "auto" else "-",
                ])
        lines += _table(
            [
                "new tokens", "generator", "batches", "tokens/s", "range", "roofline tokens/s", "of roofline (runs)", "of roofline with attention",
                "vs today (each pair)", "identical",
            ],
            table,
        )
        if opt_in := [row for row in rows if "bf16_autocast" in row]:
            lines += [
                "**The opt-in fast path on the safety prompts** (`eval.bf16_autocast: true`, in-place decoder, one run; "
                "replies and metric values against the fp32 replies above; a metric that changed is in bold)",
                "",
            ]
            lines += _table(
                ["new tokens", "tokens/s", "vs in-place fp32", "replies identical to fp32", "metric values, fp32 -> bf16 autocast"],
                [
                    [str(row["max_new_tokens"]), f"{row['bf16_autocast']['tokens_per_s']:.0f}",
                     f"{row['bf16_autocast']['tokens_per_s'] / row['auto']['tokens_per_s']:.2f}x",
                     f"{row['bf16_autocast']['identical_replies']}/{row['prompts']}", _metric_changes(row["bf16_autocast"]["metrics"])]
                    for row in opt_in
                ],
            )
    if phase := results.get("eval_phase"):
        attention = _kernels_label(phase, "; after: ")
        lines += [f"**One checkpoint's eval phase** (base, default config, whole suite, fresh run directory; in turns, {phase['repeats']} pairs{attention})", ""]
        lines += _table(
            ["before s", "after s", "speedup", "metric values"],
            [[f"{b:.1f}", f"{a:.1f}", f"{b / a:.2f}x", "identical" if phase["identical_metrics"] else "differ"]
             for b, a in zip(phase["before_s"], phase["after_s"], strict=True)],
        )
    if ppl := results.get("perplexity"):
        lines += [f"**Perplexity** ({ppl['tokens']} tokens, windows of {ppl['max_length']})", ""]
        lines += _table(
            ["scorer", "bits/byte", "tokens/s"],
            [
                ["lm-eval `loglikelihood_rolling` (disjoint)", f"{ppl['lm_eval_bits_per_byte']:.6f}", f"{ppl['lm_eval_tokens_per_s']:.0f}"],
                ["harness, disjoint", f"{ppl['harness_bits_per_byte']:.6f}", f"{ppl['harness_tokens_per_s']:.0f}"],
                ["harness, strided (stride = half the window)", f"{ppl['strided_bits_per_byte']:.6f}", f"{ppl['strided_tokens_per_s']:.0f}"],
            ],
        )
    if training := results.get("training"):
        train = training["stages"]
        lines += [
            f"**Training** ({train[0]['steps']} optimizer steps per run, LoRA on the base; median of {train[0]['runs']} runs, "
            "with their range)",
            "",
        ]
        lines += _table(
            ["stage", "base", "compute", "tokens/s", "range", "GFLOP/s", "of roofline", "peak RSS MB", "held-out loss"],
            [
                [row["stage"], row["base"], row["compute"], f"{row['tokens_per_s']:.0f}",
                 "{:.0f}-{:.0f}".format(*row["tokens_per_s_range"]), f"{row['achieved_gflops']:.0f}",
                 f"{row['roofline_share']:.0%}", f"{row['peak_rss_mb']:.0f}", f"{row['final_heldout_loss']:.4f}"]
                for row in train
            ],
        )
        layer = training["frozen_layer"]
        lines += [
            f"One frozen {layer['in_features']}x{layer['out_features']} layer, forward and input-gradient backward of "
            f"{layer['tokens']} tokens under bf16 autocast (median ms):",
            "",
        ]
        lines += _table(["layer", "ms"], [[name, f"{ms:.2f}"] for name, ms in layer["ms"].items()])
        lines += ["Pieces of a training step, stock vs the harness's, forward and backward (median ms):", ""]
        lines += _table(
            ["piece", "shape", "stock", "ms", "harness", "ms"],
            [[row["piece"], row["shape"], row["stock"], f"{row['stock_ms']:.2f}", row["harness"], f"{row['harness_ms']:.2f}"]
             for row in training["pieces"]],
        )
    if memory := results.get("memory"):
        lines += ["**Loaded base** (resident memory growth over loading it and one forward pass; see benchmarks/memory.py)", ""]
        lines += _table(
            ["base", "resident MB (the base's own: second load)", "first load in a fresh process MB", "parameter bytes MB"],
            [[row["base"], f"{row['resident_mb']:.0f}", f"{row['first_load_mb']:.0f}", f"{row['footprint_mb']:.0f}"] for row in memory],
        )
    if e2e := results.get("end_to_end"):
        lines += ["**run-all end to end**", ""]
        lines += _table(["run", "wall time s"], [["first", f"{e2e['first_s']:.1f}"], ["second, nothing changed", f"{e2e['second_s']:.1f}"]])
        lines += ["Stages of the first run (from their manifests):", ""]
        lines += _table(
            ["arm", "wall time s", "tokens/s", "held-out loss before -> after"],
            [[row["arm"], f"{row['wall_time_s']:.1f}", f"{row['tokens_per_s']:.0f}",
              f"{row['heldout_loss_start']:.4f} -> {row['heldout_loss_end']:.4f}"] for row in e2e["stages"]],
        )
    lines += ["**Targets**", ""]
    lines += _table(["target", "measured", "holds"], [[t, m, "yes" if ok else "**no**"] for t, m, ok in targets(results)])
    return "\n".join(lines)


def print_report(results: dict[str, Any], console: Console) -> int:
    text = markdown(results)
    console.print(Markdown(text))
    console.rule("Markdown for benchmarks/README.md")
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    return 0
