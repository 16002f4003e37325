"""Run the eval suite on one checkpoint and write its results and per-sample logs.

Every checkpoint is measured on exactly the same items (the run's held-out sections, counseling test
split and safety prompts), so deltas between checkpoints are paired. A checkpoint whose results were
computed with the same weights, data and eval settings is not evaluated again.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

from harness.evals.context import EvalContext
from harness.evals.generate import build_generator
from harness.evals.lm_eval_tasks import lm_eval_hash_items, run_lm_eval_tasks
from harness.evals.metrics import metric_delta, metric_value
from harness.evals.registry import EvalSpec, get_eval, registered_evals
from harness.models.checkpoints import ResolvedCheckpoint
from harness.run.config import HarnessConfig, config_hash
from harness.core.console import console, shown
from harness.core.errors import HarnessError
from harness.models.loading import has_tokenizer_files, load_causal_lm, load_tokenizer
from harness.run.results import CheckpointSummary, EvalInfo, EvalResult, read_samples, write_samples
from harness.data.run_data import RunData

def results_path(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / "results" / f"{name}.json"


def samples_path(run_dir: Path, name: str, eval_name: str) -> Path:
    return Path(run_dir) / "samples" / name / f"{eval_name}.jsonl"


def eval_hash(config: HarnessConfig, ckpt: ResolvedCheckpoint, data: RunData, suite: Sequence[str], limit: int | None) -> str:
    """Everything that changes an eval's answer: weights, data, eval settings, suite and item cap."""
    return config_hash(
        {
            "weights": ckpt.fingerprint,
            "data": data.fingerprints(),
            "eval": config.eval.model_dump(mode="json", exclude={"suite", "limit"}),
            "system_prompt": config.data.counseling.system_prompt,
            "suite": sorted(suite),
            "limit": limit,
        }
    )


def load_for_eval(ckpt: ResolvedCheckpoint, config: HarnessConfig):
    """The checkpoint's model (start weights + adapter) and tokenizer, ready for inference."""
    has_own_tokenizer = ckpt.adapter_dir is not None and has_tokenizer_files(ckpt.adapter_dir)
    tokenizer = load_tokenizer(str(ckpt.adapter_dir if has_own_tokenizer else ckpt.start_ref), config.model)
    model = load_causal_lm(ckpt.start_ref, config.model, quantization="int8" if config.eval.load_in_8bit else "none")
    if ckpt.adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(ckpt.adapter_dir))
    model.eval()
    return model, tokenizer


def _summary(ckpt: ResolvedCheckpoint) -> CheckpointSummary:
    return CheckpointSummary(
        name=ckpt.name,
        arm=ckpt.arm,
        parent=ckpt.parent,
        base_model=ckpt.base_model,
        path=str(ckpt.adapter_dir or ckpt.start_ref),
        fingerprint=ckpt.fingerprint,
    )


