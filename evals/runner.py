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
from harness.evals.metrics import eval_metrics, metric_delta
from harness.evals.registry import EvalSpec, get_eval, registered_evals
from harness.models.checkpoints import ResolvedCheckpoint
from harness.run.config import HarnessConfig, config_hash
from harness.run.layout import RunLayout
from harness.core.console import console, shown
from harness.core.errors import HarnessError, first_line
from harness.models.loading import check_weight_files, has_tokenizer_files, load_causal_lm, load_tokenizer
from harness.run.results import JOINT_GENERATION, CheckpointSummary, EvalInfo, EvalResult, read_samples, write_samples
from harness.data.run_data import RunData


def check_eval_settings(config: HarnessConfig) -> None:
    """Refuse eval settings that would otherwise fail only after every arm is trained: an eval name
    that is not registered, or the vLLM backend without its package."""
    unknown = [name for name in config.eval.suite if name not in registered_evals()]
    if unknown:
        raise HarnessError(f"eval.suite: unknown eval {unknown[0]!r}; choose from {', '.join(registered_evals())}")
    if config.eval.generation.backend == "vllm":
        from harness.evals.vllm_backend import require_vllm

        require_vllm()


def read_result(run_dir: Path, name: str) -> tuple[EvalResult | None, str | None]:
    """(saved results, None) when they and every per-sample log they name read back whole; (None, why)
    when something is damaged (truncated, not JSON, a log with fewer records than the results count);
    (None, None) when nothing is saved."""
    path = RunLayout(run_dir).result(name)
    if not path.exists():
        return None, None
    try:
        result = EvalResult.load(path)
    except (OSError, ValueError) as exc:
        return None, f"{path}: damaged ({first_line(exc)})"
    for info in result.evals.values():
        if not info.samples_file:
            continue
        log = Path(run_dir) / info.samples_file
        try:
            count = len(read_samples(log))
        except (OSError, ValueError) as exc:
            return None, f"{log}: damaged ({first_line(exc)})"
        if count != info.n_items:
            return None, f"{log}: damaged (holds {count} records, {path.name} counts {info.n_items})"
    return result, None


def load_result(run_dir: Path, name: str) -> EvalResult | None:
    """Saved results for `name`, None when there are none; damaged ones are a user error naming the redo."""
    result, damage = read_result(run_dir, name)
    if damage is not None:
        raise HarnessError(f"{damage}; `harness eval --checkpoint {name}` (or `harness run-all`) evaluates it again")
    return result


def measures_as_much(saved: EvalResult, suite: Sequence[str], limit: int | None) -> bool:
    """Whether an eval of `suite` capped at `limit` items measures every eval `saved` has, on no fewer items."""
    fewer_evals = (saved.evals.keys() & set(registered_evals())) - set(suite)
    fewer_items = limit is not None and (saved.limit is None or limit < saved.limit)
    return not fewer_evals and not fewer_items


def results_root(run_dir: Path, name: str, suite: Sequence[str], limit: int | None) -> Path:
    """Where an eval of `name` writes results/ and samples/: the run directory itself, unless its saved
    results measure more (more evals or more items). A quick look (`--limit`, `--suite`) then goes
    beside them, to `RunLayout.partial`, so it never replaces a complete eval. Saved results that do
    not parse hold nothing to keep."""
    layout = RunLayout(run_dir)
    try:
        saved = EvalResult.load(layout.result(name))
    except (OSError, ValueError):
        return layout.root
    if measures_as_much(saved, suite, limit):
        return layout.root
    return layout.partial(suite, limit).root


