"""Benchmark the harness against naive baselines on the embedded model and the default data, in one run.

    python -m benchmarks.run [--config configs/default.yaml] [--repeats 3] [--skip end_to_end ...] [--json FILE]

Prints each table, the Markdown kept in benchmarks/README.md, and whether each target holds.
Run it on an otherwise idle machine: other load changes every number.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.training import BASE_PRECISIONS

SECTIONS = ("roofline", "memory", "generation", "safety_generation", "eval_phase", "perplexity", "training", "end_to_end")
ROOT = Path(__file__).resolve().parents[1]
PADDED_CONVERSATION_TOKENS = 160
"""About the padded length of an instruct micro-batch of the sample conversations: the short attention case."""
console = Console()


EMULATED_BF16_SIZE = 512
"""Side of the bf16 matmul where the CPU has no native bf16: emulated at about 1% of the fp32 rate (1.4 vs
93 GFLOP/s on an AVX2-only EPYC), a 2048² one would take minutes per repeat."""


def bf16_matmul_size() -> int:
    from harness.models.loading import bf16_supported

    return 2048 if bf16_supported() else EMULATED_BF16_SIZE


def roofline(bf16_size: int) -> dict[str, float]:
    """Each dtype's ceiling (its fastest kernel), and fp32's kernels one by one."""
    from harness.models.throughput import matmul_gflops, matmul_kernel_gflops

    float32 = matmul_kernel_gflops("float32")
    by_kernel = {f"float32, {kernel}": gflops for kernel, gflops in float32.items()} if len(float32) > 1 else {}
    return {"float32": max(float32.values()), **by_kernel, "bfloat16": matmul_gflops("bfloat16", size=bf16_size)}


def memory() -> list[dict[str, Any]]:
    rows = []
    for precision in ("int8", "fp32"):
        out = subprocess.run([sys.executable, "-m", "benchmarks.memory", precision], check=True, capture_output=True, text=True, cwd=ROOT)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def _model_and_data(config_path: Path) -> tuple[Any, Any, Any, Any]:
    from harness.run.config import load_config
    from harness.models.loading import load_causal_lm, load_tokenizer, resolve_model
    from harness.data.run_data import load_run_data

    config = load_config(config_path, [])
    ref = resolve_model(config.model)
    model = load_causal_lm(ref, config.model, quantization="none").eval()
    return config, model, load_tokenizer(ref, config.model), load_run_data(config)


def generation(config_path: Path, repeats: int, n_prompts: int) -> dict[str, Any]:
    from benchmarks.generation import compare_generation
    from harness.data.conversations import chat_messages
    from harness.evals.safety import safety_conversations

    config, model, tokenizer, data = _model_and_data(config_path)
    system_prompt = config.data.counseling.system_prompt
    conversations = [chat_messages(c, system_prompt, with_response=False) for c in data.counseling.test]
    conversations += safety_conversations(data.safety, system_prompt)
    settings = config.eval.generation
    return compare_generation(
        model, tokenizer, conversations[:n_prompts],
        max_new_tokens=settings.max_new_tokens, batch_size=None if settings.batch_size == "auto" else settings.batch_size, repeats=repeats,
    )


def safety_generation(config_path: Path, repeats: int) -> list[dict[str, Any]]:
    """The safety eval's prompts at its budget and at the counseling budget: today's generator vs the in-place decoder."""
    from benchmarks.generation import safety_workload
    from harness.evals.safety import safety_conversations

    config, model, tokenizer, data = _model_and_data(config_path)
    conversations = safety_conversations(data.safety, config.data.counseling.system_prompt)
    budgets = (config.eval.generation.budget_for("safety"), config.eval.generation.max_new_tokens)
    return [
        safety_workload(model, tokenizer, data.safety, conversations, max_new_tokens=budget, repeats=repeats, log=console.log)
        for budget in budgets
    ]


def perplexity(config_path: Path, repeats: int) -> dict[str, Any]:
    from benchmarks.perplexity import compare_perplexity
    from harness.data.corpus import join_sections

    config, model, tokenizer, data = _model_and_data(config_path)
    settings = config.eval.perplexity
    text = join_sections(data.corpus.sections)
    return compare_perplexity(model, tokenizer, text, max_length=settings.max_length, batch_size=settings.batch_size, repeats=repeats)


def training(config_path: Path, workdir: Path, max_steps: int, repeats: int, ceilings: dict[str, float], bases: list[str]) -> dict[str, Any]:
    """Every stage x base x compute setting `repeats` times, interleaved so that drift in the machine's speed hits all alike."""
    from benchmarks.training import frozen_int8_layer_ms, median_row, train_stage, training_pieces_ms
    from harness.models.throughput import forward_flops_per_token
    from harness.run.config import load_config
    from harness.models.loading import resolve_model
    from harness.stages.speed.cpu_heap import keep_freed_memory_in_heap

    from transformers import AutoConfig

    config = load_config(config_path, [])
    model_config = AutoConfig.from_pretrained(resolve_model(config.model))
    seq_len = {"domain": config.data.domain.max_length, "instruct": config.training.instruct.max_length}
    settings = [(stage, base, bf16) for stage in ("domain", "instruct") for base in bases for bf16 in (True, False)]
    runs: dict[tuple[str, str, bool], list[dict[str, Any]]] = {setting: [] for setting in settings}
    for _ in range(repeats):
        for stage, base, bf16 in settings:
            runs[stage, base, bf16].append(train_stage(config_path, stage, workdir, base=base, bf16=bf16, max_steps=max_steps))
    rows = []
    for (stage, _, bf16), setting_runs in runs.items():
        row = median_row(setting_runs)
        achieved = row["tokens_per_s"] * 2 * forward_flops_per_token(model_config, seq_len[stage]) / 1e9
        rows.append({**row, "achieved_gflops": achieved, "roofline_share": achieved / ceilings["bfloat16" if bf16 else "float32"]})
    keep_freed_memory_in_heap()  # the micro-timings below run under the heap setting of a training process
    tokens = config.training.domain.batch_size * config.data.domain.max_length
    layer = {
        "in_features": model_config.hidden_size,
        "out_features": model_config.intermediate_size,
        "tokens": tokens,
        "ms": frozen_int8_layer_ms(model_config.hidden_size, model_config.intermediate_size, tokens, repeats=10 * repeats),
    }
    pieces = training_pieces_ms(
        model_config, batch=config.training.instruct.batch_size, short_length=PADDED_CONVERSATION_TOKENS,
        long_length=seq_len["domain"], dropout=config.lora.dropout, repeats=10 * repeats,
    )
    return {"stages": rows, "frozen_layer": layer, "pieces": pieces}


