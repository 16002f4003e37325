"""The part every LoRA stage shares: checks, model setup, the trainer run, the held-out curve, the checkpoint.

A stage hands over its tokenized train and held-out examples and a factory for its trainer
(`Trainer` for domain text, TRL's `SFTTrainer` for conversations); everything else is the same for
both, and both return the same `TrainingRecord`, from which `harness.run.manifest` alone builds the
manifest, so two checkpoints of one run are always described the same way.
The held-out loss of the start model (step 0) is measured before the first update: it is the
baseline that shows whether the stage lowered held-out loss at all.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from harness.run.config import REPORT_TO_PACKAGES, HarnessConfig, StageTraining
from harness.core.console import console, progress, quiet_libraries
from harness.core.distributed import is_main_process, world_size
from harness.core.errors import HarnessError
from harness.run.manifest import LossPoint, TrainingRecord
from harness.models.loading import bf16_supported
from harness.stages.batching import PadCollator, TokenizedExample, count_label_tokens
from harness.stages.heldout_loss import token_weighted_loss
from harness.stages.lora_model import load_lora_model, parameter_counts
from harness.stages.progress_callback import TrainingProgress
from harness.core.environment import peak_rss_mb

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


def check_report_to(report_to: list[str]) -> None:
    """Fail before the model loads when a configured tracker's package is missing (transformers would fail mid-setup)."""
    import importlib.util

    for name in report_to:
        package = REPORT_TO_PACKAGES[name]
        if package is not None and importlib.util.find_spec(package[0]) is None:
            raise HarnessError(
                f"training.report_to lists {name}, but the {package[1]} package is not installed; "
                f"`pip install {package[1]}` or remove {name} from training.report_to"
            )


def log_tensorboard_to(trainer: Any, log_dir: Path) -> None:
    """Point the trainer's TensorBoard callback at `log_dir` instead of its default under the scratch output_dir.

    The logs go inside the checkpoint directory (`checkpoints/<arm>/logs/`): they appear atomically
    with the adapter they describe and are replaced with it on retraining, and the stage needs no
    knowledge of the run directory's layout. Other ranks keep the default callback, which writes nothing.
    """
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    if trainer.pop_callback(TensorBoardCallback) is not None:
        trainer.add_callback(TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir))))


def trainer_arguments(settings: StageTraining, *, seed: int, bf16: bool, output_dir: Path, report_to: list[str]) -> dict[str, Any]:
    """Keywords for `TrainingArguments`/`SFTConfig`, every default that matters spelled out.

    Checkpoints, evaluation strategies and transformers' printing are off: the stage saves the adapter
    itself, measures held-out loss in its callback, and reports through the rich progress bar.
    Activation (gradient) checkpointing is off (see stages/lora_model.py), under whichever name the
    installed transformers reads: TRL's `SFTConfig` would otherwise switch it on.
    """
    import dataclasses

    import torch
    from transformers import TrainingArguments

    argument_names = {f.name for f in dataclasses.fields(TrainingArguments)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in argument_names else "gradient_checkpointing"
    return {
        checkpointing: False,
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
        "include_num_input_tokens_seen": "non_padding",
        "remove_unused_columns": False,
        "dataloader_num_workers": 0,
        "ddp_find_unused_parameters": False,
    }


def run_lora_stage(
    config: HarnessConfig,
    settings: StageTraining,
    data: StageData,
    *,
    start_ref: str,
    tokenizer: Any,
    out_dir: Path,
    make_trainer: TrainerFactory,
) -> TrainingRecord:
    """Train LoRA adapters on `start_ref`, save adapter and tokenizer into `out_dir`, and return what was measured.

    Under a multi-process launch (DDP) only the main process saves; the record's `world_size` records the launch.
    """
    from transformers import PrinterCallback, set_seed

    started = time.perf_counter()
    check_stage_data(data, settings)
    check_report_to(config.training.report_to)
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
        if is_main_process():
            log_tensorboard_to(trainer, out_dir / "logs")
        trainer.train()
    trainable, total = parameter_counts(model)
    if is_main_process():
        model.save_pretrained(out_dir, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)
    return TrainingRecord(
        trainable_params=trainable,
        total_params=total,
        wall_time_s=round(time.perf_counter() - started, 2),
        peak_rss_mb=peak_rss_mb(),
        train_tokens=callback.tokens,
        tokens_per_s=round(callback.tokens / callback.train_seconds, 2),
        bf16_autocast=bf16,
        world_size=world_size(),
        train_loss=callback.train_loss,
        eval_loss=callback.eval_loss,
    )