def evaluate_checkpoint(
    config: HarnessConfig,
    ckpt: ResolvedCheckpoint,
    data: RunData,
    run_dir: Path,
    *,
    suite: Sequence[str] | None = None,
    limit: int | None = None,
    reuse: bool = True,
    lm_eval_tasks: Sequence[str] = (),
    lm_eval_include_path: Path | None = None,
) -> EvalResult:
    """Evaluate one checkpoint on the suite and any lm-eval tasks; reuse saved results when nothing changed."""
    suite = list(suite or config.eval.suite)
    limit = limit if limit is not None else config.eval.limit
    specs = [get_eval(name) for name in suite]
    unknown_budgets = sorted(set(config.eval.generation.max_new_tokens_by_eval) - set(registered_evals()))
    if unknown_budgets:
        raise HarnessError(
            f"eval.generation.max_new_tokens_by_eval: unknown eval {unknown_budgets[0]!r}; "
            f"use one of {', '.join(registered_evals())}"
        )
    key = eval_hash(config, ckpt, data, [*suite, *lm_eval_hash_items(lm_eval_tasks, lm_eval_include_path)], limit)
    path = results_path(run_dir, ckpt.name)
    if reuse and path.is_file():
        saved = EvalResult.load(path)
        if saved.eval_hash == key:
            console.print(f"[dim]{shown(ckpt.name)}: results are up to date, skipping ({shown(path)})[/dim]")
            return saved
    started = time.perf_counter()
    console.print(f"[bold]Evaluating {shown(ckpt.name)}[/bold] on {shown(', '.join(suite))}")
    model, tokenizer = load_for_eval(ckpt, config)
    generator = build_generator(config, ckpt, model, tokenizer, cache_dir=Path(run_dir) / "cache" / "generations")
    context = EvalContext(
        config=config,
        model=model,
        tokenizer=tokenizer,
        model_fingerprint=ckpt.fingerprint,
        heldout_sections=data.corpus.heldout_sections,
        counseling_test=data.counseling.test,
        safety_prompts=data.safety,
        generator=generator,
        limit=limit,
        work_dir=Path(run_dir),
    )
    metrics, infos = {}, {}
    for spec in specs:
        metrics_of_spec, infos[spec.name] = _run_one(spec, context, config, run_dir, ckpt.name)
        metrics.update(metrics_of_spec)
    if lm_eval_tasks:
        settings = config.eval.perplexity
        lm_eval_metrics, infos["lm_eval"] = run_lm_eval_tasks(
            model, tokenizer, lm_eval_tasks, include_path=lm_eval_include_path, max_length=settings.max_length,
            batch_size=settings.batch_size, bf16_autocast=config.eval.bf16_autocast, limit=limit,
        )
        metrics.update(lm_eval_metrics)
    result = EvalResult(
        checkpoint=_summary(ckpt),
        metrics=metrics,
        evals=infos,
        presentation={m.name: m.presentation for spec in specs for m in spec.metrics if m.name in metrics},
        config_hash=config.fingerprint(),
        eval_hash=key,
        wall_time_s=time.perf_counter() - started,
    )
    result.save(path)
    return result


def _run_one(spec: EvalSpec, context: EvalContext, config: HarnessConfig, run_dir: Path, name: str):
    started = time.perf_counter()
    if spec.needs_generation:
        budget = config.eval.generation.budget_for(spec.name)
        context = dataclasses.replace(context, generator=context.generator.with_max_new_tokens(budget))
    output = spec.run(context)
    if not output.records:
        raise HarnessError(f"eval {spec.name!r} has no items for {name}: its data split is empty; check the data section of the config")
    sample_file = samples_path(run_dir, name, spec.name)
    write_samples(sample_file, output.records)
    metrics = {}
    for metric in spec.metrics:
        value = metric_value(
            metric, output.records, resamples=config.eval.bootstrap_resamples, seed=config.seed,
            generated=spec.needs_generation,
        )
        if value is not None:
            metrics[metric.name] = value
    info = EvalInfo(
        n_items=len(output.records),
        wall_time_s=time.perf_counter() - started,
        samples_file=str(sample_file.relative_to(run_dir)),
        details=output.details,
    )
    return metrics, info


def add_deltas(run_dir: Path, config: HarnessConfig, names: Sequence[str]) -> dict[str, EvalResult]:
    """Store the paired deltas of every comparison among `names` (the lineage's contrasts; others vs base)."""
    results = {n: EvalResult.load(results_path(run_dir, n)) for n in dict.fromkeys(names) if results_path(run_dir, n).is_file()}
    for result in results.values():
        result.deltas = {}
    for name, reference in config.lineage.pairs_among(list(results)):
        result = results[name]
        for eval_name in result.evals.keys() & results[reference].evals.keys() & set(registered_evals()):
            spec = get_eval(eval_name)
            mine = read_samples(samples_path(run_dir, name, eval_name))
            theirs = read_samples(samples_path(run_dir, reference, eval_name))
            for metric in spec.metrics:
                delta = metric_delta(metric, mine, theirs, reference, resamples=config.eval.bootstrap_resamples, seed=config.seed)
                if delta is not None:
                    result.deltas.setdefault(metric.name, {})[reference] = delta
    for name, result in results.items():
        result.save(results_path(run_dir, name))
    return results