def end_to_end(config_path: Path, workdir: Path) -> dict[str, float]:
    from benchmarks.end_to_end import first_and_second_run

    return first_and_second_run(config_path, workdir / "run-all")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per timing; the median is reported")
    parser.add_argument("--prompts", type=int, default=16, help="prompts for the generation comparison")
    parser.add_argument("--train-steps", type=int, default=6, help="optimizer steps per training measurement")
    parser.add_argument("--bases", nargs="*", choices=list(BASE_PRECISIONS), default=list(BASE_PRECISIONS), help="frozen-base precisions to train on")
    parser.add_argument("--skip", nargs="*", choices=SECTIONS, default=[], help="sections to leave out")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()

    from benchmarks.eval_phase import compare_eval_phase
    from benchmarks.machine import describe_machine
    from benchmarks.report import print_report

    results: dict[str, Any] = {"date": datetime.date.today().isoformat(), "machine": describe_machine()}
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as scratch:
        workdir = Path(scratch)
        if not {"roofline", "training"} <= set(args.skip):
            console.log("matmul roofline ...")
            results["bf16_matmul_size"] = bf16_matmul_size()
            results["roofline"] = roofline(results["bf16_matmul_size"])
        if "memory" not in args.skip:
            console.log("memory of the loaded base ...")
            results["memory"] = memory()
        if "generation" not in args.skip:
            console.log("generation: naive loop vs batched ...")
            results["generation"] = generation(args.config, args.repeats, args.prompts)
        if "safety_generation" not in args.skip:
            console.log("safety prompts: today's generator vs the in-place decoder, in turns ...")
            results["safety_generation"] = safety_generation(args.config, args.repeats)
        if "eval_phase" not in args.skip:
            console.log("one checkpoint's eval phase, as it was and as it is, in turns ...")
            results["eval_phase"] = compare_eval_phase(args.config, args.repeats, log=console.log)
        if "perplexity" not in args.skip:
            console.log("perplexity: harness vs lm-eval ...")
            results["perplexity"] = perplexity(args.config, args.repeats)
        if "training" not in args.skip:
            console.log("training throughput per stage and precision ...")
            results["training"] = training(args.config, workdir, args.train_steps, args.repeats, results["roofline"], args.bases)
        if "end_to_end" not in args.skip:
            console.log("run-all, first and second time ...")
            results["end_to_end"] = end_to_end(args.config, workdir)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return print_report(results, console)


if __name__ == "__main__":
    sys.exit(main())
