"""The part every LoRA stage shares: checks, model setup, the trainer run, the held-out curve, the checkpoint.

A stage hands over its tokenized train and held-out examples and a factory for its trainer
(`Trainer` for domain text, TRL's `SFTTrainer` for conversations); everything else, including the
manifest, is the same for both, so two checkpoints of one run are always described the same way.
The held-out loss of the start model (step 0) is measured before the first update: it is the
baseline that shows whether the stage lowered held-out loss at all.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from harness.config import HarnessConfig, StageTraining
from harness.console import console, progress, quiet_libraries
from harness.errors import HarnessError
from harness.manifest import LossPoint, Manifest
from harness.models import bf16_supported
from stages.batching import PadCollator, TokenizedExample, count_label_tokens
from stages.heldout_loss import token_weighted_loss
from stages.lora_model import load_lora_model, parameter_counts
from stages.progress_callback import TrainingProgress
from harness.environment import hardware, library_versions, peak_rss_mb

TrainerFactory = Callable[[Any, dict[str, Any], PadCollator, list[Any]], Any]
"""(peft model, trainer-argument keywords, collator, callbacks) -> a transformers `Trainer`."""


@dataclass(frozen=True)
class StageData:
    stage: Literal["domain", "instruct"]
    train: list[TokenizedExample]
    heldout: list[TokenizedExample]
    unit: str
    """What one example is, for messages: "window" or "conversation"."""


def use_bf16_autocast(setting: bool | Literal["auto"]) -> bool:
    """`training.bf16_autocast`: True/False as given; "auto" where bf16 matmuls are native (see `bf16_supported`)."""
    return bf16_supported() if setting == "auto" else bool(setting)


def check_stage_data(data: StageData, settings: StageTraining) -> None:
    """Refuse training data smaller than one batch and a held-out split with nothing to score.

    Fewer examples than `batch_size` almost always means the wrong file or a cap set too low, and an
    adapter trained on it would be reported as if it meant something; failing says what to change.
    """
    key = f"training.{data.stage}.batch_size"
    if not data.train:
        raise HarnessError(f"{data.stage} stage: the training split has no {data.unit}s; check the stage's input data")
    if len(data.train) < settings.batch_size:
        raise HarnessError(
            f"{data.stage} stage: {len(data.train)} training {data.unit}(s) but {key} is {settings.batch_size}; "
            f"provide more training data or set {key} to at most {len(data.train)}"
        )
    if not data.heldout:
        raise HarnessError(f"{data.stage} stage: the held-out split has no {data.unit}s; the stage cannot report held-out loss")
    if sum(count_label_tokens(example) for example in data.heldout) == 0:
        raise HarnessError(f"{data.stage} stage: the held-out {data.unit}s have no tokens to score; check the held-out data")


def trainer_arguments(settings: StageTraining, *, seed: int, bf16: bool, output_dir: Path, report_to: list[str]) -> dict[str, Any]:
    """Keywords for `TrainingArguments`/`SFTConfig`, every default that matters spelled out.

    Checkpoints, evaluation strategies and transformers' printing are off: the stage saves the adapter
    itself, measures held-out loss in its callback, and reports through the rich progress bar.
    """
    import torch

    return {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": settings.batch_size,
        "per_device_eval_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.grad_accum,
        "num_train_epochs": settings.epochs,
        "max_steps": settings.max_steps or -1,
        "learning_rate": settings.learning_rate,
        "lr_scheduler_type": settings.lr_scheduler,
        "warmup_steps": settings.warmup_ratio,
        "logging_strategy": "steps",
        "logging_steps": settings.logging_steps,
        "eval_strategy": "no",
        "save_strategy": "no",
        "report_to": report_to or "none",
        "disable_tqdm": True,
        "seed": seed,
        "data_seed": seed,
        "bf16": bf16,
        "use_cpu": not torch.cuda.is_available(),
        "activation_checkpointing": False,
        "include_num_input_tokens_seen": "non_padding",
        "remove_unused_columns": False,
        "dataloader_num_workers": 0,
    }


def run_lora_stage(
    config: HarnessConfig,
    settings: StageTraining,
    data: StageData,
    *,
    start_ref: str,
    tokenizer: Any,
    out_dir: Path,
    manifest_fields: dict[str, Any],
    make_trainer: TrainerFactory,
) -> Manifest:
    """Train LoRA adapters on `start_ref`, then save adapter, tokenizer and manifest (last) into `out_dir`."""
    from transformers import PrinterCallback, set_seed

    started = time.perf_counter()
    check_stage_data(data, settings)
    quiet_libraries()
    bf16 = use_bf16_autocast(config.training.bf16_autocast)
    set_seed(config.seed)
    with console.status(f"Loading {start_ref} for the {data.stage} stage ..."):
        model = load_lora_model(config, start_ref)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    evaluate = partial(token_weighted_loss, model, data.heldout, batch_size=settings.batch_size, pad_id=pad_id, bf16=bf16)
    with console.status(f"Held-out loss of the start model ({len(data.heldout)} {data.unit}s) ..."):
        start_loss = evaluate()
    with progress() as bar, tempfile.TemporaryDirectory(prefix="harness-trainer-") as scratch:
        callback = TrainingProgress(bar, f"{data.stage} stage", evaluate)
        callback.eval_loss.append(LossPoint(step=0, loss=start_loss, epoch=0.0))
        arguments = trainer_arguments(
            settings, seed=config.seed, bf16=bf16, output_dir=Path(scratch), report_to=config.training.report_to
        )
        trainer = make_trainer(model, arguments, PadCollator(pad_id), [callback])
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    trainable, total = parameter_counts(model)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    measured = {
        "lora": config.lora.model_dump(mode="json"),
        "trainable_params": trainable,
        "total_params": total,
        "versions": library_versions(),
        "hardware": hardware(),
        "wall_time_s": round(time.perf_counter() - started, 2),
        "peak_rss_mb": peak_rss_mb(),
        "train_tokens": callback.tokens,
        "tokens_per_s": round(callback.tokens / callback.train_seconds, 2),
        "bf16_autocast": bf16,
        "load_in_8bit": config.model.load_in_8bit,
        "train_loss": callback.train_loss,
        "eval_loss": callback.eval_loss,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    manifest = Manifest.model_validate({**manifest_fields, **measured})
    manifest.save(out_dir)
    return manifest