def eval_hash(config: HarnessConfig, ckpt: ResolvedCheckpoint, data: RunData, suite: Sequence[str], limit: int | None) -> str:
    """Everything that changes an eval's answer: weights, data, eval settings, suite and item cap. Not the
    generation batch size: greedy replies are the same at any (tests/test_generate.py)."""
    return config_hash(
        {
            "weights": ckpt.fingerprint,
            "data": data.fingerprints(),
            "eval": config.eval.model_dump(mode="json", exclude={"suite": True, "limit": True, "generation": {"batch_size"}}),
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

        check_weight_files(ckpt.adapter_dir, config.model.allow_pickle, adapter=True)
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
    results_dir: Path | None = None,
    run_config_hash: str | None = None,
) -> EvalResult:
    """Evaluate one checkpoint on the suite and any lm-eval tasks; reuse saved results when nothing changed.

    Results and samples go under `results_dir` (default: the run directory; see `results_root`); the
    generation cache stays in the run directory, shared by every eval of the run. `run_config_hash` is the
    run's config fingerprint when `config` is one grid point's eval settings of it (default: `config`'s).
    """
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
    out_dir = Path(results_dir or run_dir)
    path = RunLayout(out_dir).result(ckpt.name)
    saved, damage = read_result(out_dir, ckpt.name) if reuse else (None, None)
    if damage is not None:
        console.print(f"[yellow]{shown(damage)}; evaluating {shown(ckpt.name)} again[/yellow]", soft_wrap=True)
    if saved is not None and saved.eval_hash == key:
        console.print(f"[dim]{shown(ckpt.name)}: results are up to date, skipping ({shown(path)})[/dim]")
        return saved
    started = time.perf_counter()
    console.print(f"[bold]Evaluating {shown(ckpt.name)}[/bold] on {shown(', '.join(suite))}")
    model, tokenizer = load_for_eval(ckpt, config)
    generator = build_generator(config, ckpt, model, tokenizer, cache_dir=RunLayout(run_dir).generation_cache)
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
        work_dir=out_dir,
    )
    joint = generate_together(context, specs)
    metrics, infos = {}, {}
    for spec in specs:
        metrics_of_spec, infos[spec.name] = _run_one(spec, context, config, out_dir, ckpt.name)
        metrics.update(metrics_of_spec)
    if joint is not None:
        infos[JOINT_GENERATION] = joint
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
        presentation={name: shown for spec in specs for name, shown in spec.presentations(metrics).items()},
        config_hash=run_config_hash or config.fingerprint(),
        eval_hash=key,
        limit=limit,
        wall_time_s=time.perf_counter() - started,
    )
    result.save(path)
    return result


def generate_together(context: EvalContext, specs: Sequence[EvalSpec]) -> EvalInfo | None:
    """Decode the prompts of every generation eval in `specs` in one pass, each at its eval's budget: fewer,
    larger batches than eval by eval, and the same greedy replies (tests/test_generate.py). What the pass
    took, or None when fewer than two evals generate."""
    asking = [spec for spec in specs if spec.needs_generation and spec.conversations is not None]
    if len(asking) < 2:
        return None
    started = time.perf_counter()
    requests = [(context.config.eval.generation.budget_for(spec.name), spec.conversations(context)) for spec in asking]
    context.generator.prefetch(requests)
    return EvalInfo(
        n_items=sum(len(conversations) for _, conversations in requests),
        wall_time_s=time.perf_counter() - started,
        details={"evals": ", ".join(spec.name for spec in asking),
                 "note": "their replies were decoded together, each at its eval's budget; their own wall times leave this pass out"},
    )


def _run_one(spec: EvalSpec, context: EvalContext, config: HarnessConfig, run_dir: Path, name: str):
    started = time.perf_counter()
    if spec.needs_generation:
        budget = config.eval.generation.budget_for(spec.name)
        context = dataclasses.replace(context, generator=context.generator.with_max_new_tokens(budget))
    output = spec.run(context)
    if not output.records:
        raise HarnessError(f"eval {spec.name!r} has no items for {name}: its data split is empty; check the data section of the config")
    sample_file = RunLayout(run_dir).samples(name, spec.name)
    write_samples(sample_file, output.records)
    metrics = eval_metrics(spec, output.records, resamples=config.eval.bootstrap_resamples, seed=config.seed)
    info = EvalInfo(
        n_items=len(output.records),
        wall_time_s=time.perf_counter() - started,
        samples_file=str(sample_file.relative_to(run_dir)),
        details=output.details,
        scorer_version=spec.scorer_version,
    )
    return metrics, info


def add_deltas(run_dir: Path, config: HarnessConfig, names: Sequence[str]) -> dict[str, EvalResult]:
    """Store the paired deltas of every comparison among `names` (the lineage's contrasts; others vs base)."""
    layout = RunLayout(run_dir)
    results = {n: result for n in dict.fromkeys(names) if (result := load_result(run_dir, n)) is not None}
    for result in results.values():
        result.deltas = {}
    for name, reference in config.plan.pairs_among(list(results)):
        result = results[name]
        for eval_name in result.evals.keys() & results[reference].evals.keys() & set(registered_evals()):
            spec = get_eval(eval_name)
            mine = read_samples(layout.samples(name, eval_name))
            theirs = read_samples(layout.samples(reference, eval_name))
            for metric in spec.metrics:
                delta = metric_delta(metric, mine, theirs, reference, resamples=config.eval.bootstrap_resamples, seed=config.seed)
                if delta is not None:
                    result.deltas.setdefault(metric.name, {})[reference] = delta
    for name, result in results.items():
        result.save(layout.result(name))
    return results
